"""The model contract shared by every physics model of the twin.

A model is a plain class, vectorised over the N units of its kind. It declares its
ports (inputs and outputs with units) once, on the class; everything else (the mosaik
wrapper, the recorder, the RL environment, the tests) reads those declarations.

Sign convention (see DESIGN.md): active power flowing **into the site's bus** is
positive. PV output > 0, battery discharge > 0, loads < 0; grid import > 0 at the
point of connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd

__all__ = ["Clock", "Model", "Port", "clip", "differs"]

try:  # numpy's clip ufunc itself: what np.clip ends in, without its Python layers
    from numpy._core.umath import clip
except ImportError:  # pragma: no cover - another numpy layout
    clip = np.clip


@dataclass(frozen=True)
class Port:
    """One input or output quantity of a model.

    Parameters
    ----------
    unit : str
        Physical unit of the quantity (``"kW"``, ``"pu"``, ``"1"`` for ratios).
    description : str
        What the quantity means, including its sign convention.
    group : str or None
        The element group the quantity belongs to (``"bus"``, ``"line"``). ``None``
        means the model's own unit group (its ``kind``).
    default : float
        Value used for an input that nothing is connected to.
    may_be_nan : bool
        The output is NaN when it has no meaning (the SoC of an empty charger).
    limits : tuple of float or None
        For an input other simulators may feed (weather, a measured power): the range of
        plausible values. A value outside it, or infinite, is refused before the model
        steps (:func:`check_input`); NaN passes when it is the default (not connected).
    state : bool
        The output is a state at an instant (SoC, stored energy, temperature), not a
        mean over the step (power, price). :meth:`Model.step` returns a state's value
        at the *end* of the step; results stamp every value with the instant it holds
        at (see ``README.md``, "Time stamps"), so a state's row at ``t`` is its value
        at ``t`` and the run's end state gets a row at the end time.
    sensor : str or None
        For an output a real plant reports (a meter, a BMS, a temperature probe): its
        sensor class (``models.sensors.SENSOR_CLASSES``: ``power``, ``voltage``,
        ``loading``, ``soc``, ``soh``, ``temperature``, ``frequency``). The generic
        simulator measures it with that class's imperfection (``source=measured``).
    """

    unit: str
    description: str
    group: str | None = None
    default: float = 0.0
    may_be_nan: bool = False
    state: bool = False
    limits: tuple[float, float] | None = None
    sensor: str | None = None


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` are not :func:`numpy.array_equal` (NaN differs from itself).

    The same answer with two operations instead of array_equal's Python layers.
    """
    return a.shape != b.shape or bool(np.count_nonzero(a != b))


class InputRangeError(ValueError):
    """An input value another simulator sent that the model's port refuses."""


