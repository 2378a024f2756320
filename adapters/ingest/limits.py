"""Plausibility limits per sensor, and the twin elements a mapping may name.

One spoofed or broken sensor must not move the twin: every value is checked against
its sensor's plausible range (in twin units) and, outside it, counted
(``implausible``), stored raw with quality 0 and kept out of the estimate. Ranges
come from

- the asset's ratings (:func:`adapters.mqtt.payloads.plausible_ranges`: PV, battery,
  load powers with a margin; SoC/SoH 0..1; temperatures);
- the grid tables: bus voltages 0.5..1.5 pu and angles within +-180 deg; branch
  currents 0..k x the rating (``max_i_ka`` of a line; ``sn_mva`` of a transformer at
  each side's voltage), branch powers within +-k x the rated apparent power; the POC's
  powers within +-k x the transformers' total rating, its frequency 45..65 Hz
  (``k`` = ``ingest.rating_margin``);
- a mapping row's ``min``/``max``, which override them.

A quantity without any of these has no limit (only finiteness).
"""

from __future__ import annotations

import math
from typing import Any

from adapters.ingest.mapping import ElementInfo
from adapters.mqtt.payloads import FIXED_RANGES, plausible_ranges

__all__ = [
    "BRANCH_QUANTITIES",
    "BUS_QUANTITIES",
    "POC_QUANTITIES",
    "element_table",
    "limit_of",
]

BUS_QUANTITIES = ("v_pu", "va_deg")
BRANCH_QUANTITIES = {
    "line": ("from", "to"),
    "trafo": ("hv", "lv"),
}
POC_QUANTITIES = ("p_kw", "q_kvar", "f_hz")
UNLIMITED = (-math.inf, math.inf)
SQRT3 = math.sqrt(3.0)


def _branch_quantities(kind: str) -> tuple[str, ...]:
    return tuple(
        f"{q}_{side}_{unit}"
        for side in BRANCH_QUANTITIES[kind]
        for q, unit in (("p", "kw"), ("q", "kvar"), ("i", "ka"))
    )


def _branch_ranges(kind: str, s_kva: float, i_ka: dict[str, float], k: float) -> dict:
    ranges = {}
    for side in BRANCH_QUANTITIES[kind]:
        ranges[f"p_{side}_kw"] = (-k * s_kva, k * s_kva)
        ranges[f"q_{side}_kvar"] = (-k * s_kva, k * s_kva)
        ranges[f"i_{side}_ka"] = (0.0, k * i_ka[side])
    return ranges


def element_table(
    scenario: Any, tables: Any, margin: float, poc: str = "poc"
) -> dict[str, ElementInfo]:
    """Every element a sensor may measure: assets, buses, lines, transformers, the POC.

    ``tables`` holds the grid's ``bus``, ``line`` and ``trafo`` tables (pandapower
    columns); ``margin`` is the rating factor ``k``.
    """
    from twin.assets.schema import ASSET_KINDS
    from twin.registry import get_model

    table: dict[str, ElementInfo] = {}
    for kind in ASSET_KINDS:
        cls = get_model(kind)
        for unit in scenario.units(kind):
            ranges = plausible_ranges(kind, unit) if kind in ("pv", "battery", "load") else {}
            if kind == "ev":  # a charger draws at most its rating (into the bus < 0)
                p = float(unit["p_max_kw"]) * margin
                ranges = {"p_kw": (-p, 0.05 * p)}
            # every element of the unit (an EV park and each of its chargers)
            for group, names in cls.element_names([unit]).items():
                outputs = frozenset(
                    n for n, port in cls.outputs.items() if (port.group or cls.kind) == group
                )
                if not outputs:
                    continue
                kept = {q: r for q, r in {**FIXED_RANGES, **ranges}.items() if q in outputs}
                for name in names:
                    table[name] = ElementInfo(kind, outputs, None, kept)
    bus = tables.bus
    vn = {int(i): float(v) for i, v in bus["vn_kv"].items()}
    for i in bus.index:
        table[f"bus_{i}"] = ElementInfo(
            "bus",
            frozenset(BUS_QUANTITIES),
            vn[int(i)],
            {"v_pu": (0.5, 1.5), "va_deg": (-180, 180)},
        )
    for i, row in tables.line.iterrows():
        i_ka = float(row["max_i_ka"])
        s_kva = SQRT3 * vn[int(row["from_bus"])] * i_ka * 1000.0
        table[f"line_{i}"] = ElementInfo(
            "line",
            frozenset(_branch_quantities("line")),
            vn[int(row["from_bus"])],
            _branch_ranges("line", s_kva, {"from": i_ka, "to": i_ka}, margin),
        )
    total_kva = 0.0
    for i, row in tables.trafo.iterrows():
        s_kva = float(row["sn_mva"]) * 1000.0
        total_kva += s_kva
        i_ka = {
            "hv": s_kva / (SQRT3 * float(row["vn_hv_kv"]) * 1000.0),
            "lv": s_kva / (SQRT3 * float(row["vn_lv_kv"]) * 1000.0),
        }
        table[f"trafo_{i}"] = ElementInfo(
            "trafo",
            frozenset(_branch_quantities("trafo")),
            float(row["vn_lv_kv"]),
            _branch_ranges("trafo", s_kva, i_ka, margin),
        )
    poc_ranges: dict[str, tuple[float, float]] = {"f_hz": (45.0, 65.0)}
    if total_kva:
        poc_ranges.update(
            p_kw=(-margin * total_kva, margin * total_kva),
            q_kvar=(-margin * total_kva, margin * total_kva),
        )
    table[poc] = ElementInfo("grid", frozenset(POC_QUANTITIES), None, poc_ranges)
    return table


def limit_of(info: ElementInfo, quantity: str) -> tuple[float, float]:
    """The plausible range of ``quantity`` of an element (unlimited when none is known)."""
    return info.ranges.get(quantity, UNLIMITED)
