"""InfluxQL of the Grafana panels: one aggregation rule per kind of panel, and units.

Every time-series query buckets by ``$__interval`` and must give the right value at any
bucket width (15 min or 6 h), so what a bucket holds is decided here once:

- :func:`per_asset`: one series per asset, the **mean** over the bucket (a power row is the
  mean over its step, so the bucket mean is the mean power over the bucket);
- :func:`total`: one series, the **sum over assets of each asset's bucket mean**
  (``SELECT sum(..) FROM (SELECT mean(..) .. GROUP BY time, asset)``); a plain ``sum()``
  would add every row of every asset in the bucket and grow with the bucket width;
- :func:`extreme`: one series, the minimum or maximum over assets and over the bucket.

Units come from the quantity's name (``p_kw``, ``soc``, ``t_c``: DESIGN.md, conventions),
by :func:`unit_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.base import Clock

__all__ = [
    "RUN",
    "RUN_END",
    "RUN_START",
    "extreme",
    "per_asset",
    "residuals",
    "run_span_fields",
    "total",
    "unit_of",
]

RUN = "site =~ /^$site$/ AND run_id =~ /^$run_id$/"
# Fields of a run's ``kpi`` point giving its span, so a dashboard can open a past run.
RUN_START, RUN_END = "run_start_ms", "run_end_ms"


def run_span_fields(clock: Clock) -> dict[str, float]:
    """``run_start_ms`` / ``run_end_ms``: start of the first step, end of the last (Unix ms)."""
    first = int(clock.start.tz_convert("UTC").timestamp()) * 1000
    return {RUN_START: float(first), RUN_END: float(first + 1000 * clock.end_s)}


# Grafana unit ids by quantity-name suffix, longest first (``_eur_kwh`` before ``_kwh``).
UNIT_SUFFIXES = (
    ("_eur_kwh", "suffix: EUR/kWh"),
    ("_kwh", "kwatth"),
    ("_kvar", "kvoltampreact"),
    ("_kw", "kwatt"),
    ("_pct", "percent"),
    ("_pu", "none"),
    ("_hz", "hertz"),
    ("_deg", "degree"),
    ("_eur", "currencyEUR"),
    ("_c", "celsius"),
)
RATIOS = ("soc", "soh", "self_sufficiency", "self_consumption")


def unit_of(quantity: str) -> str:
    """Grafana's unit id for a quantity named by the project's conventions.

    Parameters
    ----------
    quantity : str
        A field name such as ``p_kw``, ``soc``, ``t_cell_c``.

    Returns
    -------
    str
        ``kwatt``, ``percentunit`` (ratios 0..1), ``celsius`` ... or ``none``.
    """
    if quantity in RATIOS:
        return "percentunit"
    for suffix, unit in UNIT_SUFFIXES:
        if quantity.endswith(suffix):
            return unit
    return "none"


def _where(where: str) -> str:
    return f"{RUN} AND {where} AND $timeFilter" if where else f"{RUN} AND $timeFilter"


def per_asset(measurement: str, field: str, where: str = "", *, by: str = '"asset"') -> str:
    """The bucket mean of ``field``, one series per asset (``by``: the GROUP BY tags)."""
    return (
        f'SELECT mean("{field}") AS "{field}" FROM "{measurement}" WHERE {_where(where)} '
        f"GROUP BY time($__interval), {by} fill(none)"
    )


def total(measurement: str, field: str, where: str = "", alias: str = "") -> str:
    """The sum over assets of each asset's bucket mean: the site total at any interval."""
    name = alias or field
    inner = (
        f'SELECT mean("{field}") AS "{field}" FROM "{measurement}" WHERE {_where(where)} '
        'GROUP BY time($__interval), "asset" fill(none)'
    )
    return (
        f'SELECT sum("{field}") AS "{name}" FROM ({inner}) WHERE $timeFilter '
        "GROUP BY time($__interval) fill(none)"
    )


def extreme(measurement: str, field: str, agg: str, where: str = "") -> str:
    """``min`` or ``max`` of ``field`` over every asset and the whole bucket."""
    if agg not in ("min", "max"):
        raise ValueError(f"extreme: agg must be 'min' or 'max', got {agg!r}")
    return (
        f'SELECT {agg}("{field}") AS "{agg} {field}" FROM "{measurement}" WHERE '
        f"{_where(where)} GROUP BY time($__interval) fill(none)"
    )


def residuals(pattern: str) -> str:
    """Bucket means of the residual (measured - twin) fields whose names match ``pattern``.

    ``pattern`` is an InfluxQL field regex (``_kw$``), so a new device quantity of that
    unit appears without editing the dashboard.
    """
    where = _where("source = 'residual'")
    return (
        f"SELECT mean(/{pattern}/) FROM /^(battery|pv|load|ev)$/ WHERE {where} "
        'GROUP BY time($__interval), "asset" fill(none)'
    )
