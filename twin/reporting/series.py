"""The plant's time series: power flows, PV per plant, SoC, voltages, loading, prices, EVs.

Each ``*_section(runs)`` returns the section's :class:`~twin.reporting.page.Content`,
or :class:`~twin.reporting.page.Absent` when no run on the page has what it plots.
Limits come from the scenario: the SoC window of every battery, the grid's voltage band
(``grid.v_min_pu``/``v_max_pu``: the y axis always shows it, whatever the slack bus
does), 100 % line and transformer loading.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from twin.reporting.figures import Trace, limit_line, time_figure
from twin.reporting.page import Absent, Content
from twin.reporting.runs import RunData

__all__ = [
    "ev_section",
    "loading_section",
    "power_section",
    "prices_section",
    "pv_section",
    "soc_section",
    "voltage_section",
]

#: Lines drawn one by one besides the most loaded at each step.
TOP_LINES = 3


def _total(run: RunData, kind: str, quantity: str) -> pd.Series | None:
    table = run.series(kind, quantity)
    return None if table.empty else table.sum(axis=1)


def _content(*figures: go.Figure | None, note: str, html: str = "") -> Content | Absent:
    shown = tuple(f for f in figures if f is not None)
    return Content(html=html, figures=shown) if shown else Absent(note)


def power_section(runs: Sequence[RunData]) -> Content | Absent:
    """Site power flows: PV, loads, battery, EV charging and grid import (kW)."""

    def traces(run: RunData) -> list[Trace]:
        named = {
            "PV": _total(run, "pv", "p_kw"),
            "loads": _total(run, "load", "p_kw"),
            "battery (> 0 discharging)": _total(run, "battery", "p_kw"),
            "EV charging": _total(run, "ev", "p_kw"),
            "grid import (> 0 from the grid)": _total(run, "grid", "p_kw"),
        }
        return [Trace(k, v, step=True) for k, v in named.items() if v is not None]

    fig = time_figure(runs, "Power flows", "power into the site (kW)", traces, height=380)
    return _content(fig, note="no power flows recorded")


def pv_section(runs: Sequence[RunData]) -> Content | Absent:
    """Every PV plant: power available (MPP, dotted) and delivered."""

    def traces(run: RunData) -> list[Trace]:
        out = []
        delivered, available = run.series("pv", "p_kw"), run.series("pv", "p_avail_kw")
        for name in delivered.columns:
            if name in available:
                out.append(Trace(f"{name} available", available[name], step=True, dash="dot"))
            out.append(Trace(f"{name} delivered", delivered[name], step=True))
        return out

    fig = time_figure(runs, "PV per plant", "AC power (kW)", traces)
    return _content(fig, note="no PV plant in the run")


def soc_section(runs: Sequence[RunData]) -> Content | Absent:
    """State of charge of every battery, with its SoC window (``soc_min``..``soc_max``)."""

    def traces(run: RunData) -> list[Trace]:
        soc = run.series("battery", "soc")
        return [Trace(name, soc[name]) for name in soc.columns]

    fig = time_figure(runs, "Battery state of charge", "SoC (0..1)", traces)
    if fig is None:
        return Absent("no battery in the run")
    limits: dict[tuple[str, float], None] = {}
    for run in runs:
        for unit in run.units("battery"):
            for key in ("soc_min", "soc_max"):
                if unit.get(key) is not None:
                    limits[(f"{unit['name']} {key}", float(unit[key]))] = None
    for name, value in limits:
        limit_line(fig, value, name)
    fig.update_yaxes(range=[0.0, 1.0])
    return Content(figures=(fig,))


def voltage_section(runs: Sequence[RunData]) -> Content | Absent:
    """Lowest and highest bus voltage at each step, with the grid's band limits."""

    def traces(run: RunData) -> list[Trace]:
        v = run.series("bus", "v_pu")
        if v.empty:
            return []
        low, high = v.idxmin(axis=1).mode(), v.idxmax(axis=1).mode()
        return [
            Trace(f"highest bus (mostly {high.iloc[0]})", v.max(axis=1)),
            Trace(f"lowest bus (mostly {low.iloc[0]})", v.min(axis=1)),
        ]

    fig = time_figure(runs, "Bus voltages", "voltage (pu)", traces)
    if fig is None:
        return Absent("no bus voltages recorded")
    values = [v for trace in fig.data for v in trace.y if v == v]
    band = {
        (float(run.scenario["grid"]["v_min_pu"]), float(run.scenario["grid"]["v_max_pu"]))
        for run in runs
    }
    lows, highs = [b[0] for b in band], [b[1] for b in band]
    for low, high in sorted(band):
        limit_line(fig, low, "v_min_pu")
        limit_line(fig, high, "v_max_pu")
    span = max(max(highs + values) - min(lows + values), 1e-3)
    fig.update_yaxes(range=[min(lows + values) - 0.08 * span, max(highs + values) + 0.08 * span])
    return Content(figures=(fig,))


