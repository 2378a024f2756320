"""What was observed beside the twin: devices in the loop, sensors, diagnostics.

* :func:`measured_section`: in a hybrid or hardware-in-the-loop run, every quantity a
  device measured (``source=real`` rows) against the twin's (``source=twin``), the
  residuals (``source=residual``) and the device's data quality (``real``/``quality``:
  1 when every measurement was fresh, 0 when the twin's model stood in). Where sensor
  faults were injected, the sensed values (``source=measured``) of their targets too.
* :func:`health_section`: health indices of ``twin diagnose`` (or the online diagnostics),
  the lowest first, with the alert episodes shaded.
* :func:`alerts_section`: the alert episodes as a table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from twin.reporting.figures import ALERT_FILL, Trace, shade, time_figure
from twin.reporting.labels import quantity_label
from twin.reporting.page import Absent, Content
from twin.reporting.runs import RunData

__all__ = ["alerts_section", "health_section", "measured_section"]

#: Health indices drawn (the lowest over the run first).
TOP_INDICES = 8


def _measured_keys(run: RunData) -> list[tuple[str, str, str, str]]:
    """(source, kind, asset, quantity) of the measured series to set against the twin.

    Every device measurement (``real``), and the sensed values (``measured``) of the
    targets of sensor faults (``<asset>.<quantity>``).
    """
    rows = run.results
    if "source" not in rows:
        return []
    sensed = {tuple(str(f["target"]).split(".", 1)) for f in run.faults if "." in str(f["target"])}
    keys = []
    for source in ("real", "measured"):
        sel = rows[(rows["source"] == source) & (rows["quantity"] != "quality")]
        found = sel[["kind", "asset", "quantity"]].astype(str).drop_duplicates()
        keys += [
            (source, k, a, q)
            for k, a, q in found.itertuples(index=False)
            if source == "real" or (a, q) in sensed
        ]
    return sorted(keys)


def measured_section(runs: Sequence[RunData]) -> Content | Absent:
    """Device (or sensor) vs twin per measured quantity, residuals, and data quality."""
    figures = []
    keys = sorted({key[1:] + (key[0],) for run in runs for key in _measured_keys(run)})
    for kind, asset, quantity, source in keys:
        what = "device" if source == "real" else "sensed"

        def traces(run: RunData, k=kind, a=asset, q=quantity, s=source, w=what) -> list[Trace]:
            twin, seen = run.series(k, q), run.series(k, q, s)
            if a not in seen:
                return []
            return [Trace(f"{w} {a}", seen[a], step=True), Trace(f"twin {a}", twin[a], dash="dot")]

        title = f"{asset} {quantity_label(quantity)}: {what} vs twin"
        figures.append(time_figure(runs, title, quantity_label(quantity), traces, height=300))

    def residuals(run: RunData) -> list[Trace]:
        rows = run.results
        sel = rows[rows["source"] == "residual"] if "source" in rows else rows.iloc[:0]
        found = sel[["kind", "quantity"]].astype(str).drop_duplicates()
        out = []
        for k, q in sorted(found.itertuples(index=False)):
            table = run.series(k, q, "residual")
            out += [Trace(f"{a} {quantity_label(q)}", table[a], step=True) for a in table.columns]
        return out

    def quality(run: RunData) -> list[Trace]:
        rows = run.results
        if "source" not in rows:
            return []
        sel = rows[(rows["source"] == "real") & (rows["quantity"] == "quality")]
        out = []
        for k in sorted(sel["kind"].astype(str).unique()):
            table = run.series(k, "quality", "real")
            out += [Trace(f"{a} quality", table[a], step=True) for a in table.columns]
        return out

    figures.append(
        time_figure(runs, "Residuals, device - twin", "residual (unit of the quantity)", residuals)
    )
    fig = time_figure(
        runs, "Data quality (1: every measurement fresh, 0: the model stood in)", "quality", quality
    )
    if fig is not None:
        fig.update_yaxes(range=[-0.05, 1.05])
    figures.append(fig)
    shown = tuple(f for f in figures if f is not None)
    if not shown:
        return Absent("no device in the loop and no sensor fault: nothing measured to compare")
    return Content(figures=shown)


def _alert_windows(run: RunData) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """(start, end, label) of every alert episode in site time (open ones to the end)."""
    alerts = run.alerts
    if alerts is None or alerts.empty:
        return []
    end_of_run = run.results["time"].max()
    out = []
    for row in alerts.itertuples(index=False):
        end = row.end if pd.notna(row.end) else end_of_run
        start, stop = run.local([row.start, end])
        out.append((start, stop, f"alert: {row.kind} {row.asset}"))
    return out


def health_section(runs: Sequence[RunData]) -> Content | Absent:
    """Health indices (0..1, 1 healthy), the lowest first; alert episodes shaded."""
    if all(run.health is None for run in runs):
        return Absent("no diagnostics ran (`twin diagnose RUN` writes health indices)")

    def traces(run: RunData) -> list[Trace]:
        health = run.health
        if health is None or health.empty:
            return []
        table = health.pivot_table(  # on UTC: two instants never share a row
            index="time",
            columns=["asset", "quantity"],
            values="value",
            aggfunc="mean",
            observed=True,
        )
        table.index = run.local(table.index)
        lowest = table.min().dropna().sort_values().index[:TOP_INDICES]
        return [Trace(f"{a} {q}", table[(a, q)], step=True) for a, q in lowest]

    fig = time_figure(runs, f"Health indices (the {TOP_INDICES} lowest)", "index", traces)
    if fig is None:
        return Absent("the diagnostics recorded no health index")
    fig.update_yaxes(range=[-0.02, 1.05])
    for run in runs:
        for start, end, text in _alert_windows(run):
            shade(fig, start, end, text, ALERT_FILL)
    note = f"<p class='note'>Indices of {_count_assets(runs)} asset(s); the lowest are drawn.</p>"
    return Content(html=note, figures=(fig,))


def _count_assets(runs: Sequence[RunData]) -> int:
    return len(
        {str(a) for run in runs if run.health is not None for a in run.health["asset"].unique()}
    )


def alerts_section(runs: Sequence[RunData]) -> Content | Absent:
    """The alert episodes of the diagnostics: asset, kind, severity, window, detector."""
    if all(run.alerts is None for run in runs):
        return Absent("no diagnostics ran: no alerts")
    rows = []
    for run in runs:
        alerts = run.alerts
        if alerts is None:
            continue
        for row in alerts.itertuples(index=False):
            start = run.local([row.start])[0]
            end = "open" if pd.isna(row.end) else str(run.local([row.end])[0])
            cells = [run.label] if len(runs) > 1 else []
            cells += [
                str(row.asset),
                str(row.kind),
                str(row.severity),
                str(start),
                end,
                str(row.status),
                str(row.detector),
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        return Content(html="<p>The diagnostics raised no alert.</p>", linked=False)
    head = (["run"] if len(runs) > 1 else []) + [
        "asset",
        "kind",
        "severity",
        "start (site time)",
        "end",
        "status",
        "detector",
    ]
    header = "".join(f"<th>{h}</th>" for h in head)
    return Content(html=f"<table><tr>{header}</tr>{''.join(rows)}</table>", linked=False)
