"""Sensors: what observers (controllers, diagnostics, MQTT, InfluxDB) see of a true value.

A sensor measures one quantity of one element each time it reports. Its imperfection
(:class:`Imperfection`): Gaussian noise (a share of the reading plus a floor), a
resolution (the value is rounded to it), a reporting interval (between reports it reports
nothing) and occasional dropouts (a report lost with a probability). Faults add
modifiers on top: ``offset`` (added; a drift or a SoC misreport), ``noise_std`` (more
Gaussian noise), ``dropout`` (1 = no measurement) and ``stuck`` (1 = the measurement
holds the value it had when the fault began).

Each report gives ``measured`` (NaN when the sensor reports nothing: dropout, between
reports) and ``value`` (the last valid measurement: what a SCADA system holds and a
controller acts on).

:class:`SensorBank` is the vectorised mechanism: the generic simulator measures every
output a model declares with ``Port(sensor=...)`` with one bank (one pass per step, a
random stream per output); :class:`Sensors` is the same as a model of its own, for
worlds that wire sensors as separate simulators.

Default imperfections per sensor class (:data:`SENSOR_CLASSES`): a class-``c`` meter's
error limit is taken as two standard deviations (``noise_pct = c / 2``).

============  ==========================================================================
class         default and its basis
============  ==========================================================================
power         AC power / energy meters, IEC 62053-21 class 1: sigma 0.5 % of reading +
              0.01 kW, resolution 0.01 kW, every 5 s
voltage       power quality / PMD class 0.2 (IEC 61557-12): sigma 0.1 % of reading,
              resolution 0.0001 pu, every 5 s
loading       current transformers, IEC 61869-2 class 0.5: sigma 0.25 % of reading +
              0.05 %, resolution 0.1 %, every 5 s
soc           a BMS's state-of-charge estimate: sigma 0.002 (0.2 points), resolution
              0.001, every 10 s
soh           a BMS's state of health: resolution 0.01, every hour
temperature   Pt100 class B (IEC 60751, +-(0.3 + 0.005 abs(t)) degC): sigma 0.15 degC +
              0.25 % of reading, resolution 0.1 degC, every 60 s
frequency     IEC 61000-4-30 class A (+-10 mHz): sigma 0.005 Hz, resolution 0.001 Hz,
              every 1 s
============  ==========================================================================

Every class loses a report with probability 0.001 (telemetry links of a plant typically
lose 0.1 % of their messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port

__all__ = ["MODIFIERS", "SENSOR_CLASSES", "Imperfection", "SensorBank", "Sensors", "sensor_attrs"]

#: Steps of random numbers a sensor bank draws at a time (per stream, in one call).
BLOCK = 128
#: A resolution below this rounds nothing a float can hold (treated as none).
MIN_RESOLUTION = 1e-9
#: The fault modifiers a sensor reads, with their values when no fault acts.
MODIFIERS: dict[str, float] = {"offset": 0.0, "noise_std": 0.0, "dropout": 0.0, "stuck": 0.0}


def sensor_attrs(quantity: str) -> list[str]:
    """The attributes a measured output adds to its elements (outputs, then modifiers).

    ``<quantity>.measured`` and ``<quantity>.value`` (see :class:`SensorBank`), then one
    input per fault modifier, ``<quantity>.<modifier>``.
    """
    return [f"{quantity}.measured", f"{quantity}.value"] + [f"{quantity}.{m}" for m in MODIFIERS]


@dataclass(frozen=True)
class Imperfection:
    """How a sensor departs from the truth.

    Parameters
    ----------
    noise_pct : float
        Standard deviation of the Gaussian noise, in percent of the reading.
    noise_abs : float
        Standard deviation floor, in the quantity's unit (added in quadrature).
    resolution : float
        The measurement is rounded to a multiple of it (0, or below 1e-9: not rounded).
    interval_s : int
        Seconds between reports (0: every step). A sensor reports at the first instant of
        each interval; a step shorter than it has no report.
    dropout_p : float
        Probability that a report is lost.
    """

    noise_pct: float = 0.0
    noise_abs: float = 0.0
    resolution: float = 0.0
    interval_s: int = 0
    dropout_p: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The parameters as plain data (what a simulator receives)."""
        return asdict(self)

    def std(self, reading: np.ndarray | float) -> np.ndarray:
        r"""Standard deviation of a measurement of ``reading`` (the quantity's unit).

        The noise (a share of the reading and the floor, in quadrature) and the
        rounding to the resolution (uniform: ``resolution / sqrt(12)``):

        .. math:: \sigma = \sqrt{(p |x| / 100)^2 + a^2 + r^2 / 12}

        What an estimator weighs a reading with (:mod:`models.estimation`).
        """
        x = np.abs(np.asarray(reading, dtype=float))
        rounding = self.resolution if self.resolution >= MIN_RESOLUTION else 0.0
        return np.sqrt((self.noise_pct / 100.0 * x) ** 2 + self.noise_abs**2 + rounding**2 / 12.0)