def check_input(name: str, port: Port, values: np.ndarray, elements: list[str]) -> None:
    """Refuse values of input ``name`` outside ``port.limits`` (or infinite).

    Raises
    ------
    InputRangeError
        Naming the element, the input, the value and the accepted range.
    """
    if port.limits is None:
        return
    low, high = port.limits
    nan_ok = bool(np.isnan(port.default))
    bad = ~((values >= low) & (values <= high))
    if nan_ok:
        bad &= ~np.isnan(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputRangeError(
            f"input {elements[i]}.{name} = {float(values[i])!r} {port.unit} is outside "
            f"{low:g} .. {high:g} {port.unit}" + (" (NaN: not given)" if nan_ok else "")
        )


@dataclass(frozen=True)
class Clock:
    """The one place where simulation time becomes wall-clock time.

    Parameters
    ----------
    start : pandas.Timestamp
        Tz-aware start of the run.
    step_s : int
        Step length in seconds.
    n_steps : int
        Number of steps in the run.
    """

    start: pd.Timestamp
    step_s: int
    n_steps: int
    _start_utc: datetime = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("Clock.start must be tz-aware (e.g. '2016-06-21T00:00+02:00')")
        object.__setattr__(self, "_start_utc", self.start.tz_convert("UTC").to_pydatetime())

    @property
    def times(self) -> pd.DatetimeIndex:
        """UTC timestamps of the start of every step."""
        return pd.date_range(
            self.start.tz_convert("UTC"),
            periods=self.n_steps,
            freq=pd.Timedelta(seconds=self.step_s),
        )

    @property
    def dt_h(self) -> float:
        """Step length in hours."""
        return self.step_s / 3600.0

    @property
    def end_s(self) -> int:
        """Simulation time (s) at the end of the run."""
        return self.step_s * self.n_steps

    def time_at(self, t_s: int) -> datetime:
        """Tz-aware UTC datetime of simulation second ``t_s``."""
        return self._start_utc + timedelta(seconds=t_s)

    def index_of(self, now: datetime) -> int:
        """Step index of the tz-aware datetime ``now`` (floor)."""
        return int((now - self._start_utc).total_seconds()) // self.step_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, used to hand the clock to (remote) simulators."""
        return {"start": self.start.isoformat(), "step_s": self.step_s, "n_steps": self.n_steps}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Clock:
        """Inverse of :meth:`to_dict`."""
        return cls(pd.Timestamp(data["start"]), int(data["step_s"]), int(data["n_steps"]))


class Model:
    """Base class of all vectorised models.

    Subclasses set ``kind``, ``inputs`` and ``outputs`` and implement :meth:`step`.
    ``elements`` maps every element group to the names of its elements; for most
    models that is one group (``kind``) holding one name per unit.

    Parameters
    ----------
    units : list of dict
        One parameter dict per unit, as validated by the scenario.
    clock : Clock
        The run's clock.
    context : dict, optional
        Run-wide context (``site``, ``weather``, ``grid``, ``seed``...).
    """

    kind: ClassVar[str] = "model"
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        self.units = units
        self.clock = clock
        self.context = context or {}
        self.elements: dict[str, list[str]] = {self.kind: [u["name"] for u in units]}

    @classmethod
    def element_names(
        cls, units: list[dict[str, Any]], context: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """The names of the elements, by group, that ``cls(units, clock, context)`` has.

        A world plan lists every entity before any model is built; a model whose
        elements are not one per unit (a grid's buses, an EV park's chargers) overrides
        this, and a test checks it against :attr:`elements` of a built instance.
        """
        return {cls.kind: [u["name"] for u in units]}

    @property
    def n(self) -> int:
        """Number of units of the model's own kind."""
        return len(self.units)

    def param(self, name: str) -> np.ndarray:
        """The parameter ``name`` of every unit as a float array."""
        return np.array([float(u[name]) for u in self.units], dtype=float)

    def group_of(self, port: Port) -> str:
        """Element group a port belongs to."""
        return port.group or self.kind

    def default_inputs(self) -> dict[str, np.ndarray]:
        """Inputs filled with their declared defaults (nothing connected)."""
        return {
            name: np.full(len(self.elements[self.group_of(port)]), port.default)
            for name, port in self.inputs.items()
        }

    def state_outputs(self) -> list[str]:
        """Names of the outputs that are states at an instant (``Port.state``).

        A model whose outputs are states or not depending on its units (a sensor
        measuring a SoC or a power) overrides this.
        """
        return [name for name, port in self.outputs.items() if port.state]

    def state(self) -> dict[str, np.ndarray]:
        """Current value of every state output (before the first step: the initial state).

        Models with state outputs override this; the recorder stamps it at the start.
        """
        return {}

    def exogenous(self) -> dict[str, np.ndarray]:
        """Outputs that do not depend on the loop, for every step of the run.

        Arrays of shape ``(n_steps, n_units)``; what a perfect forecaster would know.
        Models whose outputs depend on their inputs return ``{}``.
        """
        return {}

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Advance all units over ``[now, now + dt_s)`` and return the outputs.

        Interval outputs are means over the step; state outputs (``Port.state``) are
        values at its end, ``now + dt_s``.

        Parameters
        ----------
        now : datetime
            Tz-aware start of the step.
        dt_s : int
            Step length in seconds.
        inputs : dict of str to numpy.ndarray
            One array per declared input, sized to its element group.

        Returns
        -------
        dict of str to numpy.ndarray
            One array per declared output, sized to its element group.
        """
        raise NotImplementedError
