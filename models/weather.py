"""Weather input from typical-meteorological-year files (TMY3 format).

Readers of foreign files map their column names to pvlib's vocabulary here
(``ghi``, ``dni``, ``dhi`` in W/m2, ``temp_air`` in degC, ``wind_speed`` in m/s) and
nowhere deeper.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
import pvlib

from models.filecache import file_stamp

__all__ = [
    "BUNDLED_TMY_FILES",
    "WEATHER_COLUMNS",
    "resolve_weather_path",
    "tmy_metadata",
    "weather_at",
]

WEATHER_COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed")
PVLIB_DATA_DIR = Path(pvlib.__file__).parent / "data"
BUNDLED_TMY_FILES = ("723170TYA.CSV", "703165TY.csv")


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


@lru_cache(maxsize=8)
def _read_year(path: str, year: int, stamp: tuple[int, int] | None = None) -> pd.DataFrame:
    # ``stamp`` only keys the cache: a weather file edited in place is read again.
    data, _ = pvlib.iotools.read_tmy3(path, coerce_year=year, map_variables=True)
    # TMY values are averages over the hour that ends at the stamp: centre them.
    data = data[list(WEATHER_COLUMNS)].astype(float)
    data.index = data.index.tz_convert("UTC") - pd.Timedelta(minutes=30)
    return data


def tmy_metadata(path: str | Path) -> dict[str, float]:
    """Latitude, longitude and altitude recorded in a TMY file."""
    _, meta = pvlib.iotools.read_tmy3(str(resolve_weather_path(path)), map_variables=True)
    return {k: float(meta[k]) for k in ("latitude", "longitude", "altitude")}


def weather_at(times: pd.DatetimeIndex, source: str | Path) -> pd.DataFrame:
    """Weather at arbitrary tz-aware times, from a TMY file.

    The typical year is repeated for every calendar year the times span, and hourly
    values are linearly interpolated in time (centred on their averaging hour).

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
