"""Electrical loads driven by profiles, or by absolute power from another simulator.

Sign convention: a consuming load has ``p_kw`` < 0 (power leaves the bus) and an
inductive load ``q_kvar`` < 0. The inputs ``p_kw``/``q_kvar`` are consumption, as the
unit's ratings are (> 0 when consuming): given for a step, they replace
``rating * profile`` of that quantity; NaN (nothing connected) keeps the profile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port
from models.profiles import (
    CsvSeries,
    MissingColumnError,
    csv_series,
    simbench_profile_table,
    year_profile_means,
)
from models.window import StepWindows

__all__ = ["Load"]

#: A load profile is per unit of the load's rating: beyond +-10, not a profile of it.
PROFILE_LIMITS = (-10.0, 10.0)


#: Largest power (kW, kvar) a load input may give: 10 GW, more than any one load.
MAX_INPUT_KW = 1e7


class Load(Model):
    """A set of loads, each ``p_kw * profile(t)`` or the power given as input.

    Unit parameters: ``p_kw`` (rated consumption, > 0), ``q_kvar`` (rated reactive
    consumption), ``profile``: a SimBench profile name (``H0-A``, ``L2-A``...), a CSV
    path with ``time`` and ``p_pu`` (and optionally ``q_pu``) columns, or ``None``
    for a constant load. Profiles are averaged over every step (energy-conserving at
    any step length), a window of steps at a time (:mod:`models.window`); SimBench
    profiles are read on the site's standard time (see
    :func:`models.profiles.year_profile_means`).
    """

    kind = "load"
    inputs = {
        "scale": Port("1", "multiplier on the profile (1 = nominal)", default=1.0),
        "p_kw": Port(
            "kW",
            "active power consumed (> 0), replaces the profile; NaN: the profile's",
            default=np.nan,
            limits=(-MAX_INPUT_KW, MAX_INPUT_KW),
        ),
        "q_kvar": Port(
            "kvar",
            "reactive power consumed, replaces the profile; NaN: the profile's",
            default=np.nan,
            limits=(-MAX_INPUT_KW, MAX_INPUT_KW),
        ),
    }
    outputs = {
        "p_kw": Port("kW", "active power into the bus (< 0 when consuming)", sensor="power"),
        "q_kvar": Port("kvar", "reactive power into the bus (< 0 when inductive)", sensor="power"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self._tz = self.context.get("site", {}).get("tz", "UTC")
        # Units grouped by profile: each profile's means are computed once (a SimBench
        # grid has thousands of loads and tens of profiles).
        by_profile: dict[str, list[int]] = {}
        for i, unit in enumerate(units):
            if unit.get("profile") is not None:
                by_profile.setdefault(str(unit["profile"]), []).append(i)
        self._by_profile = by_profile
        # CSV files are read and checked against the whole run once (the compact source
        # data); SimBench profiles come from the cached table.
        self._files: dict[str, tuple[CsvSeries, CsvSeries]] = {}
        for name in by_profile:
            if name.lower().endswith(".csv"):
                p_series = csv_series(name, "p_pu", clock, PROFILE_LIMITS)
                try:
                    q_series = csv_series(name, "q_pu", clock, PROFILE_LIMITS)
                except MissingColumnError:  # no q_pu column: the p_pu profile
                    q_series = p_series
                self._files[name] = (p_series, q_series)
        self._simbench = [name for name in by_profile if name not in self._files]
        self._p_rated, self._q_rated = self.param("p_kw"), self.param("q_kvar")
        # working memory per step: the units' p and q and the profiles' means (with the
        # temporaries of the interval means, a few times their size)
        row_bytes = 8 * (3 * self.n + 8 * len(self._simbench))
        self._windows = StepWindows(clock, self._window_means, row_bytes)
        self._windows.row(0)  # the first window now: a bad profile fails at set-up

    def _window_means(self, clock: Clock) -> tuple[np.ndarray, np.ndarray]:
        """Nominal power of every load over the steps of ``clock`` (a window of the run)."""
        # -rated where no profile; each profile's means times its units' ratings
        p_kw = np.broadcast_to(-self._p_rated, (clock.n_steps, self.n)).copy()
        q_kvar = np.broadcast_to(-self._q_rated, (clock.n_steps, self.n)).copy()

        def put(name: str, p_pu: np.ndarray, q_pu: np.ndarray) -> None:
            units = self._by_profile[name]
            p_kw[:, units] = -p_pu[:, None] * self._p_rated[units]
            q_kvar[:, units] = -q_pu[:, None] * self._q_rated[units]

        for name, (p_series, q_series) in self._files.items():
            p_means = p_series.means(clock)
            put(name, p_means, p_means if q_series is p_series else q_series.means(clock))
        if self._simbench:
            table = simbench_profile_table(self.context.get("grid", ""))
            columns = [f"{name}_{part}" for name in self._simbench for part in ("pload", "qload")]
            means = year_profile_means(table[columns].to_numpy(), clock, self._tz)
            for j, name in enumerate(self._simbench):
                put(name, means[:, 2 * j], means[:, 2 * j + 1])
        return p_kw, q_kvar

    def exogenous(self) -> dict[str, np.ndarray]:
        """Nominal (``scale`` = 1) power of every load for every step."""
        p_kw, q_kvar = self._windows.whole()
        return {"p_kw": p_kw, "q_kvar": q_kvar}

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Profile value (or the ``p_kw``/``q_kvar`` inputs) of step ``now`` times ``scale``."""
        p_kw, q_kvar = self._windows.row(self.clock.index_of(now))
        p_kw, q_kvar = _given(inputs.get("p_kw"), p_kw), _given(inputs.get("q_kvar"), q_kvar)
        return {"p_kw": p_kw * inputs["scale"], "q_kvar": q_kvar * inputs["scale"]}


def _given(consumed: np.ndarray | None, profile: np.ndarray) -> np.ndarray:
    """Power into the bus: ``-consumed`` where given, else the profile's (NaN: not given)."""
    if consumed is None:
        return profile
    missing = np.isnan(consumed)
    if np.count_nonzero(missing) == missing.size:  # nothing sent: what np.where would give
        return profile
    return np.where(missing, profile, -consumed)
