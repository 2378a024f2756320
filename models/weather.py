"""Weather input from typical-meteorological-year files (TMY3 and TMY2 formats).

Readers of foreign files map their column names to pvlib's vocabulary here
(``ghi``, ``dni``, ``dhi`` in W/m2, ``temp_air`` in degC, ``wind_speed`` in m/s) and
nowhere deeper.

A typical year is 8760 hourly values in the file's local standard time, each the
average of the hour that *ends* at its hour number (1..24). It is laid onto every
calendar year a run spans; a leap year gets a 29 February that repeats the weather
of 28 February (TMY files have no 29 February).
"""

from __future__ import annotations

import calendar
import hashlib
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

from models.diskcache import MISSING, CacheEntry, package_versions
from models.filecache import file_stamp

__all__ = [
    "BUNDLED_TMY_FILES",
    "HOURS_BEFORE_FEB_29",
    "WEATHER_COLUMNS",
    "WeatherFileError",
    "read_weather_file",
    "resolve_weather_path",
    "tmy_metadata",
    "weather_at",
    "weather_digest",
]

WEATHER_COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed")
#: pvlib's bundled data, found without importing pvlib (half a second of start-up).
PVLIB_DATA_DIR = Path(find_spec("pvlib").origin).parent / "data"
BUNDLED_TMY_FILES = ("723170TYA.CSV", "703165TY.csv", "12839.tm2")
HOURS_PER_TYPICAL_YEAR = 8760
#: Hours of 1 January to 28 February: the typical year's 29 February goes after them.
HOURS_BEFORE_FEB_29 = 59 * 24
#: TMY2 stores temperature and wind speed in tenths of their unit.
TMY2_COLUMNS = {
    "GHI": ("ghi", 1.0),
    "DNI": ("dni", 1.0),
    "DHI": ("dhi", 1.0),
    "DryBulb": ("temp_air", 0.1),
    "Wspd": ("wind_speed", 0.1),
}


class WeatherFileError(ValueError):
    """A weather file cannot be read as a TMY3 or TMY2 typical year."""


def resolve_weather_path(name: str | Path) -> Path:
    """Find a weather file: a pvlib-bundled TMY name or a path on disk.

    Raises
    ------
    FileNotFoundError
        Naming the bundled files when ``name`` is neither.
    """
    path = Path(name)
    if path.is_file():
        return path
    bundled = PVLIB_DATA_DIR / str(name)
    if bundled.is_file() and str(name) in BUNDLED_TMY_FILES:
        return bundled
    raise FileNotFoundError(
        f"weather file {str(name)!r} not found: expected a path or one of pvlib's bundled "
        f"TMY files {', '.join(BUNDLED_TMY_FILES)}"
    )


def _is_tmy2(path: Path) -> bool:
    if path.suffix.lower() == ".tm2":
        return True
    with open(path, encoding="latin-1") as handle:
        return "," not in handle.readline()


def _read_tmy3(path: Path) -> tuple[pd.DataFrame, dict]:
    import pvlib

    # a non-leap year, as pvlib coerces: the hour ending 24:00 on 31 Dec is in 1991
    data, meta = pvlib.iotools.read_tmy3(str(path), coerce_year=1990, map_variables=True)
    return data[list(WEATHER_COLUMNS)], meta


def _read_tmy2(path: Path) -> tuple[pd.DataFrame, dict]:
    import pvlib

    data, meta = pvlib.iotools.read_tmy2(str(path))
    frame = pd.DataFrame(
        {name: data[column].astype(float) * scale for column, (name, scale) in TMY2_COLUMNS.items()}
    )
    # pvlib stamps TMY2 rows with the start of their hour; the values are for the hour
    # that ends one hour later, as in TMY3.
    frame.index = data.index + pd.Timedelta(hours=1)
    return frame, meta


def read_weather_file(path: str) -> tuple[np.ndarray, dict[str, float]]:
    """The typical year of a TMY3 (CSV) or TMY2 (``.tm2``) file.

    Parameters
    ----------
    path : str
        Path of the file (see :func:`resolve_weather_path`).

    Returns
    -------
    values : numpy.ndarray
        Shape ``(8760, 5)``: the :data:`WEATHER_COLUMNS` of every hour of the year,
        in order, row ``h`` averaging the hour that ends ``h + 1`` hours after
        1 January 00:00 local standard time.
    meta : dict
        ``latitude``, ``longitude`` (degrees, east > 0), ``altitude`` (m) and
        ``tz_hours`` (the file's UTC offset).

    Raises
    ------
    WeatherFileError
        If the file is neither format or does not hold 8760 hours.
    """
    return _read_weather_file(path, file_stamp(path))


