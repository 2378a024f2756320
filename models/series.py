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

#: Intervals computed at once (their temporaries are a few times this many rows).
BLOCK_STEPS = 8192


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

    def segment(x: np.ndarray, side: str) -> np.ndarray:
        return np.clip(np.searchsorted(breaks_s, x, side=side) - 1, 0, len(values) - 1)

    out = np.empty((len(starts_s), *values.shape[1:]))
    for at in range(0, len(starts_s), BLOCK_STEPS):  # temporaries of a block, not of all
        rows = slice(at, at + BLOCK_STEPS)
        out[rows] = _block_means(breaks_s, values, cumulative, starts_s[rows], step_s)
    return out


def _block_means(
    breaks_s: np.ndarray,
    values: np.ndarray,
    cumulative: np.ndarray,
    starts_s: np.ndarray,
    step_s: float,
) -> np.ndarray:
    """:func:`interval_means` of some intervals, given the series' running integral."""
    shape = (-1,) + (1,) * (values.ndim - 1)
    ends_s = starts_s + step_s

    def segment(x: np.ndarray, side: str) -> np.ndarray:
        return np.clip(np.searchsorted(breaks_s, x, side=side) - 1, 0, len(values) - 1)

    # The integral over [s, e) from the segments it touches: the start's to its end, the
    # whole segments between (none for a step shorter than the data's resolution), the
    # end's from its start. Never a difference of two integrals from the series' origin,
    # which loses digits in proportion to the run's length (a week at 1 s: 1e-10). An
    # end on a boundary closes the segment before it.
    first, last = segment(starts_s, "right"), segment(ends_s, "left")
    spans = (last > first).reshape(shape)
    after = np.minimum(first + 1, len(values))
    means = (np.minimum(breaks_s[after], ends_s) - starts_s).reshape(shape) * values[first]
    means += np.where(spans, cumulative[last] - cumulative[after], 0.0)
    means += np.where(spans, (ends_s - breaks_s[last]).reshape(shape) * values[last], 0.0)
    means /= step_s
    # a step inside one segment is exactly its value
    return np.where(spans, means, values[first])


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
