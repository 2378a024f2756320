"""The sensor table of the state estimator: what each sensor measures, and where.

One row per physical sensor, in pandapower's measurement vocabulary (see
``pandapower.create_measurement``) so that a table converts 1:1 to pandapower
measurements:

=========  ==============  =================  =================================
meas_type  element_type    side               value unit (and sign)
=========  ==============  =================  =================================
``v``      ``bus``         ``None``           pu
``p``      ``bus``         ``None``           MW, consumption > 0 (load sign)
``q``      ``bus``         ``None``           Mvar, consumption > 0 (load sign)
``p``      ``line``        ``from``/``to``    MW, flowing from that side into
                                              the line > 0
``q``      ``line``        ``from``/``to``    Mvar, as ``p``
``i``      ``line``        ``from``/``to``    kA (magnitude)
``p``      ``trafo``       ``hv``/``lv``      MW, into the transformer > 0
``q``      ``trafo``       ``hv``/``lv``      Mvar, as ``p``
``i``      ``trafo``       ``hv``/``lv``      kA (magnitude)
=========  ==============  =================  =================================

This module checks the table's own structure; :meth:`models.estimation.SEModel.compile`
checks it against a grid (element exists, in service).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BRANCH_SIDES",
    "MEAS_TYPES",
    "OutOfServiceError",
    "SensorError",
    "Sensors",
    "UnknownElementError",
]

#: Measurement types per element type.
MEAS_TYPES = {"bus": ("v", "p", "q"), "line": ("p", "q", "i"), "trafo": ("p", "q", "i")}
#: Valid sides per branch element type: (from side, to side).
BRANCH_SIDES = {"line": ("from", "to"), "trafo": ("hv", "lv")}


class SensorError(ValueError):
    """A sensor table row is malformed; the message names the field path and what is valid."""


class UnknownElementError(SensorError):
    """A sensor names an element index that is not in the grid."""


class OutOfServiceError(SensorError):
    """A sensor names an element that is out of service (or not part of the solved grid)."""


@dataclass(frozen=True)
class Sensors:
    """A table of sensors, one row per sensor (arrays of equal length).

    Parameters
    ----------
    meas_type : array of str
        ``"v"``, ``"p"``, ``"q"`` or ``"i"``.
    element_type : array of str
        ``"bus"``, ``"line"`` or ``"trafo"``.
    element : array of int
        The pandapower index of the element (``net.bus``/``net.line``/``net.trafo``).
    side : array of str or None
        ``None`` for bus sensors, ``"from"``/``"to"`` for lines, ``"hv"``/``"lv"`` for
        transformers. Must be a string: pandapower silently ignores a numeric side.

    Raises
    ------
    SensorError
        If a row is malformed (unknown type, a numeric or wrong side, ...).
    """

    meas_type: np.ndarray
    element_type: np.ndarray
    element: np.ndarray
    side: np.ndarray

    def __post_init__(self) -> None:
        columns = {
            "meas_type": np.asarray(self.meas_type, dtype=object),
            "element_type": np.asarray(self.element_type, dtype=object),
            "element": np.asarray(self.element),
            "side": np.asarray(self.side, dtype=object),
        }
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise SensorError(f"sensors: columns must have one length, got {lengths}")
        element = columns["element"]
        if element.size and not np.issubdtype(element.dtype, np.integer):
            as_int = element.astype(float)
            if not np.all(np.isfinite(as_int)) or np.any(as_int != np.round(as_int)):
                raise SensorError("sensors.element: expected integer pandapower indices")
        columns["element"] = element.astype(np.int64)
        for name, values in columns.items():
            object.__setattr__(self, name, values)
        for i in range(len(self)):
            _check_row(i, self.meas_type[i], self.element_type[i], self.side[i])

    @classmethod
    def from_records(cls, records: Iterable[Sequence[Any]]) -> Sensors:
        """Build from ``(meas_type, element_type, element, side)`` tuples."""
        rows = list(records)
        if not rows:
            return cls(
                np.array([], object), np.array([], object), np.array([], int), np.array([], object)
            )
        meas_type, element_type, element, side = zip(*rows, strict=True)
        return cls(
            np.array(meas_type, object),
            np.array(element_type, object),
            np.array(element),
            np.array(side, object),
        )

    def __len__(self) -> int:
        return len(self.meas_type)

    def row(self, i: int) -> tuple[str, str, int, str | None]:
        """Sensor ``i`` as ``(meas_type, element_type, element, side)``."""
        return (self.meas_type[i], self.element_type[i], int(self.element[i]), self.side[i])


def _check_row(i: int, meas_type: Any, element_type: Any, side: Any) -> None:
    where = f"sensors[{i}]"
    if element_type not in MEAS_TYPES:
        raise SensorError(
            f"{where}.element_type: {element_type!r} is not one of {sorted(MEAS_TYPES)}"
        )
    if meas_type not in MEAS_TYPES[element_type]:
        raise SensorError(
            f"{where}.meas_type: {meas_type!r} is not measured at a {element_type}; "
            f"expected one of {list(MEAS_TYPES[element_type])}"
        )
    if element_type == "bus":
        if side is not None and not (isinstance(side, float) and np.isnan(side)):
            raise SensorError(
                f"{where}.side: a bus sensor has no side, got {side!r} (expected None)"
            )
        return
    valid = BRANCH_SIDES[element_type]
    if not isinstance(side, str):
        raise SensorError(
            f"{where}.side: must be a string {list(valid)} for a {element_type}, got {side!r} "
            "(pandapower silently ignores a numeric side)"
        )
    if side not in valid:
        raise SensorError(
            f"{where}.side: {side!r} is not a side of a {element_type}; "
            f"expected one of {list(valid)}"
        )
