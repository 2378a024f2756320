"""Forecasters of a site's net non-dispatchable power (PV + loads, kW).

A forecaster sees the series' history before the run and every value measured during
the run (:meth:`observe`), and predicts the next ``horizon`` steps (:meth:`predict`).

- ``perfect``: the true future (a benchmark's upper bound, and for tests);
- ``persistence``: the value one day earlier (the classic naive forecast);
- ``regression``: a scikit-learn gradient-boosting regressor on time-of-day,
  day-of-week and the value one day earlier, trained on the history;
- ``day_ahead``: a day-ahead forecast service, modelled: each local day's PV and load
  energy as it turns out, times a seeded log-normal error (:func:`day_ahead_log_ratio`),
  spread over the profile of one day earlier and weighed against persistence
  (:class:`DayAheadForecaster`, ``trust``).

The day-ahead model stands in for what a site buys or computes from a weather forecast:
it knows the day's energy only up to its error (``DAY_AHEAD_ERROR``, the standard
deviation of the log error, a control option), and the profile within the day no better
than persistence. Its error is drawn from the run's seed and the date, so every
controller of a run (MPC, the RL agent) reads the same forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DAY_AHEAD_ERROR",
    "DAY_AHEAD_TRUST",
    "FORECASTERS",
    "RATIO_FLOOR",
    "DayAheadForecaster",
    "Forecaster",
    "PerfectForecaster",
    "PersistenceForecaster",
    "RegressionForecaster",
    "day_ahead_error",
    "day_ahead_log_ratio",
    "day_ahead_seed",
    "day_ahead_trust",
    "energy_log_ratio",
]

#: Standard deviation of the log error of the day-ahead forecast of a day's PV and load
#: energy: day-ahead PV forecasts of a single site miss the day's energy by roughly a
#: third, a feeder's load by roughly a tenth.
DAY_AHEAD_ERROR = (0.3, 0.1)
#: How far a plan moves from persistence towards the day-ahead forecast (the weight of
#: its log ratio): 1 plans on the forecast as it is; 0.5 (the geometric mean of the two)
#: kept MPC above persistence for every draw of the errors tried, where trusting the
#: forecast fully fell below it on a PV-rich site (BENCHMARKS.md).
DAY_AHEAD_TRUST = 0.5
#: Energy added to both sides of a ratio of energies, as a share of the reference day's
#: whole energy: a day with almost no PV does not make a ratio from noise.
RATIO_FLOOR = 0.02


class Forecaster:
    """Base: keeps history and measurements on one time axis (step index).

    Parameters
    ----------
    history : numpy.ndarray
        Values of the ``n_hist`` steps just before the run.
    times : pandas.DatetimeIndex
        Local times of every step, history first then the run (``n_hist + n_steps``).
    steps_per_day : int
        Steps in one day.
    truth : numpy.ndarray, optional
        The run's true values (only the perfect forecaster reads them).
    """

    name = "base"

    def __init__(
        self,
        history: np.ndarray,
        times: pd.DatetimeIndex,
        steps_per_day: int,
        truth: np.ndarray | None = None,
    ) -> None:
        self.n_hist = len(history)
        self.values = np.full(len(times), np.nan)
        self.values[: self.n_hist] = history
        self.times = times
        self.steps_per_day = steps_per_day
        self.truth = truth

    def observe(self, k: int, value: float) -> None:
        """Record the value measured at run step ``k``."""
        self.values[self.n_hist + k] = value

    def _lag_day(self, k: int, horizon: int) -> np.ndarray:
        """Value one day before each of the run steps ``k .. k+horizon-1``."""
        idx = self.n_hist + k + np.arange(horizon) - self.steps_per_day
        lagged = self.values[np.clip(idx, 0, None)]
        last = self.values[: self.n_hist + k + 1]
        fallback = last[~np.isnan(last)][-1] if np.any(~np.isnan(last)) else 0.0
        return np.where(np.isnan(lagged) | (idx < 0), fallback, lagged)

    def predict(self, k: int, horizon: int) -> np.ndarray:
        """Forecast of run steps ``k .. k+horizon-1``."""
        raise NotImplementedError


class PerfectForecaster(Forecaster):
    """The true future."""

    name = "perfect"

    def predict(self, k: int, horizon: int) -> np.ndarray:
        """The truth itself."""
        assert self.truth is not None, "the perfect forecaster needs the truth"
        return self.truth[k : k + horizon].copy()


class PersistenceForecaster(Forecaster):
    """Tomorrow looks like today: the value one day earlier."""

    name = "persistence"

    def predict(self, k: int, horizon: int) -> np.ndarray:
        """Values one day before the forecast steps."""
        return self._lag_day(k, horizon)


class RegressionForecaster(Forecaster):
    """Gradient boosting on (hour sin/cos, weekday, value a day earlier), fit on history."""

    name = "regression"

    def __init__(self, *args, **kwargs) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        super().__init__(*args, **kwargs)
        rows = np.arange(self.steps_per_day, self.n_hist)
        if len(rows) < self.steps_per_day:
            raise ValueError("the regression forecaster needs at least two days of history")
        features = self._features(rows, self.values[rows - self.steps_per_day])
        self.model = HistGradientBoostingRegressor(max_iter=200, random_state=0)
        self.model.fit(features, self.values[rows])

    def _features(self, rows: np.ndarray, lag_day: np.ndarray) -> np.ndarray:
        times = self.times[rows]
        hour = times.hour.to_numpy() + times.minute.to_numpy() / 60.0
        angle = 2 * np.pi * hour / 24.0
        return np.column_stack([np.sin(angle), np.cos(angle), times.dayofweek.to_numpy(), lag_day])

    def predict(self, k: int, horizon: int) -> np.ndarray:
        """Regressor output for the forecast steps."""
        rows = self.n_hist + k + np.arange(horizon)
        return self.model.predict(self._features(rows, self._lag_day(k, horizon)))


def day_ahead_seed(control: dict | None, context: dict) -> int:
    """The seed of the day-ahead forecast's errors: ``control.day_ahead_seed`` or the run's."""
    seed = (control or {}).get("day_ahead_seed")
    return int(context.get("seed") or 0) if seed is None else int(seed)


def day_ahead_trust(control: dict | None) -> float:
    """The weight of the day-ahead forecast against persistence (:data:`DAY_AHEAD_TRUST`)."""
    trust = (control or {}).get("day_ahead_trust")
    return DAY_AHEAD_TRUST if trust is None else float(trust)


def day_ahead_error(control: dict | None) -> tuple[float, float]:
    """The day-ahead errors of PV and load in control options (:data:`DAY_AHEAD_ERROR`)."""
    control = control or {}
    pv, load = control.get("day_ahead_error_pv"), control.get("day_ahead_error_load")
    return (
        DAY_AHEAD_ERROR[0] if pv is None else float(pv),
        DAY_AHEAD_ERROR[1] if load is None else float(load),
    )


def energy_log_ratio(today: np.ndarray, before: np.ndarray, reference: float) -> float:
    """``log`` of energy ``today`` over ``before`` (sums of power), floored by ``reference``.

    ``reference`` is the whole reference day's energy (the same unit); a share
    :data:`RATIO_FLOOR` of it is added to both sides.
    """
    floor = RATIO_FLOOR * abs(reference) + 1e-9
    return float(np.log((abs(float(np.sum(today))) + floor) / (abs(float(np.sum(before))) + floor)))


def day_ahead_log_ratio(
    today: tuple[np.ndarray, np.ndarray],
    yesterday: tuple[np.ndarray, np.ndarray],
    seed: int,
    day_ordinal: int,
    error: tuple[float, float] = DAY_AHEAD_ERROR,
) -> np.ndarray:
    """The day-ahead forecast of a day's PV and load energy over the day before's (log).

    Parameters
    ----------
    today, yesterday : tuple of numpy.ndarray
        PV and load power of the day's steps and of the same steps one day earlier.
    seed : int
        The run's seed.
    day_ordinal : int
        The local date (:meth:`datetime.date.toordinal`): with ``seed``, it draws the
        day's errors, the same for every controller that asks.
    error : tuple of float
        Standard deviations of the log errors of PV and of load.

    Returns
    -------
    numpy.ndarray
        ``log(E_today / E_yesterday) + error``, for PV and for load.
    """
    truth = np.array(
        [energy_log_ratio(t, y, float(np.sum(y))) for t, y in zip(today, yesterday, strict=True)]
    )
    draw = np.random.default_rng([int(seed), int(day_ordinal)]).standard_normal(2)
    return truth + np.asarray(error, dtype=float) * draw


class DayAheadForecaster(Forecaster):
    """Each part one day earlier, times the day-ahead forecast of its day's energy ratio.

    The factor is ``exp(trust * log_ratio)``: persistence moved ``trust`` of the way
    (in log terms) towards the forecast.

    Parameters
    ----------
    pv, load : numpy.ndarray
        Site PV (> 0) and load (< 0) power of every step, history first then the run
        (the run's own values: what the forecast service's error is applied to).
    n_hist : int
        Steps of history before the run.
    times : pandas.DatetimeIndex
        Local times of every step.
    steps_per_day : int
        Steps in one day.
    seed : int
        The run's seed (draws the day's errors with the date).
    error : tuple of float
        Standard deviations of the log errors of PV and load (:data:`DAY_AHEAD_ERROR`).
    trust : float
        Weight of the forecast's log ratio (:data:`DAY_AHEAD_TRUST`; 1: the forecast as
        it is, 0: persistence).
    """

    name = "day_ahead"

    def __init__(
        self,
        pv: np.ndarray,
        load: np.ndarray,
        n_hist: int,
        times: pd.DatetimeIndex,
        steps_per_day: int,
        seed: int,
        error: tuple[float, float] = DAY_AHEAD_ERROR,
        trust: float = DAY_AHEAD_TRUST,
    ) -> None:
        pv, load = np.asarray(pv, dtype=float), np.asarray(load, dtype=float)
        super().__init__(pv[:n_hist] + load[:n_hist], times, steps_per_day)
        self.parts = (
            PersistenceForecaster(pv[:n_hist], times, steps_per_day),
            PersistenceForecaster(load[:n_hist], times, steps_per_day),
        )
        self.run_parts = (pv, load)
        codes, self.days = pd.factorize(times.normalize())  # times ascend: days are runs
        self.day_of_step = codes
        self.factors = np.ones((len(self.days), 2))
        starts = np.flatnonzero(np.r_[True, np.diff(codes) != 0])
        ends = np.r_[starts[1:], len(codes)]
        for d, (first, end) in enumerate(zip(starts, ends, strict=True)):
            if end <= n_hist or first < steps_per_day:
                continue  # a history day (never predicted) or one without a day before
            day = self.days[d]
            steps = np.arange(first, end)
            before = steps - steps_per_day
            ratio = day_ahead_log_ratio(
                (pv[steps], load[steps]),
                (pv[before], load[before]),
                seed,
                day.date().toordinal(),
                error,
            )
            self.factors[d] = np.exp(trust * ratio)

    def observe(self, k: int, value: float) -> None:
        """Step ``k`` is metered: its PV and load (the run's values) join the history."""
        super().observe(k, value)
        for part, series in zip(self.parts, self.run_parts, strict=True):
            part.observe(k, series[self.n_hist + k])

    def predict(self, k: int, horizon: int) -> np.ndarray:
        """Each part one day earlier times its day's forecast factor, summed."""
        pv, load = (part.predict(k, horizon) for part in self.parts)
        factors = self.factors[self.day_of_step[self.n_hist + k + np.arange(horizon)]]
        return factors[:, 0] * pv + factors[:, 1] * load


FORECASTERS: dict[str, type[Forecaster]] = {
    cls.name: cls for cls in (PerfectForecaster, PersistenceForecaster, RegressionForecaster)
}
