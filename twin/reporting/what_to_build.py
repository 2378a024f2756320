"""What should I build: heatmaps of a campaign's NPV and avoided emissions over two axes.

The grids come from :func:`twin.whatif.campaign_chart.what_to_build_table`; the KPI
labels from :mod:`twin.reporting.labels`, like every other KPI of a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from twin.reporting.labels import kpi_spec
from twin.whatif.campaign_chart import WHAT_TO_BUILD_KPIS, what_to_build_table

__all__ = ["what_to_build_figure"]


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
    titles = [kpi_spec(kpi).label for kpi in kpis]
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
