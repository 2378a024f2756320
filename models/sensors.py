"""Sensors: what observers (controllers, MQTT, InfluxDB) see of a true value.

One element per sensed quantity (``<asset>.<quantity>``). Each step it takes the true
value and its fault modifiers and reports ``measured`` (NaN while the sensor drops out)
and ``value`` (the last valid measurement, what a SCADA system holds and a controller
acts on). Modifiers: ``offset`` (added; drift or a SoC misreport), ``noise_std``
(Gaussian noise, seeded), ``dropout`` (1 = no measurement), ``stuck`` (1 = the
measurement holds the value it had when the fault began).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port

__all__ = ["Sensors"]


class Sensors(Model):
    """A vectorised set of sensors (one per sensed quantity).

    Unit parameters: ``state`` (bool, default false): the sensed quantity is a state
    at an instant (a SoC), so are the measurements (see ``Port.state``); ``initial``
    (the true state at the start, NaN when unknown).
    """

    kind = "sensor"
    inputs = {
        "true": Port("", "the true value (same unit as the quantity)", default=np.nan),
        "offset": Port("", "added to the true value", default=0.0),
        "noise_std": Port("", "standard deviation of Gaussian noise", default=0.0),
        "dropout": Port("1", "1 = no measurement this step", default=0.0),
        "stuck": Port("1", "1 = hold the last measurement", default=0.0),
    }
    outputs = {
        "measured": Port("", "the measurement (NaN while dropped out)"),
        "value": Port("", "the last valid measurement (what observers act on)"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.rng = np.random.default_rng([int(self.context.get("seed", 0)), 7919])
        self.last = np.full(self.n, np.nan)
        self._initial = np.array([float(u.get("initial", np.nan)) for u in units])

    def state_outputs(self) -> list[str]:
        """Both outputs when the sensed quantity is a state, none otherwise."""
        return ["measured", "value"] if all(u.get("state") for u in self.units) else []

    def state(self) -> dict[str, np.ndarray]:
        """The true initial state, as measured before any fault."""
        return {"measured": self._initial.copy(), "value": self._initial.copy()}

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Measure the true values with the step's faults."""
        noise = self.rng.standard_normal(self.n) * inputs["noise_std"]
        measured = inputs["true"] + inputs["offset"] + noise
        stuck = (inputs["stuck"] >= 0.5) & ~np.isnan(self.last)
        measured = np.where(stuck, self.last, measured)
        measured = np.where(inputs["dropout"] >= 0.5, np.nan, measured)
        valid = ~np.isnan(measured)
        self.last = np.where(valid, measured, self.last)
        value = np.where(valid, measured, self.last)
        value = np.where(np.isnan(value), inputs["true"], value)  # nothing measured yet
        return {"measured": measured, "value": value}
