"""Array helpers of the engine's hot path (no warnings machinery per step)."""

from __future__ import annotations

import numpy as np

__all__ = ["TINY", "fill_nan", "pad", "ratio", "unit"]

#: Below this a denominator is 0: no physical quantity of the twin is that small.
TINY = 1e-200


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as floats, NaN where ``den`` is 0 (or either is NaN), no warning.

    Denominators below :data:`TINY` in magnitude count as 0 (no overflow to infinity).
    """
    den = np.asarray(den, float)
    return num / np.where(np.abs(den) > TINY, den, np.nan)


def unit(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to 0..1 (NaN stays NaN)."""
    return np.minimum(np.maximum(values, 0.0), 1.0)


def fill_nan(values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``values`` with NaN replaced by ``fill`` (a new array)."""
    values = np.asarray(values, float)
    return np.where(np.isnan(values), fill, values)


_TAILS = {True: np.array([True]), False: np.array([False])}
_NAN_TAIL = np.array([np.nan])


def pad(values: np.ndarray, fill: float | bool = np.nan) -> np.ndarray:
    """``values`` with one ``fill`` appended: index -1 of a gather picks it (no sensor)."""
    if isinstance(fill, bool):
        tail = _TAILS[fill]
    elif fill != fill:
        tail = _NAN_TAIL
    else:
        tail = np.array([fill], dtype=np.asarray(values).dtype)
    return np.concatenate((values, tail))
