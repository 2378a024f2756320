"""Fault schedules: when and how hard each fault acts, as modifiers for other models.

A scenario's ``faults`` become one :class:`FaultSchedule`. It knows only the schedule;
the models stay ignorant of it and just read their modifier inputs (``derate``,
``scale``, ``cooling_factor``, ``v_ext_scale``, ``in_service``, a sensor's ``offset``...)
over mosaik connections. Several faults on the same input are combined here (a product
of factors, a sum of offsets, the max of flags), so each modifier has one source.

Element groups: ``fault`` (one per fault: the ground-truth labels ``active`` and
``severity``, recorded with the results) and ``modifier`` (one per target input, named
``<target>:<input>``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port

__all__ = ["FAULT_KINDS", "FaultKind", "FaultSchedule"]


@dataclass(frozen=True)
class FaultKind:
    """What a fault kind targets and the modifier it emits while active.

    ``targets``: asset kinds (``pv``, ``battery``, ``load``), ``grid`` (the point of
    connection), ``line`` (a line of the grid) or ``sensor`` (``<asset>.<quantity>``).
    ``value(severity, hours_active)`` is the modifier while active; ``combine`` how
    several faults on one input mix; ``neutral`` the value with no fault.
    """

    targets: tuple[str, ...]
    modifier: str
    combine: str
    neutral: float
    value: Callable[[float, float], float]
    description: str


def _factor(s: float, h: float) -> float:
    return 1.0 - s


FAULT_KINDS: dict[str, FaultKind] = {
    "pv_shading": FaultKind(
        ("pv",), "derate", "product", 1.0, _factor, "shading/soiling: output x (1 - severity)"
    ),
    "pv_string_outage": FaultKind(
        ("pv",), "derate", "product", 1.0, _factor, "severity = fraction of strings out"
    ),
    "inverter_trip": FaultKind(
        ("pv", "battery"),
        "derate",
        "product",
        1.0,
        lambda s, h: 0.0,
        "converter off for the window plus restart_delay",
    ),
    "battery_cooling_failure": FaultKind(
        ("battery",),
        "cooling_factor",
        "product",
        1.0,
        lambda s, h: 1.0 / (1.0 - min(s, 0.95)),
        "thermal resistance / (1 - severity): derating, then trip above t_trip_c",
    ),
    "capacity_fade": FaultKind(
        ("battery",),
        "capacity_factor",
        "product",
        1.0,
        _factor,
        "usable capacity x (1 - severity) from start on",
    ),
    "soc_misreport": FaultKind(
        ("battery",),
        "offset",
        "sum",
        0.0,
        lambda s, h: s,
        "measured SoC + severity (mode: stuck holds it)",
    ),
    "sensor_drift": FaultKind(
        ("sensor",), "offset", "sum", 0.0, lambda s, h: s * h, "offset grows by severity per hour"
    ),
    "sensor_noise": FaultKind(
        ("sensor",), "noise_std", "max", 0.0, lambda s, h: s, "Gaussian noise, std = severity"
    ),
    "sensor_dropout": FaultKind(
        ("sensor",), "dropout", "max", 0.0, lambda s, h: 1.0, "no measurement"
    ),
    "sensor_stuck": FaultKind(
        ("sensor",), "stuck", "max", 0.0, lambda s, h: 1.0, "the measurement holds its value"
    ),
    "voltage_sag": FaultKind(
        ("grid",), "v_ext_scale", "product", 1.0, _factor, "POC voltage x (1 - severity)"
    ),
    "voltage_spike": FaultKind(
        ("grid",),
        "v_ext_scale",
        "product",
        1.0,
        lambda s, h: 1.0 + s,
        "POC voltage x (1 + severity)",
    ),
    "frequency_event": FaultKind(
        ("grid",), "f_dev_hz", "sum", 0.0, lambda s, h: s, "frequency deviation of severity Hz"
    ),
    "line_outage": FaultKind(
        ("line",), "in_service", "min", np.nan, lambda s, h: 0.0, "the line is out of service"
    ),
    "grid_outage": FaultKind(
        ("grid",), "islanded", "max", 0.0, lambda s, h: 1.0, "islanding: no exchange at the POC"
    ),
    "load_spike": FaultKind(
        ("load",), "scale", "product", 1.0, lambda s, h: 1.0 + s, "load x (1 + severity)"
    ),
}


def _combine(how: str, values: list[float], neutral: float) -> float:
    if not values:
        return neutral
    if how == "product":
        return float(np.prod(values))
    if how == "sum":
        return float(np.sum(values))
    if how == "max":
        return float(np.max(values))
    return float(np.min(values))


class FaultSchedule(Model):
    """Every fault of a run, as labels and as combined modifiers.

    Unit parameters (one unit per fault, resolved by the scenario): ``name``, ``kind``,
    ``target``, ``modifier`` (the modifier element it drives), ``start_s`` and ``end_s``
    (seconds from the run start; active while ``start_s <= t < end_s``), ``severity``.
    """

    kind = "fault"
    outputs = {
        "active": Port("1", "1 while the fault acts (ground truth)", group="fault"),
        "severity": Port("1", "the fault's severity while active, else 0", group="fault"),
        "value": Port("1", "combined modifier for the target input", group="modifier"),
    }

    @classmethod
    def element_names(
        cls, units: list[dict[str, Any]], context: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """One element per fault and one per modifier it drives."""
        return {
            "fault": [u["name"] for u in units],
            "modifier": sorted({u["modifier"] for u in units}),
        }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.modifiers = sorted({u["modifier"] for u in units})
        self.elements = {"fault": [u["name"] for u in units], "modifier": self.modifiers}
        self.start_s = self.param("start_s")
        self.end_s = self.param("end_s")
        self.sev = self.param("severity")
        self.kinds = [FAULT_KINDS[u["kind"]] for u in units]
        self.stuck = [u.get("mode") == "stuck" for u in units]
        # how each modifier combines and its value with no fault acting
        self.rules: list[tuple[str, float]] = []
        for modifier in self.modifiers:
            i = next(i for i, u in enumerate(units) if u["modifier"] == modifier)
            neutral = 0.0 if self.stuck[i] else self.kinds[i].neutral
            self.rules.append((self.kinds[i].combine, neutral))

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Labels and modifiers for the step starting at ``now``."""
        t = (now - self.clock.start).total_seconds()
        active = (self.start_s <= t) & (t < self.end_s)
        hours = np.maximum(t - self.start_s, 0.0) / 3600.0
        by_modifier: dict[str, list[float]] = {m: [] for m in self.modifiers}
        for i in np.flatnonzero(active):
            value = 1.0 if self.stuck[i] else self.kinds[i].value(self.sev[i], hours[i])
            by_modifier[self.units[i]["modifier"]].append(value)
        values = [
            _combine(how, by_modifier[m], neutral)
            for m, (how, neutral) in zip(self.modifiers, self.rules, strict=True)
        ]
        return {
            "active": active.astype(float),
            "severity": np.where(active, self.sev, 0.0),
            "value": np.array(values),
        }
