"""What should I build: NPV and emissions of a campaign against its two sizing axes.

A campaign over battery size and PV size (``scenarios/campaigns/what_to_build.yaml``)
whose base scenario has ``economics`` and ``carbon`` sections writes, per point, the
net present value and the avoided emissions in its ``summary.parquet``.
:func:`what_to_build_table` arranges one KPI of the summary as a grid over the two
axes; :func:`twin.reporting.what_to_build.what_to_build_figure` draws one heatmap per KPI
from exactly those grids.
"""

from __future__ import annotations

import pandas as pd

from twin.errors import TwinError

__all__ = [
    "WHAT_TO_BUILD_KPIS",
    "CampaignChartError",
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