def loading_section(runs: Sequence[RunData]) -> Content | Absent:
    """Line loading (the most loaded line, and the top lines) and transformers, vs 100 %."""

    def line_traces(run: RunData) -> list[Trace]:
        lines = run.series("line", "loading_pct")
        if lines.empty:
            return []
        top = lines.max().sort_values(ascending=False).index[:TOP_LINES]
        out = [Trace("most loaded line", lines.max(axis=1))]
        return out + [Trace(name, lines[name]) for name in top]

    def trafo_traces(run: RunData) -> list[Trace]:
        trafos = run.series("trafo", "trafo_loading_pct")
        return [Trace(name, trafos[name]) for name in trafos.columns]

    figures = []
    for title, traces in (("Line loading", line_traces), ("Transformer loading", trafo_traces)):
        fig = time_figure(runs, title, "loading (%)", traces, height=300)
        if fig is not None:
            limit_line(fig, 100.0, "limit %")
            top = max([v for t in fig.data for v in t.y if v == v] + [100.0])
            fig.update_yaxes(range=[0.0, 1.08 * top])
        figures.append(fig)
    return _content(*figures, note="no line or transformer loading recorded")


def prices_section(runs: Sequence[RunData]) -> Content | Absent:
    """Import and export prices of the tariff (EUR/kWh)."""

    def traces(run: RunData) -> list[Trace]:
        out = []
        for quantity, name in (
            ("price_import_eur_kwh", "import"),
            ("price_export_eur_kwh", "export"),
        ):
            table = run.series("tariff", quantity)
            if not table.empty:
                out.append(Trace(name, table.iloc[:, 0], step=True))
        return out

    fig = time_figure(runs, "Prices", "price (EUR/kWh)", traces, height=300)
    return _content(fig, note="no tariff recorded")


def ev_section(runs: Sequence[RunData]) -> Content | Absent:
    """EV charging per charger, EVs connected and turned away, energy delivered and unmet."""
    many = len(runs) > 1

    def power(run: RunData) -> list[Trace]:
        p = -run.series("ev", "p_kw")
        stack = {} if many else {"stackgroup": "ev"}
        return [Trace(name, p[name], step=not stack, options=stack) for name in p.columns]

    def connected(run: RunData) -> list[Trace]:
        if run.series("ev", "connected").empty:
            return []
        out = [Trace("connected", run.series("ev", "connected").sum(axis=1), step=True)]
        away = run.series("ev_park", "n_turned_away")
        if not away.empty:
            out.append(Trace("turned away (cumulative)", away.sum(axis=1).cumsum()))
        return out

    def energy(run: RunData) -> list[Trace]:
        out = []
        for quantity, name in (
            ("e_delivered_kwh", "delivered (grid side)"),
            ("e_unmet_kwh", "unmet at departure"),
        ):
            table = run.series("ev_park", quantity)
            if not table.empty:
                out.append(Trace(name, table.sum(axis=1).cumsum()))
        return out

    figures = (
        time_figure(runs, "EV charging per charger", "charging power (kW)", power),
        time_figure(runs, "Connected EVs", "EVs", connected, height=280),
        time_figure(runs, "EV energy", "energy, cumulative (kWh)", energy, height=280),
    )
    return _content(*figures, note="no EV charging in the run")
