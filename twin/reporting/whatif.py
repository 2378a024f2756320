"""The report's economics and carbon sections: what :mod:`twin.whatif` computed per run."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from twin.reporting.page import Absent, Content
from twin.reporting.runs import RunData

__all__ = ["carbon_report", "economics_report"]

SectionOf = Callable[[dict[str, Any], dict[str, Any]], tuple[str, list[Any]]]


def _per_run(runs: Sequence[RunData], section: SectionOf, what: str) -> Content | Absent:
    """One block per run that has the section (headed by its label when compared)."""
    parts, figures = [], []
    for run in runs:
        fragment, figs = section(run.meta, run.kpis or {})
        if not fragment:
            continue
        heading = f"<h3>{html.escape(run.label)}</h3>" if len(runs) > 1 else ""
        if not run.outcome.finished:  # computed before the run's own checks failed
            heading += (
                "<p class='untrusted'><strong>Not to be trusted:</strong> "
                f"{html.escape(run.outcome.headline)}; these {what} figures rest on it.</p>"
            )
        parts.append(heading + fragment)
        for figure in figs:
            if len(runs) > 1:
                title = figure.layout.title.text or ""
                figure.update_layout(title={"text": f"{run.label}: {title}", "x": 0.0})
            figures.append(figure)
    if not parts:
        ended = [run for run in runs if run.scenario.get(what) is not None]
        if ended:
            names = ", ".join(f"{run.label} ({run.outcome.headline})" for run in ended)
            return Absent(f"the run ended before its {what} figures were computed: {names}")
        return Absent(f"no {what} section in the scenario")
    return Content(html="".join(parts), figures=tuple(figures), linked=False)


def economics_report(runs: Sequence[RunData]) -> Content | Absent:
    """Capital cost, NPV, payback and the discounted cash flow (``economics:``)."""
    from twin.whatif.economics import economics_section

    return _per_run(runs, economics_section, "economics")


def carbon_report(runs: Sequence[RunData]) -> Content | Absent:
    """Emissions and avoided emissions against the reference (``carbon:``)."""
    from twin.whatif.carbon import carbon_section

    return _per_run(runs, carbon_section, "carbon")
