"""Checks of a scenario's weather file against its site (part of scenario resolution).

The run reads the weather file with :func:`models.weather.read_weather_file`; validation
reads it the same way, so a file that validates is a file the run can use. A TMY year
describes one place: a site far from it gets another climate's sun and temperature,
so that is a problem unless the scenario raises ``site.max_weather_distance_km``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from twin.errors import Problem

__all__ = ["MAX_TZ_MISMATCH_H", "great_circle_km", "weather_problems"]

EARTH_RADIUS_KM = 6371.0
#: A site whose time zone's standard offset differs from its solar time (longitude / 15)
#: by more than this many hours has a time zone that does not belong to its position.
#: Real zones differ by up to ~3 h (western China); local-time profiles and tariffs would
#: be shifted by the difference.
MAX_TZ_MISMATCH_H = 3.5


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in km between two points given in degrees."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return float(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a)))


def _standard_offset_h(tz: str, year: int) -> float:
    """The zone's UTC offset in hours outside daylight saving time."""
    moment = datetime(year, 1, 1, 12, tzinfo=ZoneInfo(tz))
    standard = moment.utcoffset() - (moment.dst() or timedelta(0))
    return standard.total_seconds() / 3600.0


def weather_problems(scenario) -> list[Problem]:
    """Problems of the scenario's weather file and site: unreadable, far away, wrong zone.

    Parameters
    ----------
    scenario : twin.scenario.Scenario
        The validated scenario.
    """
    from models.weather import WeatherFileError, read_weather_file, resolve_weather_path

    problems: list[Problem] = []
    site = scenario.site
    offset_h = _standard_offset_h(site.tz, scenario.start.year)
    # around the date line UTC+13 and longitude -172 are 1 h apart, not 25 h
    mismatch_h = (offset_h - site.lon / 15.0 + 12.0) % 24.0 - 12.0
    if abs(mismatch_h) > MAX_TZ_MISMATCH_H:
        problems.append(
            Problem(
                "site.tz",
                f"time zone {site.tz!r} (UTC{offset_h:+g} h) does not fit the site's longitude "
                f"{site.lon:g} (solar time UTC{site.lon / 15:+.1f} h): local-time profiles and "
                "tariffs would be shifted; expected the zone of the site's position",
            )
        )
    try:
        path = resolve_weather_path(scenario.weather)
        _, meta = read_weather_file(str(path))
    except (OSError, WeatherFileError) as exc:
        return [*problems, Problem("weather", str(exc))]
    distance = great_circle_km(site.lat, site.lon, meta["latitude"], meta["longitude"])
    limit = site.max_weather_distance_km
    if distance > limit:
        problems.append(
            Problem(
                "weather",
                f"weather file {scenario.weather!r} was recorded at lat {meta['latitude']:g}, "
                f"lon {meta['longitude']:g}, {distance:,.0f} km from the site (lat "
                f"{site.lat:g}, lon {site.lon:g}); expected at most {limit:g} km "
                "(site.max_weather_distance_km) or a weather file for the site",
            )
        )
    return problems
