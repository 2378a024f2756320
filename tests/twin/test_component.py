"""A component from outside the core: installed as a plugin, validated, planned, run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from twin.component import (
    Component,
    Section,
    component_names,
    register_component,
    unregister_component,
)
from twin.errors import ScenarioError
from twin.run import RunCheckError, run_scenario
from twin.scenario import ComponentSectionError, scenario_model, validate_scenario
from twin.world import plan_world

PLUGIN = Path(__file__).parent / "plugin" / "toy_meter.py"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The toy package on sys.path with its dist-info, as pip would install it."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PLUGIN, site / "toy_meter.py")
    info = site / "toy_meter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-meter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[twin.models]\ntoy_meter = toy_meter:Meter\n\n"
        "[twin.components]\nmeter = toy_meter:MeterComponent\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("toy_meter", None)


def test_without_the_plugin_the_section_is_unknown(small_raw):
    assert "meter" not in component_names()
    small_raw["meter"] = {"asset": "pv_roof"}
    with pytest.raises(ScenarioError, match=r"meter: unknown key 'meter'"):
        validate_scenario(small_raw)


def test_a_plugin_component_joins_the_schema_and_its_checks(plugin, small_raw):
    assert "meter" in component_names()
    assert "meter" in scenario_model().model_fields
    small_raw["meter"] = {"asset": "pv_nowhere"}
    with pytest.raises(ScenarioError, match=r"meter\.asset: no PV plant 'pv_nowhere'"):
        validate_scenario(small_raw)
    small_raw["meter"] = {"asset": "pv_roof", "gian": 2}
    with pytest.raises(ScenarioError, match=r"meter\.gian: unknown key"):
        validate_scenario(small_raw)


def test_a_plugin_component_is_planned_without_mosaik(plugin, small_raw, tmp_path):
    small_raw["meter"] = {"asset": "pv_roof", "gain": 2.0}
    plan = plan_world(validate_scenario(small_raw), tmp_path, "test")
    meter = plan.simulators["meter"]
    assert meter.model_name == "toy_meter"
    assert [e.full_id for e in meter.entities] == ["meter.meter_pv_roof"]
    edges = [(c.src.full_id, c.dst.full_id, c.attrs) for c in plan.connections]
    assert ("pv.pv_roof", "meter.meter_pv_roof", (("p_kw", "p_in_kw"),)) in edges
    assert "meter" in plan.table()


def test_a_plugin_component_runs_in_a_world(plugin, small_raw, tmp_path):
    small_raw["meter"] = {"asset": "pv_roof", "gain": 2.0}
    scenario = validate_scenario(small_raw)
    result = run_scenario(scenario, tmp_path / "run", compare_uncontrolled=False)
    frame = pd.read_parquet(result.out_dir / "results.parquet")
    meter = frame[(frame["kind"] == "meter")].set_index("time")["value"]
    pv = frame[(frame["asset"] == "pv_roof") & (frame["quantity"] == "p_kw")]
    pv = pv.set_index("time")["value"]
    assert len(meter) == scenario.clock().n_steps and meter.abs().max() > 0
    assert (meter - 2.0 * pv).abs().max() < 1e-9
    assert result.kpis["meter_energy_kwh"] == pytest.approx(2.0 * pv.sum() * 0.25)
    metadata = json.loads((result.out_dir / "run.json").read_text())
    assert metadata["meter"] == {"asset": "pv_roof"}
    assert "meter_gain" in metadata["checks"]["passed"]


def test_a_plugin_check_fails_the_run(plugin, small_raw, tmp_path):
    small_raw["meter"] = {"asset": "pv_roof", "gain": 20.0}
    with pytest.raises(RunCheckError, match="meter_gain: gain 20.0 above 10.0"):
        run_scenario(validate_scenario(small_raw), tmp_path / "run", compare_uncontrolled=False)
    metadata = json.loads((tmp_path / "run" / "run.json").read_text())
    assert metadata["status"] == "failed"


def test_two_components_cannot_own_one_section():
    class Clash(Component):
        name = "clash"
        sections = (Section("mqtt", dict, None),)

    register_component(Clash)
    try:
        with pytest.raises(ComponentSectionError, match="'mqtt', already owned by 'mqtt'"):
            scenario_model()
    finally:
        unregister_component("clash")
    assert "mqtt" in scenario_model().model_fields
