"""Reading a run directory for a report: ``run.json``, KPIs, results, and how it ended.

A run that did not finish cleanly is still reported (its results are what there is to
diagnose), but never silently: :func:`run_outcome` reads ``status``, ``checks`` and
``error`` from ``run.json`` (a run left at ``status: running`` crashed, was killed or is
still in progress) and :func:`banner` turns it into the red banner at the top of a page.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from twin.errors import ResultsError, TwinError
from twin.results import RESULT_COLUMNS, load_results, read_run

__all__ = ["RunOutcome", "banner", "check_run_dir", "read_run_dir", "run_outcome"]


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as its ``run.json`` says.

    Attributes
    ----------
    status : str
        ``finished``, ``failed``, ``running`` (never ended) or what else it says.
    headline : str
        One line: ``run finished``, ``run FAILED 1 check(s): energy_balance``, ...
    details : list of str
        The failed checks (``check: message``), the error and what it means.
    """

    status: str
    headline: str
    details: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether the run finished and passed its checks."""
        return self.status == "finished"


def _holder_alive(run_dir: Path) -> int | None:
    """The pid that last locked ``run_dir`` if that process still exists, else None.

    Reads ``.lock`` only (taking the lock, even briefly, could turn away a run).
    """
    from twin.rundir import LOCK_NAME

    try:
        text = (run_dir / LOCK_NAME).read_text(errors="replace").split()
        pid = int(text[1]) if text[:1] == ["pid"] else 0
    except (OSError, IndexError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # exists, owned by someone else
    return pid


def run_outcome(meta: dict[str, Any], run_dir: str | Path | None = None) -> RunOutcome:
    """How the run of ``meta`` (its ``run.json``) ended: status, failed checks, error.

    Parameters
    ----------
    meta : dict
        The run's ``run.json``.
    run_dir : str or Path, optional
        Its directory: for a run left at ``running``, whether the process that
        locked it still exists.
    """
    status = meta.get("status")
    error = meta.get("error")
    checks = meta.get("checks") if isinstance(meta.get("checks"), dict) else {}
    failed = [f for f in checks.get("failed") or [] if isinstance(f, dict)]
    details = [f"{f.get('check', '?')}: {f.get('message', '')}" for f in failed]
    if status == "finished":
        return RunOutcome("finished", "run finished")
    if status == "failed":
        if failed:
            names = ", ".join(str(f.get("check", "?")) for f in failed)
            headline = f"run FAILED {len(failed)} check(s): {names}"
            if error and error != "; ".join(details):
                details.append(f"error: {error}")
        else:
            headline = f"run FAILED: {error or 'no error recorded'}"
        if "rows_saved" in meta:
            details.append(
                f"results hold the {meta['rows_saved']} rows recorded before the failure; "
                "KPIs were not computed"
            )
        return RunOutcome("failed", headline, details)
    if status == "running":
        pid = _holder_alive(Path(run_dir)) if run_dir is not None else None
        if pid is not None:
            why = f"process {pid}, which locked the run directory, still exists: still running?"
        elif run_dir is not None:
            why = "no process runs it any more: it crashed or was killed before it ended"
        else:
            why = "it crashed, was killed or is still running"
        return RunOutcome(
            "running", f"run NOT FINISHED: run.json still says status 'running' ({why})"
        )
    return RunOutcome(
        str(status),
        f"run NOT FINISHED: run.json says status {status!r}, not 'finished'",
        [f"error: {error}"] if error else [],
    )


def read_run_dir(
    run_dir: Path, *, kpis_required: bool = True
) -> tuple[dict[str, Any], dict[str, Any] | None, pd.DataFrame]:
    """``run.json``, ``kpis.json`` and the results of a run directory, checked.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    kpis_required : bool
        If False, a missing ``kpis.json`` (a run that failed before its KPIs) is None.

    Raises
    ------
    ResultsError
        Naming the file that cannot be read or lacks what a report needs.
    """
    meta = _read_meta(run_dir)
    return (meta, *_read_outputs(run_dir, kpis_required=kpis_required))


def _corrupt(where: Path, exc: Exception) -> ResultsError:
    detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).split("\n")[0]
    return ResultsError(f"{where} is corrupt or not written by twin run: {detail}")


#: What reading a run's files can raise when they are corrupt.
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError, ZoneInfoNotFoundError)


def _read_meta(run_dir: Path) -> dict[str, Any]:
    """``run.json`` with the fields a report needs.

    Raises
    ------
    ResultsError
        If it cannot be read or lacks what a report needs.
    """
    try:
        meta = read_run(run_dir)
        str(meta["run_id"]), meta["scenario"]["name"], ZoneInfo(meta["scenario"]["site"]["tz"])
        for key in ("start", "duration", "step"):
            str(meta["scenario"][key])
    except _READ_ERRORS as exc:
        raise _corrupt(run_dir / "run.json", exc) from None
    return meta


def _read_outputs(
    run_dir: Path, *, kpis_required: bool
) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """``kpis.json`` (None if missing and not required) and the results, checked.

    Raises
    ------
    ResultsError
        Naming the file that cannot be read or lacks what a report needs.
    """
    where = run_dir / "kpis.json"
    try:
        kpis = None
        if kpis_required or where.exists():
            kpis = json.loads(where.read_text())
            if not isinstance(kpis, dict):
                raise TypeError(f"expected a mapping of KPIs, got {type(kpis).__name__}")
        where = run_dir / "results.parquet"
        results = load_results(run_dir)
        missing = set(RESULT_COLUMNS) - set(results.columns)
        if missing:
            raise KeyError(f"columns {', '.join(sorted(missing))}")
    except _READ_ERRORS as exc:
        raise _corrupt(where, exc) from None
    return kpis, results


def banner(outcome: RunOutcome) -> str:
    """The red banner at the top of the page of a run that did not finish cleanly."""
    if outcome.finished:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in outcome.details)
    return (
        '<div class="failed" role="alert">'
        f"<strong>{html.escape(outcome.headline)}</strong>"
        + (f"<ul>{items}</ul>" if items else "")
        + f"<p>run.json says <code>status: {html.escape(outcome.status)}</code>: the numbers "
        "and plots below are of a run that did not finish cleanly.</p></div>"
    )


def check_run_dir(
    run_dir: Path,
) -> tuple[dict[str, Any], RunOutcome, dict[str, Any] | None, pd.DataFrame]:
    """``run.json``, how the run ended, its KPIs (None if it wrote none) and results.

    A run that failed (or never ended) is read from what it left: its results, and its
    KPIs if it wrote them.

    Raises
    ------
    TwinError
        If ``run_dir`` holds no run, a finished run lacks ``results.parquet`` or
        ``kpis.json``, or a run that did not finish left no ``results.parquet`` (the
        message says how it ended); :class:`~twin.errors.ResultsError` if one of its
        files is corrupt.
    """
    if not (run_dir / "run.json").is_file():
        for needed in ("results.parquet", "run.json"):
            if not (run_dir / needed).is_file():
                raise TwinError(f"{run_dir} is not a finished run: {needed} is missing")
    meta = _read_meta(run_dir)
    outcome = run_outcome(meta, run_dir)
    needed = ("results.parquet", "kpis.json") if outcome.finished else ("results.parquet",)
    for name in needed:
        if not (run_dir / name).is_file():
            if outcome.finished:
                raise TwinError(f"{run_dir} is not a finished run: {name} is missing")
            why = "".join(f"\n  - {line}" for line in outcome.details)
            raise TwinError(
                f"{run_dir}: {outcome.headline}; {name} is missing, nothing to report{why}"
            )
    kpis, results = _read_outputs(run_dir, kpis_required=outcome.finished)
    return meta, outcome, kpis, results
