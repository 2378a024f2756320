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


def assert_same_kpis(left: dict[str, Any], right: dict[str, Any], tol: float = 1e-9) -> None:
    """Two runs' KPIs: the same keys, floats equal to ``tol`` (relative and absolute)."""
    assert left.keys() == right.keys()
    for key, value in left.items():
        if isinstance(value, float):
            assert value == pytest.approx(right[key], rel=tol, abs=tol), key
        else:
            assert value == right[key], key


def plan_replacing(scenario: Any, run_dir: Path, asset: tuple[str, str], replacement: Any):
    """The scenario's world plan with one asset (``(sid, eid)``) replaced by ``replacement``.

    Every wanted component adds its entities, the replacement is made, then every
    component adds its connections: what :func:`twin.world.plan_world` does around a
    device bridge.
    """
    from twin.component import components
    from twin.plan import WorldPlan

    plan = WorldPlan(scenario.clock(), run_dir, {}, {"run_id": "x"})
    active = [c for c in components() if c.wanted(scenario)]
    plan.add_model("grid", [{"name": "poc", "grid": scenario.grid.source, "solver": "fast"}])
    for component in active:
        component.add_entities(scenario, plan)
    plan.replace(*asset, replacement)
    for component in active:
        component.add_connections(scenario, plan)
    return plan
