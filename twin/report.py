"""``twin report``: plots of a finished run as PNG files and one HTML page."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
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

__all__ = ["PLOTS", "render_report"]


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


def read_run_dir(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """``run.json``, ``kpis.json`` and the results of a run directory, checked.

    Raises
    ------
    ResultsError
        Naming the file that cannot be read or lacks what a report needs.
    """
    where = run_dir / "run.json"
    try:
        meta = read_run(run_dir)
        str(meta["run_id"]), meta["scenario"]["name"], ZoneInfo(meta["scenario"]["site"]["tz"])
        for key in ("start", "duration", "step"):
            str(meta["scenario"][key])
        where = run_dir / "kpis.json"
        kpis = json.loads(where.read_text())
        if not isinstance(kpis, dict):
            raise TypeError(f"expected a mapping of KPIs, got {type(kpis).__name__}")
        where = run_dir / "results.parquet"
        results = load_results(run_dir)
        missing = set(RESULT_COLUMNS) - set(results.columns)
        if missing:
            raise KeyError(f"columns {', '.join(sorted(missing))}")
    except (OSError, ValueError, TypeError, KeyError, IndexError, ZoneInfoNotFoundError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).split("\n")[0]
        raise ResultsError(f"{where} is corrupt or not written by twin run: {detail}") from None
    return meta, kpis, results


def render_report(run_dir: str | Path) -> Path:
    """Write ``<name>.png`` for every plot and ``report.html`` into ``run_dir``.

    Raises
    ------
    TwinError
        If ``run_dir`` is not the directory of a finished run
        (:class:`~twin.errors.ResultsError` if one of its files is corrupt).
    """
    run_dir = Path(run_dir)
    for needed in ("results.parquet", "run.json", "kpis.json"):
        if not (run_dir / needed).is_file():
            raise TwinError(f"{run_dir} is not a finished run: {needed} is missing")
    meta, kpis, results = read_run_dir(run_dir)
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
        for label, value in kpi_rows(kpis)
    )
    figures = "\n".join(f'<img src="{img}" alt="{img}" style="max-width:100%">' for img in images)
    name = html.escape(meta["scenario"]["name"])
    page = run_dir / "report.html"
    page.write_text(
        f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{name}: twin report</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 12px}}
tr:nth-child(even){{background:#f3f3f3}}</style></head>
<body><h1>{name}</h1><p>run {html.escape(meta["run_id"])},
{html.escape(str(meta["scenario"]["start"]))}, {html.escape(meta["scenario"]["duration"])}
at {html.escape(meta["scenario"]["step"])} steps, wall time {meta.get("wall_s", 0):.1f} s</p>
<table>{rows}</table>
{figures}
</body></html>
"""
    )
    return page
