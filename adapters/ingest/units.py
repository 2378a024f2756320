"""Field units to the twin's units: one affine conversion ``twin = a * field + b``.

The twin quantity names carry their unit (``p_kw``, ``q_kvar``, ``i_from_ka``, ``v_pu``,
``va_deg``, ``t_c``, ``soc``, ``f_hz``); a field unit (what a sensor or gateway publishes:
``W``, ``kvar``, ``V``, ``A``, ``Cel``, ``K``, ``%``, ``/``, ``Hz`` and the SenML/IANA
spellings) is converted to it. Voltages to per unit need the bus's nominal voltage
``vn_kv`` (line-to-line, as pandapower's): a ``line`` voltage is divided by it, a
``phase`` (line-to-neutral) voltage is first multiplied by sqrt(3).
"""

from __future__ import annotations

import math

from twin.errors import TwinError

__all__ = [
    "FIELD_UNITS",
    "UnitError",
    "conversion",
    "twin_unit",
]

SQRT3 = math.sqrt(3.0)


class UnitError(TwinError, ValueError):
    """A field unit that is unknown or cannot be converted to the twin quantity's unit."""


#: Field unit -> (dimension, factor to the dimension's base, offset). Bases: kW, kvar,
#: kV (line-to-line unless the mapping says phase), kA, degC, ratio, Hz, deg.
FIELD_UNITS: dict[str, tuple[str, float, float]] = {
    "W": ("power", 1e-3, 0.0),
    "kW": ("power", 1.0, 0.0),
    "MW": ("power", 1e3, 0.0),
    "var": ("reactive", 1e-3, 0.0),
    "VAr": ("reactive", 1e-3, 0.0),
    "kvar": ("reactive", 1.0, 0.0),
    "kVAr": ("reactive", 1.0, 0.0),
    "Mvar": ("reactive", 1e3, 0.0),
    "MVAr": ("reactive", 1e3, 0.0),
    "V": ("voltage", 1e-3, 0.0),
    "kV": ("voltage", 1.0, 0.0),
    "pu": ("pu", 1.0, 0.0),
    "A": ("current", 1e-3, 0.0),
    "kA": ("current", 1.0, 0.0),
    "Cel": ("temperature", 1.0, 0.0),
    "degC": ("temperature", 1.0, 0.0),
    "K": ("temperature", 1.0, -273.15),
    "%": ("ratio", 0.01, 0.0),
    "/": ("ratio", 1.0, 0.0),
    "ratio": ("ratio", 1.0, 0.0),
    "Hz": ("frequency", 1.0, 0.0),
    "deg": ("angle", 1.0, 0.0),
    "rad": ("angle", 180.0 / math.pi, 0.0),
}

#: Twin unit (by quantity suffix) -> (unit, dimension).
_SUFFIXES = (
    ("_kvar", "kvar", "reactive"),
    ("_kw", "kW", "power"),
    ("_ka", "kA", "current"),
    ("_pu", "pu", "pu"),
    ("_deg", "deg", "angle"),
    ("_hz", "Hz", "frequency"),
    ("_c", "Cel", "temperature"),
)
_RATIOS = ("soc", "soh", "power_avail", "tripped")


def twin_unit(quantity: str) -> tuple[str, str]:
    """(unit, dimension) of a twin quantity, from its name.

    Raises
    ------
    UnitError
        For a quantity whose name carries no unit the twin knows.
    """
    if quantity in _RATIOS:
        return "/", "ratio"
    for suffix, unit, dimension in _SUFFIXES:
        if quantity.endswith(suffix):
            return unit, dimension
    raise UnitError(f"quantity {quantity!r} carries no known unit in its name")


def conversion(
    unit: str | None, quantity: str, *, vn_kv: float | None = None, voltage: str = "line"
) -> tuple[float, float]:
    """``(a, b)`` with ``twin = a * field + b`` for ``unit`` into ``quantity``'s unit.

    ``unit`` None means the value is already in the twin's unit. ``vn_kv`` (the bus's
    nominal line-to-line voltage) is needed for a voltage into ``v_pu``; ``voltage``
    says whether the field voltage is ``line`` (line-to-line) or ``phase``.

    Raises
    ------
    UnitError
        For an unknown unit, a unit of another dimension, or a voltage to per unit
        without ``vn_kv``.
    """
    target, dimension = twin_unit(quantity)
    if unit is None:
        return 1.0, 0.0
    known = FIELD_UNITS.get(unit)
    if known is None:
        raise UnitError(f"unknown unit {unit!r}; known: {', '.join(FIELD_UNITS)}")
    field_dimension, factor, offset = known
    if field_dimension == dimension:
        return factor, offset
    if dimension == "pu" and field_dimension == "voltage":
        if not vn_kv or vn_kv <= 0:
            raise UnitError(f"{unit} to {quantity} needs the bus's nominal voltage vn_kv")
        line = SQRT3 if voltage == "phase" else 1.0
        return factor * line / vn_kv, 0.0
    raise UnitError(
        f"unit {unit!r} ({field_dimension}) cannot be converted to {quantity} ({target})"
    )
