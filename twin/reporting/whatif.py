"""The report's economics and carbon sections: what :mod:`twin.whatif` computed per run.

The KPIs are labelled like every other KPI of the page (:mod:`twin.reporting.labels`);
the assumptions they rest on come from :mod:`twin.whatif.assumptions`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from html import escape as html_escape
from typing import Any

from twin.reporting.labels import format_kpi, kpi_spec
from twin.reporting.page import Absent, Content
from twin.reporting.runs import RunData
from twin.whatif import finance
from twin.whatif.assumptions import assumptions_table
from twin.whatif.carbon import CARBON_KPIS
from twin.whatif.economics import ECONOMICS_KPIS

__all__ = [
    "carbon_report",
    "carbon_section",
    "economics_report",
    "economics_section",
    "kpi_table",
]


def kpi_table(kpis: dict[str, float], keys: Iterable[str]) -> str:
    """An HTML table of the ``keys`` present in ``kpis``: label (unit) and value."""
    rows = "".join(
        f"<tr><th>{html.escape(kpi_spec(k).label)}</th>"
        f"<td>{html.escape(format_kpi(k, kpis[k]))}</td></tr>"
        for k in keys
        if k in kpis
    )
    return f"<table class='kpis'>{rows}</table>"


def economics_section(meta: dict[str, Any], kpis: dict[str, float]) -> tuple[str, list[Any]]:
    """The report's economics section: a KPI table and the cumulative discounted cash flow.

    Parameters
    ----------
    meta : dict
        The run metadata (``run.json``): the cash flows (``economics_cash_flows``), the
        discount rate and the reference run id the run recorded.
    kpis : dict
        The run's KPIs (``kpis.json``).

    Returns
    -------
    html : str
        An HTML fragment (empty if the run had no ``economics`` section).
    figures : list of plotly.graph_objects.Figure
        The cumulative discounted cash flow over the lifetime (payback where it crosses 0).
    """
    if "npv_eur" not in kpis:
        return "", []
    import plotly.graph_objects as go

    html = (
        "<div class='economics'>"
        "<p>The investment of this run against its reference (the site without it, see "
        "the assumptions): operating costs per year (energy and the stored energy's value "
        "scaled by the run's length, the monthly demand charge on the run's peak x 12), "
        "battery replacements from the state of health the run lost.</p>"
        f"{kpi_table(kpis, ECONOMICS_KPIS)}{assumptions_table(meta)}</div>"
    )
    flows = meta.get("economics_cash_flows") or []
    rate = float(meta.get("economics_discount_rate", 0.0))
    times, cumulative, total = [], [], 0.0
    for t, amount in flows:
        total += finance.discount(amount, rate, t)
        times.append(t)
        cumulative.append(total)
    figure = go.Figure(go.Scatter(x=times, y=cumulative, mode="lines+markers", line_shape="hv"))
    figure.add_hline(y=0.0, line_dash="dot", line_color="grey")
    figure.update_layout(
        title=f"Cumulative discounted cash flow (NPV {kpis['npv_eur']:,.0f} EUR)",
        xaxis_title="years from the investment",
        yaxis_title="EUR (discounted)",
        height=360,
        template="plotly_white",
    )
    return html, [figure]


def carbon_section(meta: dict[str, Any], kpis: dict[str, float]) -> tuple[str, list[Any]]:
    """The report's carbon section: a table and a bar chart of run vs reference.

    Parameters
    ----------
    meta : dict
        The run metadata (``run.json``): its reference run id.
    kpis : dict
        The run's KPIs (``kpis.json``).

    Returns
    -------
    html : str
        An HTML fragment (empty if the run had no ``carbon`` section).
    figures : list of plotly.graph_objects.Figure
        Emissions per year of the run and its reference.
    """
    if "co2_kg" not in kpis:
        return "", []
    import plotly.graph_objects as go

    reference = html_escape(str(meta.get("reference_run_id") or "the reference run"))
    html = (
        "<div class='carbon'>"
        f"<p>Grid emissions of this run and of {reference} (the site without the "
        "investment, see the assumptions), at the same grid carbon intensity.</p>"
        f"{kpi_table(kpis, CARBON_KPIS)}{assumptions_table(meta)}</div>"
    )
    figure = go.Figure(
        go.Bar(
            x=["this run", "reference"],
            y=[kpis["co2_year_kg"], kpis["co2_year_kg"] + kpis["co2_avoided_year_kg"]],
            marker_color=["#2ca02c", "#7f7f7f"],
        )
    )
    figure.update_layout(
        title="Grid emissions per year",
        yaxis_title="kgCO2/year",
        height=360,
        template="plotly_white",
    )
    return html, [figure]


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
    return _per_run(runs, economics_section, "economics")


def carbon_report(runs: Sequence[RunData]) -> Content | Absent:
    """Emissions and avoided emissions against the reference (``carbon:``)."""
    return _per_run(runs, carbon_section, "carbon")
