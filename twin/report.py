"""``twin report``: plots of a run as PNG files and one HTML page.

A run that did not finish cleanly is still reported (its results are what there is to
diagnose), but never silently: :func:`run_outcome` reads ``status``, ``checks`` and
``error`` from ``run.json`` and the page opens with a red banner naming the failed
checks and the error (a run left at ``status: running`` crashed, was killed or is still
in progress).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from twin.errors import ResultsError, TwinError  # noqa: E402
from twin.kpi import kpi_rows  # noqa: E402
from twin.results import RESULT_COLUMNS, load_results, read_run, wide  # noqa: E402

__all__ = ["PLOTS", "RunOutcome", "render_report", "run_outcome"]


def _local(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.index = frame.index.tz_convert(tz)
    return frame


def _total(results: pd.DataFrame, kind: str, quantity: str) -> pd.Series | None:
    table = wide(results, kind, quantity)
    return None if table.empty else table.sum(axis=1)


def plot_power(results: pd.DataFrame, ax: plt.Axes) -> None:
    """Site power flows: PV, loads, battery and grid exchange (kW, > 0 into the site)."""
    series = {
        "PV": _total(results, "pv", "p_kw"),
        "loads": _total(results, "load", "p_kw"),
        "battery (> 0 discharge)": _total(results, "battery", "p_kw"),
        "EV charging": _total(results, "ev", "p_kw"),
        "grid import": _total(results, "grid", "p_kw"),
    }
    for label, values in series.items():
        if values is not None:
            ax.plot(values.index, values.to_numpy(), label=label, drawstyle="steps-post")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_ylabel("power into the site (kW)")
    ax.set_title("Power flows")


def plot_soc(results: pd.DataFrame, ax: plt.Axes) -> None:
    """State of charge of every battery."""
    soc = wide(results, "battery", "soc")
    for name in soc.columns:
        ax.plot(soc.index, soc[name].to_numpy(), label=name)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("SoC (0..1)")
    ax.set_title("Battery state of charge")


def plot_voltages(results: pd.DataFrame, ax: plt.Axes) -> None:
    """Band of bus voltages (min, max) over time."""
    v = wide(results, "bus", "v_pu")
    ax.fill_between(v.index, v.min(axis=1), v.max(axis=1), alpha=0.4, label="min..max of buses")
    ax.plot(v.index, v.mean(axis=1).to_numpy(), label="mean")
    ax.set_ylabel("voltage (pu)")
    ax.set_title("Bus voltages")


def plot_prices(results: pd.DataFrame, ax: plt.Axes) -> None:
    """Import and export prices."""
    for quantity, label in (("price_import_eur_kwh", "import"), ("price_export_eur_kwh", "export")):
        values = wide(results, "tariff", quantity).iloc[:, 0]
        ax.plot(values.index, values.to_numpy(), label=label, drawstyle="steps-post")
    ax.set_ylabel("price (EUR/kWh)")
    ax.set_title("Prices")


def plot_ev_power(results: pd.DataFrame, ax: plt.Axes) -> None:
    """Charging power of every EV charger, stacked (kW drawn from the grid)."""
    p = -wide(results, "ev", "p_kw")
    ax.stackplot(p.index, p.to_numpy().T, labels=list(p.columns), step="post")
    ax.set_ylabel("charging power (kW)")
    ax.set_title("EV charging per charger")


def plot_ev_connected(results: pd.DataFrame, ax: plt.Axes) -> None:
    """EVs plugged in, and EVs turned away so far."""
    connected = wide(results, "ev", "connected").sum(axis=1)
    away = wide(results, "ev_park", "n_turned_away").sum(axis=1).cumsum()
    ax.plot(connected.index, connected.to_numpy(), label="connected", drawstyle="steps-post")
    ax.plot(away.index, away.to_numpy(), label="turned away (cumulative)")
    ax.set_ylabel("EVs")
    ax.set_title("Connected EVs")


def plot_ev_energy(results: pd.DataFrame, ax: plt.Axes) -> None:
    """Cumulative EV energy delivered and energy still missing at departure."""
    delivered = wide(results, "ev_park", "e_delivered_kwh").sum(axis=1).cumsum()
    unmet = wide(results, "ev_park", "e_unmet_kwh").sum(axis=1).cumsum()
    ax.plot(delivered.index, delivered.to_numpy(), label="delivered (grid side)")
    ax.plot(unmet.index, unmet.to_numpy(), label="unmet at departure")
    ax.set_ylabel("energy, cumulative (kWh)")
    ax.set_title("EV energy")


#: Plot name -> (function, the (kind, quantity) it needs in the results).
PLOTS: dict[str, tuple[Callable[[pd.DataFrame, plt.Axes], None], tuple[str, str]]] = {
    "power": (plot_power, ("grid", "p_kw")),
    "soc": (plot_soc, ("battery", "soc")),
    "voltages": (plot_voltages, ("bus", "v_pu")),
    "prices": (plot_prices, ("tariff", "price_import_eur_kwh")),
    "ev_power": (plot_ev_power, ("ev", "p_kw")),
    "ev_connected": (plot_ev_connected, ("ev", "connected")),
    "ev_energy": (plot_ev_energy, ("ev_park", "e_delivered_kwh")),
}


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


def _banner(outcome: RunOutcome) -> str:
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


def render_report(run_dir: str | Path) -> Path:
    """Write ``<name>.png`` for every plot and ``report.html`` into ``run_dir``.

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
    run_dir = Path(run_dir)
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
    tz = meta["scenario"]["site"]["tz"]
    results["time"] = results["time"].dt.tz_convert(tz)
    images = []
    present = set(zip(results["kind"].astype(str), results["quantity"].astype(str), strict=True))
    for name, (plot, needs) in PLOTS.items():
        if needs not in present:
            continue
        fig, ax = plt.subplots(figsize=(10, 3.6))
        plot(results, ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3)
        ax.set_xlabel(f"time ({tz})")
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(run_dir / f"{name}.png", dpi=110)
        plt.close(fig)
        images.append(f"{name}.png")
    rows = "\n".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td></tr>"
        for label, value in kpi_rows(kpis or {})
    )
    table = (
        f"<table>{rows}</table>"
        if kpis is not None
        else "<p><strong>No KPIs:</strong> the run ended before it wrote kpis.json.</p>"
    )
    checks = meta.get("checks")
    passed = checks.get("passed") if isinstance(checks, dict) else None
    if passed and isinstance(passed, list) and outcome.finished:
        table += f"<p>checks passed: {html.escape(', '.join(map(str, passed)))}</p>"
    figures = "\n".join(f'<img src="{img}" alt="{img}" style="max-width:100%">' for img in images)
    name = html.escape(meta["scenario"]["name"])
    page = run_dir / "report.html"
    state = "FAILED" if outcome.status == "failed" else "NOT FINISHED"
    title = name if outcome.finished else f"{name} ({state})"
    page.write_text(
        f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}: twin report</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 12px}}
tr:nth-child(even){{background:#f3f3f3}}
.failed{{background:#b71c1c;color:#fff;padding:1em 1.5em;margin-bottom:1.5em;
border-radius:4px;font-size:1.1em}}</style></head>
<body>{_banner(outcome)}<h1>{title}</h1><p>run {html.escape(meta["run_id"])},
{html.escape(str(meta["scenario"]["start"]))}, {html.escape(meta["scenario"]["duration"])}
at {html.escape(meta["scenario"]["step"])} steps, wall time {meta.get("wall_s", 0):.1f} s</p>
{table}
{figures}
</body></html>
"""
    )
    return page
