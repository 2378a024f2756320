"""What should I build: NPV and emissions of a campaign against its two sizing axes.

A campaign over battery size and PV size (``scenarios/campaigns/what_to_build.yaml``)
whose base scenario has ``economics`` and ``carbon`` sections writes, per point, the
net present value and the avoided emissions in its ``summary.parquet``.
:func:`what_to_build_table` arranges one KPI of the summary as a grid over the two
axes, :func:`what_to_build_figure` draws one heatmap per KPI from exactly those grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from twin.errors import TwinError
from twin.whatif.labels import kpi_label

__all__ = [
    "WHAT_TO_BUILD_KPIS",
    "CampaignChartError",
    "what_to_build_figure",
    "what_to_build_table",
]

#: The KPIs the chart shows by default: money and carbon per year of the investment.
WHAT_TO_BUILD_KPIS = ("npv_eur", "co2_avoided_year_kg")


class CampaignChartError(TwinError):
    """A campaign summary cannot be drawn over the axes asked for."""


def what_to_build_table(summary: pd.DataFrame, x: str, y: str, kpi: str) -> pd.DataFrame:
    """One KPI of the finished points as a table: ``y`` values down, ``x`` values across.

    A point that did not finish is NaN (shown blank, never as a number).

    Raises
    ------
    CampaignChartError
        If a column is missing, or two points share an (x, y) pair (another axis varies:
        select its value first).
    """
    missing = [c for c in (x, y, kpi, "status") if c not in summary.columns]
    if missing:
        raise CampaignChartError(
            f"campaign summary has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, summary.columns))})"
        )
    if summary.duplicated([x, y]).any():
        raise CampaignChartError(
            f"several points share values of {x!r} and {y!r}: another axis varies; "
            "select one value of it from the summary first"
        )
    values = summary[kpi].where(summary["status"] == "finished")
    table = summary.assign(_value=values.astype(float)).pivot(index=y, columns=x, values="_value")
    return table.sort_index().sort_index(axis=1)


def what_to_build_figure(
    summary: pd.DataFrame,
    x: str,
    y: str,
    kpis: Sequence[str] = WHAT_TO_BUILD_KPIS,
    labels: dict[str, str] | None = None,
) -> Any:
    """Heatmaps of ``kpis`` over the axes ``x`` and ``y`` of a campaign summary.

    Parameters
    ----------
    summary : pandas.DataFrame
        The campaign's ``summary.parquet``.
    x, y : str
        The axis columns (``assets.battery[0].e_kwh``, ``assets.pv[0].p_dc_kw``).
    kpis : sequence of str
        The KPIs to draw, one heatmap each (default: NPV and avoided emissions per year).
    labels : dict of str to str, optional
        Axis titles by column (default: the column names).

    Returns
    -------
    plotly.graph_objects.Figure
        One heatmap per KPI side by side, each cell annotated with its value.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    labels = labels or {}
    titles = [kpi_label(kpi) for kpi in kpis]
    figure = make_subplots(rows=1, cols=len(kpis), subplot_titles=titles, horizontal_spacing=0.2)
    for i, kpi in enumerate(kpis, start=1):
        table = what_to_build_table(summary, x, y, kpi)
        right = figure.get_subplot(1, i).xaxis.domain[1]  # its colour bar beside it
        figure.add_trace(
            go.Heatmap(
                x=[str(v) for v in table.columns],
                y=[str(v) for v in table.index],
                z=table.to_numpy(),
                name=kpi,
                colorscale="RdYlGn",
                zmid=0.0,  # red loses, green gains, whatever the range
                texttemplate="%{z:,.0f}",
                colorbar={"x": right + 0.01, "len": 0.9},
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{kpi}=%{{z:,.1f}}<extra></extra>",
            ),
            row=1,
            col=i,
        )
        figure.update_xaxes(title_text=labels.get(x, x), type="category", row=1, col=i)
        figure.update_yaxes(title_text=labels.get(y, y), type="category", row=1, col=i)
    figure.update_layout(title="What should I build? (per point of the campaign)")
    return figure