@lru_cache(maxsize=8)
def _read_weather_file(
    path: str, stamp: tuple[int, int] | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    # ``stamp`` only keys the cache (a file edited in place is read again); the disk
    # cache (keyed by the file's content) spares later processes pvlib's import
    try:
        digest = _file_digest(path, stamp)
    except OSError:
        return _parse_weather_file(path)  # its reader names the problem
    entry = CacheEntry("weather", ("tmy", digest, *package_versions("pvlib")))
    parsed = entry.read("year")
    if parsed is MISSING:
        parsed = _parse_weather_file(path)
        entry.write({"year": parsed})
    values, info = parsed
    values.flags.writeable = False  # cached and shared by every later run in the process
    return values, info


@lru_cache(maxsize=8)
def _file_digest(path: str, stamp: tuple[int, int] | None = None) -> str:
    # ``stamp`` only keys the cache: a file edited in place is read again
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weather_digest(source: str | Path) -> str:
    """sha256 of the weather file's content (what data derived from it depends on).

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    path = str(resolve_weather_path(source))
    return _file_digest(path, file_stamp(path))


def _parse_weather_file(path: str) -> tuple[np.ndarray, dict[str, float]]:
    file = Path(path)
    kind = "TMY2" if _is_tmy2(file) else "TMY3"
    try:
        frame, meta = _read_tmy2(file) if kind == "TMY2" else _read_tmy3(file)
    except Exception as exc:  # pvlib's readers raise bare errors on malformed files
        raise WeatherFileError(
            f"weather file {path!r} could not be read as {kind}: {exc}; expected a TMY3 "
            "CSV or a TMY2 (.tm2) file"
        ) from exc
    if len(frame) != HOURS_PER_TYPICAL_YEAR:
        raise WeatherFileError(
            f"weather file {path!r} ({kind}) holds {len(frame)} hours; a typical year has "
            f"{HOURS_PER_TYPICAL_YEAR}"
        )
    values = frame.to_numpy(dtype=float)
    missing = ~np.isfinite(values)
    if missing.any():
        hours, columns = np.nonzero(missing)
        names = sorted({WEATHER_COLUMNS[c] for c in columns})
        first = frame.index[hours[0]]
        raise WeatherFileError(
            f"weather file {path!r} ({kind}) has {int(missing.sum())} missing or non-numeric "
            f"value(s) of {', '.join(names)}, the first at {first}; a typical year must be "
            "complete (a gap is never taken as zero irradiance)"
        )
    info = {k: float(meta[k]) for k in ("latitude", "longitude", "altitude")}
    info["tz_hours"] = float(meta["TZ"])
    return values, info


@lru_cache(maxsize=8)
def _read_year(path: str, year: int, stamp: tuple[int, int] | None = None) -> pd.DataFrame:
    """The typical year laid onto calendar ``year``, stamped at the centre of each hour.

    ``stamp`` (:func:`models.filecache.file_stamp`) only keys the cache: a weather file
    edited in place is read again.
    """
    values, meta = _read_weather_file(path, stamp)
    if calendar.isleap(year):
        feb_28 = values[HOURS_BEFORE_FEB_29 - 24 : HOURS_BEFORE_FEB_29]
        values = np.concatenate(
            [values[:HOURS_BEFORE_FEB_29], feb_28, values[HOURS_BEFORE_FEB_29:]]
        )
    start = pd.Timestamp(year=year, month=1, day=1) - pd.Timedelta(hours=meta["tz_hours"])
    # hour h ends at start + h hours: centre it on its averaging hour, in UTC
    stamps = start + pd.to_timedelta(np.arange(len(values)) + 0.5, unit="h")
    return pd.DataFrame(values, columns=list(WEATHER_COLUMNS), index=stamps.tz_localize("UTC"))


def tmy_metadata(path: str | Path) -> dict[str, float]:
    """Latitude, longitude, altitude and UTC offset (``tz_hours``) of a weather file."""
    return dict(read_weather_file(str(resolve_weather_path(path)))[1])


def weather_at(times: pd.DatetimeIndex, source: str | Path) -> pd.DataFrame:
    """Weather at arbitrary tz-aware times, from a TMY file.

    The typical year is repeated for every calendar year the times span (29 February
    repeats 28 February), and hourly values are linearly interpolated in time
    (centred on their averaging hour).

    Parameters
    ----------
    times : pandas.DatetimeIndex
        Tz-aware times.
    source : str or Path
        A pvlib-bundled TMY file name or a path.

    Returns
    -------
    pandas.DataFrame
        Columns ``ghi``, ``dni``, ``dhi`` (W/m2), ``temp_air`` (degC), ``wind_speed``
        (m/s), indexed by ``times``.
    """
    if times.tz is None:
        raise ValueError("weather_at: times must be tz-aware")
    path = str(resolve_weather_path(source))
    utc = times.tz_convert("UTC")
    years = range(utc.min().year - 1, utc.max().year + 2)
    stamp = file_stamp(path)
    hourly = pd.concat([_read_year(path, y, stamp) for y in years])
    hourly = hourly[~hourly.index.duplicated()].sort_index()
    merged = hourly.reindex(hourly.index.union(utc)).interpolate(method="time")
    out = merged.loc[utc].clip(lower=0.0)
    out["temp_air"] = merged.loc[utc, "temp_air"]
    out.index = times
    return out
