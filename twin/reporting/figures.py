"""Time-series figures of one run or several overlaid: styles, limit lines, fault windows.

:func:`time_figure` draws the traces a section picks from each run (:class:`Trace`).
One run: every trace in its own colour. Several runs: one colour per run, a dash
pattern per trace, names prefixed with the run's label. The legend sits above the plot
area (never over the data), faults of the runs are shaded, and :func:`limit_line` draws
a dashed horizontal limit with its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from twin.reporting.downsample import BUCKETS, WEBGL_POINTS, bucket_means, min_max_buckets
from twin.reporting.runs import RunData

__all__ = ["Trace", "base_layout", "fault_windows", "limit_line", "shade", "time_figure"]

#: One colour per run when runs are compared.
RUN_COLORS = qualitative.D3
#: Dash patterns of a run's traces when runs are compared.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
#: Fill of fault windows and of alert episodes.
FAULT_FILL = "rgba(211,47,47,0.12)"
ALERT_FILL = "rgba(255,143,0,0.18)"


@dataclass(frozen=True)
class Trace:
    """A series to draw: its name and values (site time), and plotly line options.

    Attributes
    ----------
    name : str
        Legend entry.
    values : pandas.Series
        Indexed by site time (:meth:`RunData.series`).
    step : bool
        Drawn as steps (a mean over the step that follows the time stamp).
    dash : str, optional
        A dash pattern for a single run (``dot`` for what was available, ...).
    options : dict
        More ``go.Scatter`` options (``stackgroup``, ``fill``).
    """

    name: str
    values: pd.Series
    step: bool = False
    dash: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def base_layout(fig: go.Figure, title: str, y_title: str, x_title: str, height: int) -> None:
    """Title top left, the legend in a row above the plot area, margins for both."""
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "y": 0.98, "yanchor": "top"},
        height=height,
        template="plotly_white",
        margin={"l": 70, "r": 30, "t": 90, "b": 50},
        legend={"orientation": "h", "x": 0.0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
        hovermode="x unified",
        showlegend=True,
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": y_title}},
    )


def time_figure(
    runs: Sequence[RunData],
    title: str,
    y_title: str,
    traces_of: Callable[[RunData], list[Trace]],
    *,
    height: int = 340,
) -> go.Figure | None:
    """A time-series figure of every run's traces; None if no run has any.

    Parameters
    ----------
    runs : sequence of RunData
        One run, or several overlaid.
    title, y_title : str
        Figure title and y axis title (with the unit).
    traces_of : callable
        ``traces_of(run) -> list[Trace]``: what to draw of a run (empty: nothing).
    height : int
        Height in pixels.
    """
    fig = go.Figure()
    many = len(runs) > 1
    drawn, reduced = 0, False
    for i, run in enumerate(runs):
        for j, trace in enumerate(traces_of(run)):
            values = trace.values  # NaNs kept: plotly breaks the line at a gap
            long = len(values) > WEBGL_POINTS
            if long:
                stacked = "stackgroup" in trace.options  # areas add up: means, not extremes
                values = bucket_means(values) if stacked else min_max_buckets(values)
                reduced = True
            kind = go.Scattergl if long and "stackgroup" not in trace.options else go.Scatter
            line: dict[str, Any] = {"shape": "hv" if trace.step else "linear"}
            if many:
                line |= {"color": RUN_COLORS[i % len(RUN_COLORS)], "dash": DASHES[j % len(DASHES)]}
            elif trace.dash:
                line["dash"] = trace.dash
            fig.add_trace(
                kind(
                    x=values.index,
                    y=values.to_numpy(),
                    name=f"{run.label}: {trace.name}" if many else trace.name,
                    mode="lines",
                    line=line,
                    legendgroup=run.label if many else None,
                    **trace.options,
                )
            )
            drawn += 1
    if not drawn:
        return None
    tz = sorted({run.time_title for run in runs})
    if reduced:
        title += f" (long series: min and max of {BUCKETS:,} time slices)"
    base_layout(fig, title, y_title, f"time ({', '.join(tz)})", height)
    for start, end, text in fault_windows(runs):
        shade(fig, start, end, text, FAULT_FILL)
    return fig


def fault_windows(runs: Sequence[RunData]) -> list[tuple[Any, Any, str]]:
    """(start, end, label) of every fault of the runs, in site time, each window once.

    A fault every run had is labelled ``fault: kind target``; one only some runs had
    names them: ``fault (run a, run b): kind target``.
    """
    had: dict[tuple[Any, Any, str], list[str]] = {}
    for run in runs:
        for fault in run.faults:
            start, end = run.local([fault["start"], fault["end"]])
            key = (start, end, f"{fault['kind']} {fault['target']}")
            had.setdefault(key, []).append(run.label)
    windows = []
    for (start, end, what), labels in had.items():
        who = "" if len(runs) == 1 or len(labels) == len(runs) else f" ({', '.join(labels)})"
        windows.append((start, end, f"fault{who}: {what}"))
    return windows


def shade(fig: go.Figure, start: Any, end: Any, text: str, fill: str) -> None:
    """Shade ``start..end`` over the whole height, with a small label inside at the top."""
    fig.add_vrect(
        x0=start,
        x1=end,
        fillcolor=fill,
        line_width=0,
        layer="below",
        name=text,
        annotation={"text": text, "font": {"size": 10}, "showarrow": False},
        annotation_position="top left",
    )


def limit_line(fig: go.Figure, y: float, name: str, color: str = "#b71c1c") -> None:
    """A dashed horizontal limit named in the plot (a shape with ``name``)."""
    fig.add_hline(
        y=y,
        line={"color": color, "dash": "dash", "width": 1.2},
        name=name,
        annotation={"text": f"{name} {y:g}", "font": {"size": 10, "color": color}},
        annotation_position="bottom right",
    )
