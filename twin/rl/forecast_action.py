"""The agent's action on MPC's forecast: factors on the persistence of PV and of load.

With ``base="forecast"`` the agent does not move the battery's setpoint. It corrects the
forecast MPC plans with: MPC (:class:`twin.control.optimal.MPCController`, re-planning
every step from the measured SoC) forecasts the site's PV and its load as the values of
one day earlier (persistence), each times a factor the agent chooses at every step, and
dispatches by the LP of the scored objective. An action of zero is plain persistence
MPC; an action of 1 multiplies a part by its :data:`FACTOR_RANGE`, -1 divides it.

With ``base="day_ahead"`` the factors start from the modelled day-ahead forecast of the
day's PV and load energy (:func:`twin.forecast.day_ahead_log_ratio`): a zero action is
MPC on that forecast, and the agent corrects it from what the meters show during the
day (a forecast service's error is not known at midnight, but a morning of metered PV
tells part of it).

Why this action: on held-out days of the training domain, persistence MPC loses about
7.5 % of the oracle's saving and all of it is forecast error (with the true forecast
the same LP is the oracle). Two factors per day known in hindsight (today's PV and load
energy over yesterday's) recover most of it (BENCHMARKS.md), so the agent has room to
gain, and whatever it learns keeps the plan consistent with the battery, the tariff and
the objective, which the LP handles for any site: the agent only has to learn how the
weather and the load of today differ from yesterday's (what a setpoint correction had
to learn as well, together with the plant).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.forecast import Forecaster, PersistenceForecaster

__all__ = ["FACTOR_RANGE", "CorrectedPersistence", "factors_of"]

#: The largest factor on the persistence forecast of PV and of load (action +-1).
FACTOR_RANGE = np.array([4.0, 2.0])


def factors_of(action: np.ndarray) -> np.ndarray:
    """Factors on the PV and load forecasts for an action in -1..1 (0: persistence)."""
    return FACTOR_RANGE ** np.clip(np.asarray(action, dtype=float), -1.0, 1.0)


class CorrectedPersistence(Forecaster):
    """Persistence of PV and of load, each times the factor of the last action.

    With a prior (:meth:`set_prior`, the ``day_ahead`` base) each factor is the
    day-ahead forecast's factor times the action's: a zero action plans on the day-ahead
    forecast (:class:`twin.forecast.DayAheadForecaster`, equal for a one-day horizon).

    Parameters
    ----------
    pv_history, load_history : numpy.ndarray
        Site PV (> 0) and load (< 0 consuming) power of the steps before the run (kW).
    times : pandas.DatetimeIndex
        Local times of every step, history first then the run.
    steps_per_day : int
        Steps in one day.
    """

    name = "corrected_persistence"

    def __init__(
        self,
        pv_history: np.ndarray,
        load_history: np.ndarray,
        times: pd.DatetimeIndex,
        steps_per_day: int,
    ) -> None:
        pv_history = np.asarray(pv_history, dtype=float)
        load_history = np.asarray(load_history, dtype=float)
        super().__init__(pv_history + load_history, times, steps_per_day)
        self.parts = (
            PersistenceForecaster(pv_history, times, steps_per_day),
            PersistenceForecaster(load_history, times, steps_per_day),
        )
        self.prior = np.zeros(2)
        self.factors = np.ones(2)

    def set_prior(self, log_ratio: np.ndarray) -> None:
        """Start from the day-ahead forecast: factors ``exp(log_ratio)`` before the action."""
        self.prior = np.asarray(log_ratio, dtype=float)

    def correct(self, action: np.ndarray) -> None:
        """Take the agent's action (two values in -1..1) for the next forecasts."""
        self.factors = np.exp(self.prior) * factors_of(action)

    def observe_parts(self, k: int, pv_kw: float, load_kw: float) -> None:
        """Record the PV and load power measured at run step ``k``."""
        self.parts[0].observe(k, pv_kw)
        self.parts[1].observe(k, load_kw)

    def predict(self, k: int, horizon: int) -> np.ndarray:
        """Each part one day earlier times its factor, summed."""
        pv, load = (part.predict(k, horizon) for part in self.parts)
        return self.factors[0] * pv + self.factors[1] * load
