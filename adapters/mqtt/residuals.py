"""Validation residuals: measured minus simulated, over the run and a sliding window."""

from __future__ import annotations

import math
from collections import deque

__all__ = ["ResidualStats"]


class ResidualStats:
    """RMSE, bias and largest absolute error of one quantity.

    Parameters
    ----------
    window : int
        Number of most recent steps in the sliding window.

    Steps without a fresh measurement (NaN residual) count in neither statistic.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("the residual window needs at least one step")
        self.window: deque[float] = deque(maxlen=window)
        self.n = 0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.max_abs = 0.0

    def add(self, residual: float) -> None:
        """Record one step's residual (NaN: no measurement this step)."""
        self.window.append(residual)
        if math.isnan(residual):
            return
        self.n += 1
        self.sum += residual
        self.sum_sq += residual * residual
        self.max_abs = max(self.max_abs, abs(residual))

    @staticmethod
    def _stats(n: int, total: float, total_sq: float, max_abs: float) -> dict[str, float]:
        if n == 0:
            return {"rmse": math.nan, "bias": math.nan, "max_abs": math.nan, "n": 0}
        return {"rmse": math.sqrt(total_sq / n), "bias": total / n, "max_abs": max_abs, "n": n}

    def run(self) -> dict[str, float]:
        """Statistics over every step so far."""
        return self._stats(self.n, self.sum, self.sum_sq, self.max_abs)

    def recent(self) -> dict[str, float]:
        """Statistics over the sliding window."""
        values = [r for r in self.window if not math.isnan(r)]
        return self._stats(
            len(values),
            sum(values),
            sum(r * r for r in values),
            max((abs(r) for r in values), default=0.0),
        )
