r"""Interval means of exogenous series: one mechanism for every step length.

A row of the results at time :math:`t` stands for the step :math:`[t, t + \Delta t)`,
so an exogenous power or price must be the *mean* of its series over that interval,
not its value at :math:`t`. Every series the twin reads (profiles, prices, CSV files)
is piecewise constant: value :math:`v_i` holds on :math:`[b_i, b_{i+1})`. Its integral
:math:`C(x) = \int_{b_0}^{x} v` is piecewise linear, so the mean over any interval is
exact:

.. math:: \bar v_{[s, e)} = \frac{C(e) - C(s)}{e - s}

whatever the step (shorter or longer than the data's resolution, a divisor of it or
not) and across DST changes (everything is done on UTC seconds). Energy is conserved:
the means times the step lengths sum to the series' own integral.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from models.base import Clock

__all__ = ["aligned_breaks", "clock_means", "interval_means"]


def interval_means(
    breaks_s: np.ndarray, values: np.ndarray, starts_s: np.ndarray, step_s: float
) -> np.ndarray:
    """Means of a piecewise-constant series over ``[start, start + step_s)`` intervals.

    Parameters
    ----------
    breaks_s : numpy.ndarray
        Increasing segment boundaries (s), ``n_segments + 1`` of them.
    values : numpy.ndarray
        Shape ``(n_segments, ...)``: the value held on each segment.
    starts_s : numpy.ndarray
        Interval starts (s, same origin as ``breaks_s``).
    step_s : float
        Interval length (s).

    Returns
    -------
    numpy.ndarray
        Shape ``(len(starts_s), ...)``.

    Raises
    ------
    ValueError
        If the intervals reach outside ``[breaks_s[0], breaks_s[-1]]``.
    """
    breaks_s = np.asarray(breaks_s, dtype=float)
    values = np.asarray(values, dtype=float)
    starts_s = np.asarray(starts_s, dtype=float)
    if len(breaks_s) != len(values) + 1:
        raise ValueError("interval_means: expected one more break than values")
    ends_s = starts_s + step_s
    if starts_s.min() < breaks_s[0] or ends_s.max() > breaks_s[-1]:
        raise ValueError(
            f"series covers [{breaks_s[0]:g}, {breaks_s[-1]:g}] s, intervals need "
            f"[{starts_s.min():g}, {ends_s.max():g}] s"
        )
    widths = np.diff(breaks_s).reshape((-1,) + (1,) * (values.ndim - 1))
    cumulative = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values * widths, 0)])

    def integral(x: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(breaks_s, x, side="right") - 1, 0, len(values) - 1)
        offset = (x - breaks_s[k]).reshape((-1,) + (1,) * (values.ndim - 1))
        return cumulative[k] + values[k] * offset

    return (integral(ends_s) - integral(starts_s)) / step_s


def aligned_breaks(clock: Clock, resolution_s: int) -> pd.DatetimeIndex:
    """UTC boundaries every ``resolution_s`` (aligned to the epoch) covering the run."""
    start = int(clock.start.timestamp())
    first = start - start % resolution_s
    last = start + clock.end_s
    count = -(-(last - first) // resolution_s) + 1
    return pd.date_range(
        pd.Timestamp(first, unit="s", tz="UTC"),
        periods=count,
        freq=pd.Timedelta(seconds=resolution_s),
    )


def clock_means(
    clock: Clock, value_at: Callable[[pd.DatetimeIndex], np.ndarray], resolution_s: int
) -> np.ndarray:
    """Step means of a series that is constant between epoch-aligned boundaries.

    Parameters
    ----------
    clock : Clock
        The run's clock.
    value_at : callable
        Value of the series at UTC times (the left edge of each segment); an array of
        shape ``(n_times, ...)``.
    resolution_s : int
        The series changes only at multiples of this many seconds since the epoch
        (900 for quarter-hour profiles in any zone whose offset is a multiple of 15 min).

    Returns
    -------
    numpy.ndarray
        Shape ``(clock.n_steps, ...)``: the mean over every step.
    """
    breaks = aligned_breaks(clock, resolution_s)
    breaks_s = (breaks - clock.start.tz_convert("UTC")).total_seconds().to_numpy()
    values = value_at(breaks[:-1])
    starts_s = np.arange(clock.n_steps, dtype=float) * clock.step_s
    return interval_means(breaks_s, values, starts_s, clock.step_s)
