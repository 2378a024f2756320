"""Ingested field sensors laid out as a state estimator's measurements.

The estimator (:mod:`models.estimation`) takes pandapower's measurement conventions:
bus voltage magnitudes (pu), bus active and reactive power (MW, Mvar, *consumption*
positive), branch flows at a side (MW, Mvar into the branch; kA). The field reports
per sensor in twin quantities (:data:`BRANCH_QUANTITIES`, ``v_pu`` of a bus, the
assets' ``p_kw``/``q_kvar`` with power *into* the bus positive). This module maps one
onto the other:

- a sensor of a bus voltage or a branch flow is one measurement row of its own
  (several sensors at one point stay separate rows, so bad-data identification can
  tell which of them lies);
- the assets' powers are summed per bus into one injection row per bus and quantity
  (the estimator knows buses, not assets): the mean of an asset's sensors, summed over
  the bus's elements, only when every element at the bus reported (otherwise the row
  is missing for the step); the point of connection's import counts at the slack bus;
- a bus without any element is an exact zero injection (its injection is known).

The standard deviation of each row follows the sensor classes of
:data:`models.sensors.SENSOR_CLASSES` (powers class 1, voltages class 0.2, currents
as current transformers of class 0.5); a bus injection's is that of its sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.sensors import SENSOR_CLASSES, Imperfection

__all__ = [
    "BRANCH_QUANTITIES",
    "attribute",
    "Layout",
    "Row",
    "Window",
    "element_of",
]

#: Twin quantity of a branch sensor -> (measurement type, side, factor to pandapower units).
BRANCH_QUANTITIES: dict[str, dict[str, tuple[str, str, float]]] = {
    "line": {
        "p_from_kw": ("p", "from", 1e-3),
        "q_from_kvar": ("q", "from", 1e-3),
        "i_from_ka": ("i", "from", 1.0),
        "p_to_kw": ("p", "to", 1e-3),
        "q_to_kvar": ("q", "to", 1e-3),
        "i_to_ka": ("i", "to", 1.0),
    },
    "trafo": {
        "p_hv_kw": ("p", "hv", 1e-3),
        "q_hv_kvar": ("q", "hv", 1e-3),
        "i_hv_ka": ("i", "hv", 1.0),
        "p_lv_kw": ("p", "lv", 1e-3),
        "q_lv_kvar": ("q", "lv", 1e-3),
        "i_lv_ka": ("i", "lv", 1.0),
    },
}
#: Current sensors are current transformers of the ``loading`` class, whose floor and
#: resolution are percent of the branch's rating: in kA per kA of rating (x 1/100).
CURRENT_CLASS = SENSOR_CLASSES["loading"]
#: Powers of an asset that make up its bus injection (twin sign: into the bus > 0).
INJECTION_QUANTITIES = {"p": "p_kw", "q": "q_kvar"}


def element_of(asset: str) -> tuple[str, int] | None:
    """``("bus", 7)`` for ``bus_7`` (likewise ``line_``/``trafo_``), else None."""
    kind, _, index = asset.rpartition("_")
    if kind in ("bus", "line", "trafo") and index.isdigit():
        return kind, int(index)
    return None


@dataclass(frozen=True)
class Row:
    """One measurement of the estimator (pandapower's conventions)."""

    meas_type: str  # v, p, q, i
    element_type: str  # bus, line, trafo
    element: int  # pandapower index
    side: str | None = None  # from/to (line), hv/lv (trafo)


@dataclass
class Window:
    """One step's measurements in the layout's row order."""

    values: np.ndarray  # pandapower units
    std: np.ndarray
    present: np.ndarray  # bool


@dataclass
class Layout:
    """Where each ingested sensor goes among the estimator's measurement rows.

    Built from the ingested sensors (``(key, asset, quantity)``, index = the ingest id),
    the grid's elements at each bus and the buses of the net.

    Parameters
    ----------
    sensors : sequence of tuple
        The ingest's sensor table so far: ``(key, element, quantity[, sigma])``; a
        sigma (twin unit) from the mapping replaces the sensor class's.
    injectors : sequence of tuple
        ``(element name, bus[, quantities])`` of every element that injects into a bus
        (assets, grid loads, the point of connection at the slack bus); an element
        whose model has no ``q_kvar`` (PV, batteries) injects no reactive power: it
        counts as a known zero in its bus's q row.
    buses : sequence of int
        Every in-service bus of the net (pandapower index).
    zero_injection : bool
        List the buses without elements as exact zero injections (:attr:`zero_buses`).
    joined : dict of int to int, optional
        The solver bus of every bus (buses joined by bus-bar switches share one): the
        elements of joined buses make one injection.
    slack : sequence of int
        Buses of the external grid: never zero injections (the grid feeds them).
    rating_ka : dict, optional
        Rated current (kA) of each branch side ``(table, index, side)``: a current
        sensor's floor and resolution are shares of it (current transformers of the
        ``loading`` class). Without it a current sensor's std is its share of the reading.
    """

    sensors: Sequence[tuple]
    injectors: Sequence[tuple]
    buses: Sequence[int]
    zero_injection: bool = True
    joined: dict[int, int] | None = None
    slack: Sequence[int] = ()
    rating_ka: dict[tuple[str, int, str], float] | None = None
    rows: list[Row] = field(init=False)
    #: Rows read from one sensor each: row index, ingest id, factor.
    direct_row: np.ndarray = field(init=False)
    direct_id: np.ndarray = field(init=False)
    direct_factor: np.ndarray = field(init=False)
    direct_class: list[Imperfection] = field(init=False)
    #: The sensors (ingest ids) of each kind of estimator row (for health reports).
    row_sensor: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rows: list[Row] = []
        direct_row, direct_id, direct_factor, classes = [], [], [], []
        row_sensor: list[int] = []
        bus_of = {item[0]: int(item[1]) for item in self.injectors}
        self._members: dict[str, dict[str, list[int]]] = {"p": {}, "q": {}}
        sigma_of: dict[int, float] = {}
        for sid, (_, asset, quantity, *extra) in enumerate(self.sensors):
            if extra and extra[0] is not None and float(extra[0]) > 0:
                sigma_of[sid] = float(extra[0])
            where = element_of(asset)
            row: Row | None = None
            if where is not None and where[0] == "bus" and quantity == "v_pu":
                row, factor = Row("v", "bus", where[1]), 1.0
                imperfection = SENSOR_CLASSES["voltage"]
            elif where is not None and where[0] in BRANCH_QUANTITIES:
                spec = BRANCH_QUANTITIES[where[0]].get(quantity)
                if spec is not None:
                    meas, side, factor = spec
                    row = Row(meas, where[0], where[1], side)
                    imperfection = SENSOR_CLASSES["power"]
                    if meas == "i":
                        rating = (self.rating_ka or {}).get((where[0], where[1], side), 0.0)
                        imperfection = Imperfection(
                            noise_pct=CURRENT_CLASS.noise_pct,
                            noise_abs=CURRENT_CLASS.noise_abs / 100.0 * rating,
                            resolution=CURRENT_CLASS.resolution / 100.0 * rating,
                        )
            elif asset in bus_of:
                for meas, name in INJECTION_QUANTITIES.items():
                    if quantity == name:
                        self._members[meas].setdefault(asset, []).append(sid)
            if row is not None:
                direct_row.append(len(rows))
                direct_id.append(sid)
                direct_factor.append(factor)
                classes.append(imperfection)
                rows.append(row)
                row_sensor.append(sid)
        self.sigma_of = sigma_of
        self.direct_row = np.array(direct_row, dtype=int)
        self.direct_id = np.array(direct_id, dtype=int)
        self.direct_factor = np.array(direct_factor)
        self.direct_class = classes
        self._direct_noise = np.array(
            [(c.noise_pct, c.noise_abs, c.resolution) for c in classes], dtype=float
        ).reshape(-1, 3)
        #: The mapping's sigma of a direct row (twin unit), NaN: the class's.
        self._direct_sigma = np.array([sigma_of.get(int(s), np.nan) for s in direct_id])
        # bus injections: one p and one q row per solver bus with elements (buses joined
        # by bus-bar switches are one bus), when one of its elements has a sensor of that
        # quantity (else nothing measures the bus)
        self._bus_rows: dict[str, list[tuple[int, list[str]]]] = {"p": [], "q": []}
        #: The sensors summed into each bus-injection row: ``row -> [(element, id)]``.
        self.bus_row_members: dict[int, list[tuple[str, int]]] = {}
        joined = dict(self.joined or {})
        elements_at: dict[int, list[str]] = {}
        first_bus: dict[int, int] = {}
        injects: dict[str, dict[int, list[str]]] = {"p": {}, "q": {}}
        for name, bus, *quantities in self.injectors:
            solver_bus = joined.get(int(bus), int(bus))
            elements_at.setdefault(solver_bus, []).append(name)
            first_bus.setdefault(solver_bus, int(bus))
            for meas, quantity in INJECTION_QUANTITIES.items():
                if not quantities or quantity in quantities[0]:
                    injects[meas].setdefault(solver_bus, []).append(name)
        for meas in ("p", "q"):
            for solver_bus, names in sorted(injects[meas].items()):
                if any(n in self._members[meas] for n in names):
                    self.bus_row_members[len(rows)] = [
                        (n, sid) for n in names for sid in self._members[meas].get(n, [])
                    ]
                    self._bus_rows[meas].append((len(rows), names))
                    rows.append(Row(meas, "bus", first_bus[solver_bus]))
                    row_sensor.append(-1)
        #: Buses whose injection is exactly zero (no element on their solver bus).
        fed = set(elements_at) | {joined.get(int(b), int(b)) for b in self.slack}
        self.zero_buses = (
            [b for b in self.buses if joined.get(int(b), int(b)) not in fed]
            if self.zero_injection
            else []
        )
        self.rows = rows
        self.row_sensor = np.array(row_sensor, dtype=int)
        self._power = SENSOR_CLASSES["power"]

    def window(self, values_by_id: np.ndarray) -> Window:
        """The measurement rows of one step.

        Parameters
        ----------
        values_by_id : numpy.ndarray
            The step's value of every ingested sensor (twin units; NaN where the sensor
            did not report or its value may not be used).
        """
        n = len(self.rows)
        values = np.zeros(n)
        std = np.ones(n)
        present = np.zeros(n, dtype=bool)
        if len(self.direct_row):
            read = values_by_id[self.direct_id]
            ok = np.isfinite(read)
            rows = self.direct_row
            values[rows] = np.where(ok, read, 0.0) * self.direct_factor
            present[rows] = ok
            sigma = np.where(
                np.isnan(self._direct_sigma), _std(self._direct_noise, read), self._direct_sigma
            )
            std[rows] = np.where(ok, sigma, 1.0) * self.direct_factor
        for meas, bus_rows in self._bus_rows.items():
            members = self._members[meas]
            for row, names in bus_rows:
                total_kw, var_kw = 0.0, 0.0
                complete = True
                for name in names:
                    ids = members.get(name)
                    readings = values_by_id[ids] if ids else np.array([])
                    readings = readings[np.isfinite(readings)]
                    if not len(readings):
                        complete = False
                        break
                    mean = float(readings.mean())
                    total_kw += mean
                    given = [self.sigma_of[i] for i in ids if i in self.sigma_of]
                    one = float(np.mean(given)) if given else float(self._power.std(mean))
                    var_kw += one**2 / len(readings)
                if complete:  # load convention: consumption positive, MW
                    values[row] = -total_kw * 1e-3
                    std[row] = np.sqrt(var_kw) * 1e-3
                    present[row] = True
        return Window(values, std, present)


def _std(noise: np.ndarray, reading: np.ndarray) -> np.ndarray:
    """Row-wise :meth:`models.sensors.Imperfection.std` (columns: pct, abs, resolution)."""
    x = np.abs(np.nan_to_num(reading))
    pct, floor, resolution = noise.T
    return np.sqrt((pct / 100.0 * x) ** 2 + floor**2 + resolution**2 / 12.0)


def attribute(members: list[tuple[str, int]], values_by_id: np.ndarray) -> int | None:
    """The sensor to blame for a bus injection the estimate took out, if one can be named.

    A bus injection is a sum: the estimate can say it is inconsistent, not which of its
    meters lies. One meter alone is that meter; among several meters of one element
    (redundant metering), the one farthest from the others' median by more than three
    of the class's standard deviations. Otherwise None: the meters of the bus are to
    be checked together (counted, not blamed on a healthy meter).
    """
    read = [(name, sid, values_by_id[sid]) for name, sid in members]
    read = [(name, sid, v) for name, sid, v in read if v == v]
    if len(read) == 1:
        return read[0][1]
    power = SENSOR_CLASSES["power"]
    worst, worst_z = None, 3.0
    by_element: dict[str, list[tuple[int, float]]] = {}
    for name, sid, value in read:
        by_element.setdefault(name, []).append((sid, float(value)))
    for readings in by_element.values():
        if len(readings) < 2:
            continue
        for sid, value in readings:
            others = [v for s, v in readings if s != sid]
            median = float(np.median(others))
            z = abs(value - median) / float(power.std(median))
            if z > worst_z:
                worst, worst_z = sid, z
    return worst
