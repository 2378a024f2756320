"""Shared fixtures: small scenarios built fresh for every test."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import settings

from models.base import Clock

# Property tests run a fixed sequence of examples in CI, so a build never turns red by
# chance; `HYPOTHESIS_PROFILE=explore pytest ...` draws new ones (do that when you touch
# what they test, and keep what they find as an explicit case).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SITE = {"lat": 36.1, "lon": -79.95, "altitude": 273.0, "tz": "America/New_York"}
LV_GRID = "1-LV-rural1--0-sw"


@pytest.fixture(scope="session", autouse=True)
def twin_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A disk cache of extracted grids for the session only: never the user's own."""
    from models.diskcache import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("twin-cache"))
    yield Path(os.environ[CACHE_ENV])
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory):
    """One Mosquitto (Debian package) for the session, with the shipped configuration."""
    from adapters.mqtt.broker import Mosquitto

    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory):
    """One InfluxDB 1.6 (Debian's ``influxd``) for the session, without authentication."""
    from adapters.influx.server import InfluxServer

    server = InfluxServer(tmp_path_factory.mktemp("influxdb")).start()
    yield server
    server.stop()


@pytest.fixture
def day_raw() -> dict[str, Any]:
    """The shipped day scenario as a raw mapping (a fresh copy per test)."""
    return copy.deepcopy(yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text()))


@pytest.fixture
def day_scenario(day_raw: dict[str, Any]):
    """Make the day scenario, validated, with top-level fields changed (``mqtt=...``)."""
    from twin.scenario import validate_scenario

    def make(**changes: Any):
        return validate_scenario({**copy.deepcopy(day_raw), **changes})

    return make


@pytest.fixture
def small_raw(day_raw: dict[str, Any]) -> dict[str, Any]:
    """Six hours around noon of the day scenario: short enough for many runs."""
    day_raw["start"] = "2016-06-21T09:00:00-04:00"
    day_raw["duration"] = "6h"
    return day_raw


@pytest.fixture
def site() -> dict[str, Any]:
    return dict(SITE)


def make_clock(start: str = "2016-06-21T00:00:00-04:00", step_s: int = 900, n: int = 96) -> Clock:
    return Clock(pd.Timestamp(start), step_s, n)
