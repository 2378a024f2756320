"""``twin report``: one self-contained interactive HTML page per run, or runs compared.

:func:`render_report` writes ``report.html`` into a run directory: what ran, the KPIs,
and linked time series (zoom one, all follow) of every section the run has
(:data:`twin.reporting.sections.SECTIONS`). :func:`render_comparison` puts several runs
on one page: KPI changes against the first, series overlaid. plotly.js is inline: the
file opens offline and can be mailed.

A run that did not finish cleanly is still reported (its results are what there is to
diagnose), but never silently: :func:`run_outcome` reads ``status``, ``checks`` and
``error`` from ``run.json`` and the page opens with a red banner naming the failed
checks and the error (a run left at ``status: running`` crashed, was killed or is still
in progress).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from twin.errors import TwinError
from twin.reporting.outcome import RunOutcome, read_run_dir, run_outcome
from twin.reporting.page import Section, render_page
from twin.reporting.runs import RunData, label_runs, load_run

__all__ = [
    "RunOutcome",
    "read_run_dir",
    "render_comparison",
    "render_report",
    "report_page",
    "run_outcome",
]


def _sections(sections: Sequence[Section] | None) -> Sequence[Section]:
    if sections is not None:
        return sections
    from twin.reporting.sections import SECTIONS

    return SECTIONS


def report_page(runs: Sequence[RunData], sections: Sequence[Section] | None = None) -> str:
    """The HTML page of one run or of several compared (labelled after what differs)."""
    if not runs:
        raise TwinError("a report needs at least one run")
    runs = list(runs)
    label_runs(runs)
    if len(runs) == 1:
        run = runs[0]
        name = str(run.scenario["name"])
        state = "FAILED" if run.outcome.status == "failed" else "NOT FINISHED"
        title = name if run.outcome.finished else f"{name} ({state})"
        sc = run.scenario
        subtitle = (
            f"run {run.meta['run_id']}, {sc['start']}, {sc['duration']} at {sc['step']} "
            f"steps, controller {run.controller()}"
        )
    else:
        title = "Comparison: " + " vs ".join(run.label for run in runs)
        failed = sum(not run.outcome.finished for run in runs)
        subtitle = f"{len(runs)} runs; changes are against {runs[0].label}" + (
            f"; {failed} did not finish cleanly" if failed else ""
        )
    return render_page(runs, title, subtitle, _sections(sections))


def render_report(run_dir: str | Path, sections: Sequence[Section] | None = None) -> Path:
    """Write ``report.html`` into ``run_dir``: the run's self-contained interactive page.

    A run that failed (or never ended) is rendered from what it left, under a red
    banner with its status, failed checks and error (:func:`run_outcome`).

    Raises
    ------
    TwinError
        If ``run_dir`` holds no run, a finished run lacks ``results.parquet`` or
        ``kpis.json``, or a run that did not finish left no ``results.parquet`` (the
        message says how it ended); :class:`~twin.errors.ResultsError` if one of its
        files is corrupt.
    """
    run = load_run(run_dir)
    page = run.run_dir / "report.html"
    page.write_text(report_page([run], sections), encoding="utf-8")
    return page


def render_comparison(
    run_dirs: Sequence[str | Path], out: str | Path, sections: Sequence[Section] | None = None
) -> Path:
    """Write one page comparing runs side by side: KPI changes vs the first, overlays.

    Parameters
    ----------
    run_dirs : sequence of str or Path
        Run directories; the first is the reference of the changes.
    out : str or Path
        The HTML file to write (its directory is created).

    Raises
    ------
    TwinError
        As :func:`render_report`, naming the run directory.
    """
    runs = [load_run(d) for d in run_dirs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_page(runs, sections), encoding="utf-8")
    return out
