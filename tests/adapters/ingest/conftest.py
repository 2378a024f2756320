"""The ingest component registered (also before its entry point is installed); helpers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.influx.server import InfluxServer
from adapters.ingest.component import IngestComponent
from adapters.ingest.limits import element_table, limit_of
from adapters.ingest.mapping import Mapper, Rule
from adapters.ingest.pipeline import Ingestor
from adapters.ingest.window import PlantClock, Windows
from adapters.mqtt.broker import Mosquitto
from twin.component import _targets, register_component, unregister_component

#: Plant time of the scenario start used by the pipeline tests (epoch s).
START = 1_466_481_600.0
#: The field emulator's topic tree, as the shipped mapping describes it.
FIELD_RULES = [
    {
        "pattern": "field/{asset}/{quantity}-{n}",
        "quantities": {"v": {"quantity": "v_pu", "unit": "V", "voltage": "phase"}},
    },
    {
        "pattern": "field/{asset}/{quantity}",
        "quantities": {
            "v": {"quantity": "v_pu", "unit": "V", "voltage": "phase"},
            "p": {"quantity": "p_kw", "unit": "W"},
            "q": {"quantity": "q_kvar", "unit": "var"},
            "soc": {"quantity": "soc", "unit": "%"},
            "p_from": {"quantity": "p_from_kw", "unit": "W"},
            "i_from": {"quantity": "i_from_ka", "unit": "A"},
            "temp": {"quantity": "t_c", "unit": "Cel"},
        },
    },
]


@pytest.fixture(autouse=True)
def ingest_registered():
    """The component, whether or not the installed package declares its entry point."""
    installed = "ingest" in _targets()
    if not installed:
        register_component(IngestComponent)
    yield
    if not installed:
        unregister_component("ingest")


@pytest.fixture(scope="session")
def elements() -> dict[str, Any]:
    """The day scenario's elements (rural LV feeder, pv_roof, pv_barn, bess, loads)."""
    import copy

    import yaml

    from models.gridnet import load_tables
    from tests.conftest import ROOT
    from twin.scenario import validate_scenario

    register_component(IngestComponent)
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    scenario = validate_scenario(copy.deepcopy(raw))
    return element_table(scenario, load_tables(scenario.grid.source), 1.5)


def make_mapper(elements: dict[str, Any], rules: list[dict] | None = None, table=None) -> Mapper:
    compiled = [
        Rule.from_spec(SimpleNamespace(**{**RULE_DEFAULTS, **r}), f"mapping[{i}]")
        for i, r in enumerate(FIELD_RULES if rules is None else rules)
    ]
    return Mapper(compiled, table or {}, elements, limit_of)


RULE_DEFAULTS = {
    "asset": None,
    "quantity": None,
    "unit": None,
    "voltage": None,
    "scale": None,
    "quantities": {},
}


def make_ingestor(
    elements: dict[str, Any],
    *,
    store=None,
    tolerance_s: float = 2.0,
    max_delay_s: float = 60.0,
    late_window_s: float = 0.0,
    rules: list[dict] | None = None,
    max_bytes: int = 65536,
    max_records: int = 1000,
) -> Ingestor:
    """An ingestor on 1 s windows from START whose plant clock is wall time - offset."""
    windows = Windows(START, 1, tolerance_s, max_delay_s, late_window_s)
    clock = PlantClock(START, None, 1.0)
    clock.follow_s = 0.0  # plant time = START + follow_s (set by the tests)
    return Ingestor(
        make_mapper(elements, rules),
        windows,
        clock,
        store,
        max_bytes=max_bytes,
        max_records=max_records,
    )


@pytest.fixture
def own_broker(tmp_path: Path) -> Mosquitto:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def own_influx(tmp_path: Path) -> InfluxServer:
    server = InfluxServer(tmp_path / "influxdb").start()
    yield server
    server.stop()
