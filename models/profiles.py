"""Time series that drive models: SimBench profiles and user CSV files.

One mechanism for every profile-driven model (loads, prices, schedules): a series is
averaged over every step of the run, or of a window of it (see :mod:`models.series`
and :mod:`models.window`), and returned as a numpy array.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from models.base import Clock
from models.filecache import file_stamp
from models.series import clock_means, interval_means

__all__ = [
    "CsvSeries",
    "MissingColumnError",
    "SeriesFileError",
    "csv_series",
    "csv_series_means",
    "simbench_profile_table",
    "year_profile_at",
    "year_profile_means",
]

SIMBENCH_STEP = pd.Timedelta(minutes=15)
REFERENCE_PROFILE_GRID = "1-LV-rural1--0-sw"


def simbench_profile_table(grid_code: str = REFERENCE_PROFILE_GRID) -> pd.DataFrame:
    """Relative SimBench load profiles (columns ``<profile>_pload``/``_qload``).

    A year (2016) of 15-minute values: the grid's own (``grid_code`` names a grid as
    :func:`models.gridnet.load_net` does), else those of :data:`REFERENCE_PROFILE_GRID`.
    Read offline from the ``simbench`` package once, then from the disk cache.
    """
    return _profile_table(grid_code, file_stamp(grid_code))


@lru_cache(maxsize=4)
def _profile_table(grid_code: str, stamp: tuple[int, int] | None) -> pd.DataFrame:
    # ``stamp`` only keys the cache: a JSON grid edited in place is read again.
    from models.gridnet import load_profiles

    table = load_profiles(grid_code)
    return load_profiles(REFERENCE_PROFILE_GRID) if table is None else table


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


def year_profile_means(values: np.ndarray, clock: Clock, tz: str) -> np.ndarray:
    """Step means of a year-long 15-minute profile, read on the site's wall clock.

    Quarter-hour ``i`` of the profile's year is the ``i``-th quarter-hour of the
    local calendar year, so behaviour follows the clock people live by. On the day
    the clocks go forward the profile's skipped hour is not used (a 23 h day); on the
    day they go back the repeated hour is used twice (a 25 h day). Means are exact
    at any step length (see :mod:`models.series`).

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(n_rows, ...)``: quarter-hour ``i`` of the year in row ``i``.
    clock : Clock
        The run's clock.
    tz : str
        The site's IANA time zone (every current UTC offset is a multiple of 15 min,
        so the local quarter-hours start on UTC quarter-hours).

    Returns
    -------
    numpy.ndarray
        Shape ``(clock.n_steps, ...)``: the profile's mean over every step.
    """

    def value_at(times_utc: pd.DatetimeIndex) -> np.ndarray:
        return year_profile_at(values, times_utc.tz_convert(tz))

    return clock_means(clock, value_at, int(SIMBENCH_STEP.total_seconds()))


class SeriesFileError(ValueError):
    """A CSV time series that cannot be used: unreadable, incomplete or too short."""


class MissingColumnError(SeriesFileError):
    """A CSV time series lacks a column (an optional one may fall back to a default)."""


def _rows(mask: pd.Series) -> str:
    """File line numbers (header = line 1) of the rows flagged in ``mask``, a few of them."""
    lines = [str(i + 2) for i in np.flatnonzero(mask.to_numpy())]
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return ", ".join(lines[:5]) + more


@dataclass(frozen=True)
class CsvSeries:
    """A CSV series as read and checked: piecewise constant from its time stamps.

    Attributes
    ----------
    origin : pandas.Timestamp
        UTC origin of ``breaks_s`` (the start of the run it was checked for).
    breaks_s : numpy.ndarray
        Segment boundaries (s since ``origin``): every stamp, then the last plus the
        median spacing.
    values : numpy.ndarray
        The value held on each segment.
    """

    origin: pd.Timestamp
    breaks_s: np.ndarray
    values: np.ndarray

    def means(self, clock: Clock) -> np.ndarray:
        """Step means over ``clock`` (a window of the run it was read for, or the run)."""
        offset = (clock.start.tz_convert("UTC") - self.origin).total_seconds()
        steps_s = offset + np.arange(clock.n_steps, dtype=float) * clock.step_s
        return interval_means(self.breaks_s, self.values, steps_s, clock.step_s)


def csv_series_means(
    path: str | Path,
    column: str,
    clock: Clock,
    limits: tuple[float, float] | None = None,
) -> np.ndarray:
    """Step means of ``column`` of a CSV time series (:func:`csv_series` over ``clock``).

    Raises
    ------
    MissingColumnError
        If ``time`` or ``column`` is missing.
    SeriesFileError
        If the file cannot be read, a time stamp or value is missing or not a finite
        number, or the series does not cover the run.
    """
    return csv_series(path, column, clock, limits).means(clock)


def csv_series(
    path: str | Path,
    column: str,
    clock: Clock,
    limits: tuple[float, float] | None = None,
) -> CsvSeries:
    """``column`` of a CSV time series, checked to cover the run of ``clock``.

    The CSV needs a ``time`` column of tz-aware ISO timestamps (or UTC if naive); each
    value holds from its stamp to the next one (the last for the median spacing), so
    the mean over a step is exact at any step length. The series must cover the run
    and every value must be a finite number: an empty or non-numeric cell is an error,
    never a silent gap (a running mean would carry it into every later step).

    ``limits`` (low, high) bounds every value; a value outside is an error naming its
    line (a price in EUR/MWh where EUR/kWh is expected, say).

    Raises
    ------
    MissingColumnError
        If ``time`` or ``column`` is missing.
    SeriesFileError
        If the file cannot be read, a time stamp or value is missing or not a finite
        number, or the series does not cover the run.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SeriesFileError(f"{path}: not a readable CSV time series ({exc})") from exc
    if "time" not in frame.columns or column not in frame.columns:
        raise MissingColumnError(
            f"{path}: expected columns 'time' and {column!r}, found {list(frame.columns)}"
        )
    times = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    if times.isna().any():
        raise SeriesFileError(
            f"{path}: 'time' is missing or not an ISO 8601 time stamp on line(s) "
            f"{_rows(times.isna())}"
        )
    numbers = pd.to_numeric(frame[column], errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers.fillna(0.0))
    if bad.any():
        raise SeriesFileError(
            f"{path}: {column!r} is empty or not a finite number on line(s) {_rows(bad)}; "
            "fill the gap (a missing value is never taken as zero)"
        )
    if limits is not None:
        outside = (numbers < limits[0]) | (numbers > limits[1])
        if outside.any():
            raise SeriesFileError(
                f"{path}: {column!r} is outside {limits[0]:g} .. {limits[1]:g} on line(s) "
                f"{_rows(outside)}"
            )
    frame = frame.assign(time=times, **{column: numbers.astype(float)}).sort_values("time")
    stamps = frame["time"].drop_duplicates(keep="last")
    if len(stamps) != len(frame):
        raise SeriesFileError(f"{path}: the 'time' column repeats time stamps")
    origin = clock.start.tz_convert("UTC")
    starts_s = (pd.DatetimeIndex(stamps) - origin).total_seconds().to_numpy()
    spacing = float(np.median(np.diff(starts_s))) if len(starts_s) > 1 else float(clock.step_s)
    breaks_s = np.append(starts_s, starts_s[-1] + spacing)
    first, end = origin, origin + pd.Timedelta(seconds=clock.end_s)
    if breaks_s[0] > 0 or breaks_s[-1] < clock.end_s:
        covered_to = origin + pd.Timedelta(seconds=breaks_s[-1])
        raise SeriesFileError(
            f"{path}: {column!r} covers {stamps.iloc[0]} to {covered_to} (the last value "
            f"held for {spacing:g} s); the run needs {first} to {end}"
        )
    return CsvSeries(origin, breaks_s, frame[column].astype(float).to_numpy())