SENSOR_CLASSES: dict[str, Imperfection] = {
    "power": Imperfection(0.5, 0.01, 0.01, 5, 0.001),
    "voltage": Imperfection(0.1, 0.0, 0.0001, 5, 0.001),
    "loading": Imperfection(0.25, 0.05, 0.1, 5, 0.001),
    "soc": Imperfection(0.0, 0.002, 0.001, 10, 0.001),
    "soh": Imperfection(0.0, 0.0, 0.01, 3600, 0.001),
    "temperature": Imperfection(0.25, 0.15, 0.1, 60, 0.001),
    "frequency": Imperfection(0.0, 0.005, 0.001, 1, 0.001),
}


class SensorBank:
    """Sensors over ``n`` elements (vectorised; one pass per step for all of them).

    Parameters
    ----------
    n : int
        Number of elements measured.
    imperfection : Imperfection or sequence of Imperfection
        The sensors' imperfection: one for all ``n``, or one per element (a simulator
        measures all its outputs, of several sensor classes, in one bank).
    rng : numpy.random.Generator or sequence of (int, numpy.random.Generator)
        Source of noise and dropouts (seeded by the caller: same seed, same readings),
        or one per consecutive segment of elements (``(size, generator)``): a simulator
        gives each measured output a stream of its own, so measuring one output more or
        less leaves the others' readings unchanged.
    initial : numpy.ndarray, optional
        The true value before the first report (a state's initial value; NaN where
        there is none).
    offsets : numpy.ndarray, optional
        Seconds (>= 0) after ``t_s`` each element's measurement is taken at when
        :meth:`measure` gets one time for all (a state's at the end of a step); default 0.
    """

    def __init__(
        self,
        n: int,
        imperfection: Imperfection | Sequence[Imperfection],
        rng: np.random.Generator | Sequence[tuple[int, np.random.Generator]],
        initial: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
    ) -> None:
        self.streams = [(n, rng)] if isinstance(rng, np.random.Generator) else list(rng)
        if sum(size for size, _ in self.streams) != n:
            raise ValueError(f"the random streams cover {sum(s for s, _ in self.streams)} of {n}")
        each = [imperfection] * n if isinstance(imperfection, Imperfection) else list(imperfection)
        if len(each) != n:
            raise ValueError(f"expected {n} imperfections, got {len(each)}")
        self.n = n
        self.share = np.array([i.noise_pct for i in each], dtype=float) / 100.0
        self.floor = np.array([i.noise_abs for i in each], dtype=float)
        self.resolution = np.array([i.resolution for i in each], dtype=float)
        self.interval = np.array([i.interval_s for i in each], dtype=np.int64)
        self.dropout_p = np.array([i.dropout_p for i in each], dtype=float)
        self._rounded = self.resolution >= MIN_RESOLUTION
        self._all_rounded = bool(self._rounded.all())
        self._step = np.where(self._rounded, self.resolution, 1.0)
        self._periodic = self.interval > 0
        self._every = np.maximum(self.interval, 1)
        self._floor2 = self.floor**2
        self._nothing = np.full(n, np.nan)  # the measurements of a step nothing reports in
        # random numbers drawn for BLOCK steps at a time, per stream (one row per step)
        self._block = 0
        self._row = BLOCK
        self.last = np.full(n, np.nan) if initial is None else np.asarray(initial, float).copy()
        # the last reporting interval that reported (an initial value is the report at 0)
        self._window = np.where(np.isnan(self.last), -1, 0).astype(np.int64)
        self._offsets = np.zeros(n, np.int64) if offsets is None else np.asarray(offsets, np.int64)
        if self._offsets.shape != (n,) or (self._offsets < 0).any():
            raise ValueError(f"expected {n} offsets of 0 s or more, got {offsets!r}")
        # Between reports: the time (one for all) since when nothing has reported and the
        # first time something may report again (None: not known, see _quiet).
        self._since: float = 0.0
        self._quiet_until: int | None = None
        self._complete = False  # every sensor has measured (no NaN in ``last`` ever again)

    def measure(
        self,
        true: np.ndarray,
        t_s: int | np.ndarray,
        modifiers: dict[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measure ``true`` at ``t_s`` (seconds after the start, one or per element).

        ``modifiers``: fault modifiers by name (:data:`MODIFIERS`), arrays of ``n``;
        missing ones are neutral. Returns ``(measured, value)``.
        """
        mod = modifiers or {}
        true = np.asarray(true, dtype=float)
        # draw every step, report or not, so readings do not depend on what reported before
        gauss, draws = self._draw()
        last = self.last
        one_time = isinstance(t_s, int | np.integer)
        quiet = self._quiet_until
        if one_time and quiet is not None and self._since <= t_s < quiet:
            # still in every sensor's reporting interval: the result of the check below
            self._since = t_s
            return self._nothing.copy(), self._value(true)
        at = t_s + self._offsets if one_time else np.asarray(t_s, dtype=np.int64)
        window = at // self._every
        silent = self._periodic & (window == self._window)
        self._window = window  # a silent sensor's window is the one it reported in
        if np.count_nonzero(silent) == silent.size:  # between reports (all(), cheaper)
            self._quiet(t_s if one_time else None)
            return self._nothing.copy(), self._value(true)
        self._quiet_until = None
        lost = draws < self.dropout_p
        variance = (self.share * true) ** 2 + self._floor2
        extra = mod.get("noise_std")
        if extra is not None:
            variance = variance + extra**2
        measured = true + gauss * np.sqrt(variance)
        offset = mod.get("offset")
        if offset is not None:
            measured = measured + offset
        rounded = np.rint(measured / self._step) * self._step  # what np.round(x) computes
        measured = rounded if self._all_rounded else np.where(self._rounded, rounded, measured)
        stuck = mod.get("stuck")
        if stuck is not None:
            measured = np.where((stuck >= 0.5) & ~np.isnan(last), last, measured)
        dropout = mod.get("dropout")
        if dropout is not None:
            lost |= dropout >= 0.5
        measured[lost | silent] = np.nan  # a new array (of the noise or the rounding)
        self.last = np.where(np.isnan(measured), last, measured)
        return measured, self._value(true)

    def _value(self, true: np.ndarray) -> np.ndarray:
        """The last valid measurements, the truth where nothing was measured yet.

        Once every sensor has measured, ``last`` stays without NaN (only valid
        measurements replace it): then a copy of it.
        """
        last = self.last
        if self._complete:
            return last.copy()
        missing = np.isnan(last)
        if not np.count_nonzero(missing):
            self._complete = True
            return last.copy()
        return np.where(missing, true, last)

    def _quiet(self, t_s: int | None) -> None:
        """Note that nothing reported at ``t_s``: when the next report may come.

        Every sensor is periodic and in the interval it last reported in; with times
        that do not go back, none reports before its next interval starts. Known only
        for one time for all (None: per-element times, checked every step).
        """
        if t_s is None or self.n == 0:
            self._since, self._quiet_until = float("inf"), None
            return
        self._since = t_s
        self._quiet_until = int(((self._window + 1) * self._every - self._offsets).min())

    def _draw(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the step's standard normals and uniforms (a row of the streams' blocks)."""
        if self._row == BLOCK:
            self._gauss = np.hstack([g.standard_normal((BLOCK, size)) for size, g in self.streams])
            self._uniform = np.hstack([g.random((BLOCK, size)) for size, g in self.streams])
            self._row = 0
        row = self._row
        self._row += 1
        return self._gauss[row], self._uniform[row]


class Sensors(Model):
    """A vectorised set of sensors (one per sensed quantity), as a model of its own.

    Unit parameters: ``state`` (bool, default false): the sensed quantity is a state
    at an instant (a SoC), so are the measurements (see ``Port.state``); ``initial``
    (the true state at the start, NaN when unknown); ``imperfection`` (a dict of
    :class:`Imperfection` fields, default: none).
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
        self._initial = np.array([float(u.get("initial", np.nan)) for u in units])
        rng = np.random.default_rng([int(self.context.get("seed", 0)), 7919])
        each = [Imperfection(**(u.get("imperfection") or {})) for u in units]
        initial = self._initial if self.state_outputs() else None
        self.bank = SensorBank(self.n, each, rng, initial)

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
        t_s = int((now - self.clock.start).total_seconds())
        modifiers = {name: inputs[name] for name in MODIFIERS}
        measured, value = self.bank.measure(inputs["true"], t_s, modifiers)
        return {"measured": measured, "value": value}
