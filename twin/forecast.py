"""Forecasters of a site's net non-dispatchable power (PV + loads, kW).

A forecaster sees the series' history before the run and every value measured during
the run (:meth:`observe`), and predicts the next ``horizon`` steps (:meth:`predict`).

- ``perfect``: the true future (a benchmark's upper bound, and for tests);
- ``persistence``: the value one day earlier (the classic naive forecast);
- ``regression``: a scikit-learn gradient-boosting regressor on time-of-day,
  day-of-week and the value one day earlier, trained on the history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "FORECASTERS",
    "Forecaster",
    "PerfectForecaster",
    "PersistenceForecaster",
    "RegressionForecaster",
]


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


FORECASTERS: dict[str, type[Forecaster]] = {
    cls.name: cls for cls in (PerfectForecaster, PersistenceForecaster, RegressionForecaster)
}
