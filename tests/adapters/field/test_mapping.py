"""The shipped mapping covers every sensor the emulator publishes on the shipped plant."""

import re
from pathlib import Path

import pytest
import yaml

from adapters.field.plan import PlanOptions, Plant, sensor_plan
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[3]
FIELD_MAPPING = ROOT / "scenarios" / "mappings" / "field.yaml"


def compile_pattern(pattern: str) -> re.Pattern:
    """live15's grammar: ``{name}`` matches within one level; literal text around it."""
    parts = re.split(r"(\{[a-z_]+\})", pattern)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


def resolve(mapping: list[dict], key: str) -> tuple[str, dict] | None:
    for entry in mapping:
        found = compile_pattern(entry["pattern"]).match(key)
        if found and found["quantity"] in entry["quantities"]:
            return found["asset"], entry["quantities"][found["quantity"]]
    return None


@pytest.fixture(scope="module")
def plant_sensors():
    scenario = load_scenario(ROOT / "scenarios" / "field_plant.yaml")
    return sensor_plan(Plant.from_scenario(scenario), PlanOptions(redundancy=2))


def test_every_field_plant_sensor_maps_to_its_quantity_unit_and_sign(plant_sensors):
    mapping = yaml.safe_load(FIELD_MAPPING.read_text())["mapping"]
    for row in plant_sensors.itertuples():
        found = resolve(mapping, row.sensor)
        assert found is not None, row.sensor
        asset, target = found
        assert asset == row.element and target["quantity"] == row.quantity, row.sensor
        assert target["unit"] == row.unit and target.get("scale", 1) == row.scale, row.sensor
        assert target.get("voltage", "line") == (row.voltage or "line")


def test_the_plant_is_benchmark_sized(plant_sensors):
    counts = plant_sensors[plant_sensors["copy"] == 1].groupby("kind").size()
    assert counts.to_dict() == {"bus": 144, "line": 882, "trafo": 12, "pv": 266,
                                "battery": 8, "load": 278, "grid": 3}  # fmt: skip
    assert len(plant_sensors) == 2 * 1593
