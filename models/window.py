"""Exogenous series a window of steps at a time: memory bounded whatever the run's length.

A model whose outputs follow series known in advance (profiles, prices, the weather's
PV power) computes them for one window of steps when the loop reaches it, not for the
whole run before the first step: a week at 1 s holds 6 h of values, as a day does.
Windows start at multiples of :func:`window_steps` from the run's first step, so the
same run always cuts them the same way (a disk cache keyed per window hits). The step
means of a window are those of the whole run's computation restricted to it (the
series are piecewise constant, see :mod:`models.series`; equal to round-off, tested).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from models.base import Clock

__all__ = ["WINDOW_BYTES", "WINDOW_S", "StepWindows", "sub_clock", "window_steps"]

#: A window spans at least this much simulated time (6 h: at 1 s a day crosses window
#: boundaries as a week does, and a boundary's working memory stays small) ...
WINDOW_S = 21_600
#: ... or as many steps as fit in this many bytes of working memory, when more.
WINDOW_BYTES = 8 * 2**20


def window_steps(clock: Clock, row_bytes: int) -> int:
    """Steps per window: :data:`WINDOW_S`' worth, more when a step's values are small.

    Never more than the run's steps.

    Parameters
    ----------
    clock : Clock
        The run's clock.
    row_bytes : int
        Working memory one step takes while a window is computed (its values and the
        temporaries of the computation).
    """
    day = -(-WINDOW_S // clock.step_s)
    budget = WINDOW_BYTES // max(int(row_bytes), 1)
    return max(1, min(clock.n_steps, max(day, budget)))


def sub_clock(clock: Clock, first: int, n_steps: int) -> Clock:
    """The clock of steps ``first`` .. ``first + n_steps - 1`` of ``clock`` (same zone)."""
    if first == 0 and n_steps == clock.n_steps:
        return clock
    start = clock.start + pd.Timedelta(seconds=first * clock.step_s)
    return Clock(start, clock.step_s, n_steps)


class StepWindows:
    """Step values of exogenous series, computed one window at a time.

    Parameters
    ----------
    clock : Clock
        The run's clock.
    compute : callable
        ``compute(window_clock)`` -> a tuple of arrays of shape ``(window_clock.n_steps,
        ...)``: the series' step means over the window's steps.
    row_bytes : int
        Working memory per step of ``compute`` (see :func:`window_steps`).
    """

    def __init__(
        self,
        clock: Clock,
        compute: Callable[[Clock], tuple[np.ndarray, ...]],
        row_bytes: int,
    ) -> None:
        self.clock = clock
        self.steps = window_steps(clock, row_bytes)
        self._compute = compute
        self._first: int | None = None
        self._values: tuple[np.ndarray, ...] = ()

    def clock_of(self, first: int) -> Clock:
        """The clock of the window that starts at step ``first``."""
        return sub_clock(self.clock, first, min(self.steps, self.clock.n_steps - first))

    def row(self, k: int) -> tuple[np.ndarray, ...]:
        """The values of step ``k`` (its window computed when the loop first reaches it)."""
        if not 0 <= k < self.clock.n_steps:
            raise IndexError(f"step {k} is outside the run's {self.clock.n_steps} steps")
        first = k - k % self.steps
        if first != self._first:
            self._values = ()  # the last window goes before the next one is computed
            self._values = self._compute(self.clock_of(first))
            self._first = first
        # copies: an output kept by the caller must not pin its whole window
        return tuple(values[k - first].copy() for values in self._values)

    def whole(self) -> tuple[np.ndarray, ...]:
        """Every step's values, window by window (what a forecaster of the run knows)."""
        parts = [self._compute(self.clock_of(f)) for f in range(0, self.clock.n_steps, self.steps)]
        return tuple(np.concatenate(columns) for columns in zip(*parts, strict=True))
