"""Time series that drive models: SimBench profiles and user CSV files.

One mechanism for every profile-driven model (loads, prices): a series is looked up
at the run's step times and returned as a numpy array, once, before the loop starts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["csv_series_at", "simbench_profile_table", "year_profile_at"]

SIMBENCH_STEP = pd.Timedelta(minutes=15)
REFERENCE_PROFILE_GRID = "1-LV-rural1--0-sw"


@lru_cache(maxsize=4)
def simbench_profile_table(grid_code: str = REFERENCE_PROFILE_GRID) -> pd.DataFrame:
    """Relative SimBench load profiles (columns ``<profile>_pload``/``_qload``).

    A year (2016) of 15-minute values, read offline from the ``simbench`` package.
    """
    from models.gridnet import load_net

    net = load_net(grid_code)
    profiles = getattr(net, "profiles", None)
    if profiles is None or "load" not in profiles or profiles["load"].empty:
        net = load_net(REFERENCE_PROFILE_GRID)
        profiles = net.profiles
    return profiles["load"].drop(columns=["time"]).astype(float)


def year_profile_at(values: np.ndarray, times_local: pd.DatetimeIndex) -> np.ndarray:
    """Look up a year-long 15-minute profile at local wall-clock times.

    Row ``i`` of ``values`` holds the quarter-hour ``i`` of the year; times in any
    year map to the same day of year and time of day (wrapping past the end).

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(n_rows, ...)``.
    times_local : pandas.DatetimeIndex
        Tz-aware times, already converted to the profile's local time zone.
    """
    naive = times_local.tz_localize(None)
    year_start = pd.to_datetime(naive.year.astype(str) + "-01-01")
    rows = ((naive - year_start) // SIMBENCH_STEP).to_numpy(dtype=np.int64) % len(values)
    return values[rows]


def csv_series_at(path: str | Path, column: str, times: pd.DatetimeIndex) -> np.ndarray:
    """Read ``column`` of a CSV time series and hold it (step-wise) at ``times``.

    The CSV needs a ``time`` column of tz-aware ISO timestamps (or UTC if naive) and
    must cover the run.

    Raises
    ------
    ValueError
        If the column is missing or the series does not cover ``times``.
    """
    frame = pd.read_csv(path)
    if "time" not in frame.columns or column not in frame.columns:
        raise ValueError(
            f"{path}: expected columns 'time' and {column!r}, found {list(frame.columns)}"
        )
    index = pd.to_datetime(frame["time"], utc=True)
    series = pd.Series(frame[column].astype(float).to_numpy(), index=index).sort_index()
    utc = times.tz_convert("UTC")
    if utc.min() < series.index.min() or utc.max() < series.index.min():
        raise ValueError(f"{path}: series starts {series.index.min()}, after the run's start")
    held = series.reindex(series.index.union(utc)).ffill().loc[utc]
    return held.to_numpy()
