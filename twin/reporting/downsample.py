"""Long series made drawable: min/max per bucket, WebGL traces above a size.

A year of 15-minute steps is 35,000 points per trace; drawn as SVG with every point the
page weighs tens of MB and pans slowly. :func:`min_max_buckets` keeps, of each of
:data:`BUCKETS` consecutive slices of a series, the points with the lowest and the
highest value (in time order): every peak and trough stays visible at any zoom of the
whole, the file shrinks to ~``2 * BUCKETS`` points per trace. A slice with no value
keeps one NaN point, so a gap still breaks the line.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["BUCKETS", "WEBGL_POINTS", "bucket_means", "min_max_buckets"]

#: Slices a long series is cut into.
BUCKETS = 2_000
#: From this many points on, a trace is drawn with WebGL (``go.Scattergl``) and reduced.
WEBGL_POINTS = 5_000


def _starts(n: int, buckets: int) -> range:
    return range(0, n, math.ceil(n / buckets))


def min_max_buckets(values: pd.Series, buckets: int = BUCKETS) -> pd.Series:
    """The lowest and highest point of each of ``buckets`` slices, in time order."""
    n = len(values)
    if n <= 2 * buckets:
        return values
    data = values.to_numpy(dtype=float)
    size = math.ceil(n / buckets)
    keep: list[int] = []
    for start in _starts(n, buckets):
        chunk = data[start : start + size]
        if np.isnan(chunk).all():
            keep.append(start)
            continue
        low, high = int(np.nanargmin(chunk)), int(np.nanargmax(chunk))
        keep += sorted({start + low, start + high})
    return values.iloc[keep]


def bucket_means(values: pd.Series, buckets: int = BUCKETS) -> pd.Series:
    """The mean of each of ``buckets`` slices at its first time (stacked areas add up)."""
    n = len(values)
    if n <= buckets:
        return values
    size = math.ceil(n / buckets)
    group = np.arange(n) // size
    means = values.groupby(group).mean()
    means.index = values.index[::size][: len(means)]
    return means
