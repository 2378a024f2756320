"""A fleet's results and KPIs, combined from its sites' runs.

Every site is a run directory of its own (``sites/<site>/``: ``results.parquet``,
``run.json``, ``kpis.json``), whether the sites shared one world or ran apart. The fleet
run directory adds ``results.parquet`` (every site's rows, streamed a row group at a
time, each row tagged with its ``site``: read it with
:func:`twin.results.open_results` and filter ``site=...``; :meth:`Results.wide` over
the whole fleet puts sites' equally named assets in one column, so select a site
first) and ``kpis.json``: ``{"sites": {site: KPIs}, "fleet": totals}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["MAX_KPIS", "MIN_KPIS", "SUMMED_SUFFIXES", "combine_results", "fleet_totals"]

#: KPIs summed over the sites: energies, money, emissions, counts of steps.
SUMMED_SUFFIXES = ("_kwh", "_eur", "_kg", "_steps", "_eur_year", "_year_eur")
#: Counts summed over the sites.
SUMMED = frozenset({"voltage_violations", "ev_served", "ev_turned_away"})
#: KPIs whose fleet value is the largest site's.
MAX_KPIS = frozenset({"v_max_pu", "line_loading_max_pct", "battery_t_max_c"})
#: KPIs whose fleet value is the smallest site's.
MIN_KPIS = frozenset({"v_min_pu"})


def combine_results(out: Path, sites: Iterable[str]) -> int:
    """Stream the sites' ``results.parquet`` (those that exist) into ``out/results.parquet``.

    Returns the rows written (0, and no file, if no site has results).
    """
    from twin.results import merge_parts

    parts = [out / "sites" / s / "results.parquet" for s in sites]
    parts = [p for p in parts if p.is_file()]
    if not parts:
        return 0
    return merge_parts(parts, out / "results.parquet")


def fleet_totals(out: Path, kpis: dict[str, dict[str, float]]) -> dict[str, float]:
    """The fleet's KPIs from its sites' (``kpis``: the finished sites' KPIs by site).

    Energies, money, emissions and counts are summed; extremes (voltages, loading,
    temperature) are the worst site's; ``peak_import_kw`` is the coincident peak, the
    largest sum of the sites' imports at one step (from their results); ratios are
    per site only. ``sites`` counts the sites summed.
    """
    totals: dict[str, float] = {"sites": float(len(kpis))}
    keys = sorted({key for site in kpis.values() for key in site})
    for key in keys:
        values = [float(site[key]) for site in kpis.values() if key in site]
        values = [v for v in values if not math.isnan(v)]
        if not values:
            continue
        if key in SUMMED or key.endswith(SUMMED_SUFFIXES):
            totals[key] = float(sum(values))
        elif key in MAX_KPIS:
            totals[key] = max(values)
        elif key in MIN_KPIS:
            totals[key] = min(values)
    if kpis:
        totals["peak_import_kw"] = _coincident_peak_kw(out, list(kpis))
    return totals


def _coincident_peak_kw(out: Path, sites: list[str]) -> float:
    """The largest sum of the sites' imports at the point of connection at one step."""
    from twin.results import open_results

    total: Any = None
    for site in sites:
        poc = open_results(out / "sites" / site).wide("grid", "p_kw")
        if "poc" not in poc:
            continue
        imports = poc["poc"].clip(lower=0.0)
        total = imports if total is None else total.add(imports, fill_value=0.0)
    return float("nan") if total is None else float(total.max())
