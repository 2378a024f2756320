"""A component from outside the core: installed as a plugin, validated, planned, run."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from twin.component import (
    Component,
    Section,
    UnknownComponentError,
    component_names,
    register_component,
    unregister_component,
)
from twin.errors import RunError, ScenarioError
from twin.run import RunCheckError, run_scenario
from twin.scenario import ComponentSectionError, scenario_model, validate_scenario
from twin.world import plan_world

PLUGIN = Path(__file__).parent / "plugin" / "toy_meter.py"


@contextlib.contextmanager
def registered(cls):
    """``cls`` registered as a component for the block, as a notebook would."""
    register_component(cls)
    try:
        yield cls
    finally:
        unregister_component(cls.name)


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
        "[twin.models]\ntoy_meter = toy_meter:Meter\ntoy_gen = toy_meter:Generator\n\n"
        "[twin.components]\nmeter = toy_meter:MeterComponent\ngen = toy_meter:GeneratorComponent\n"
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
    truth = frame[frame["source"] == "twin"]
    pv = truth[(truth["asset"] == "pv_roof") & (truth["quantity"] == "p_kw")]
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

    with registered(Clash):
        with pytest.raises(ComponentSectionError, match="'mqtt', already owned by 'mqtt'"):
            scenario_model()
    assert "mqtt" in scenario_model().model_fields


def test_a_plugin_that_injects_power_closes_the_energy_balance(plugin, small_raw, tmp_path):
    """The balance counts what the plan connects into the buses, not a fixed list of kinds."""
    small_raw["gen"] = {"bus": 7, "p_kw": 5.0}
    result = run_scenario(
        validate_scenario(small_raw), tmp_path / "run", compare_uncontrolled=False
    )
    assert result.metadata["status"] == "finished"
    assert "gen" in result.metadata["grid_injections"]
    assert result.kpis["balance_residual_kwh"] < 1e-6


def test_a_component_not_in_the_scenario_is_not_asked(small_raw, tmp_path):
    class Absent(Component):
        name = "absent"
        sections = (Section("absent", dict | None, None),)

        def add_entities(self, scenario, plan):
            raise AssertionError("asked although the scenario has no 'absent' section")

    with registered(Absent):
        plan = plan_world(validate_scenario(small_raw), tmp_path, "test")
        assert "absent" not in plan.simulators
        small_raw["absent"] = {"on": 1}
        with pytest.raises(AssertionError, match="asked although"):
            plan_world(validate_scenario(small_raw), tmp_path, "test")


def test_a_component_that_fails_after_set_up_fails_the_run(small_raw, tmp_path):
    class Broken(Component):
        name = "broken"

        def wanted(self, scenario):
            return True

        def after_setup(self, scenario, out_dir):
            raise OSError("disk full")

    with registered(Broken):
        with pytest.raises(RunError, match="could not be set up: disk full"):
            run_scenario(validate_scenario(small_raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "OSError: disk full" in meta["error"]


def test_two_checks_of_one_name_fail_before_the_steps(small_raw, tmp_path):
    class Twice(Component):
        name = "twice"

        def wanted(self, scenario):
            return True

        def checks(self):
            return {"energy_balance": lambda scenario, metadata, kpis: []}

    with registered(Twice):
        with pytest.raises(RunError, match="run check 'energy_balance' of component 'twice'"):
            run_scenario(validate_scenario(small_raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "loop_s" not in meta


def test_a_component_kpi_may_not_overwrite_another(small_raw, tmp_path):
    class Thief(Component):
        name = "thief"

        def wanted(self, scenario):
            return True

        def kpis(self, scenario, results, metadata):
            return {"cost_eur": 0.0}

    with registered(Thief):
        with pytest.raises(RunError, match="KPIs of component 'thief' would overwrite cost_eur"):
            run_scenario(validate_scenario(small_raw), tmp_path / "run")


def test_a_broken_plugin_is_named(tmp_path, monkeypatch, small_raw):
    site = tmp_path / "site"
    info = site / "broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[twin.components]\nbroken = broken_pkg:Thing\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(UnknownComponentError, match=r"component 'broken' .* cannot be imported"):
        validate_scenario(small_raw)


def test_a_service_that_cannot_stop_fails_the_run_but_keeps_its_results(small_raw, tmp_path):
    class Stubborn(Component):
        name = "stubborn"

        @contextlib.contextmanager
        def services(self, scenario, out_dir):
            yield
            raise RuntimeError("server did not stop cleanly")

    with registered(Stubborn):
        with pytest.raises(RunCheckError, match="services: stopping the services failed"):
            run_scenario(validate_scenario(small_raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "server did not stop cleanly" in meta["error"]
    assert (tmp_path / "run" / "results.parquet").is_file()
    assert (tmp_path / "run" / "kpis.json").is_file()


def test_a_component_may_not_write_the_cores_metadata(small_raw, tmp_path):
    class Squatter(Component):
        name = "squatter"

        def run_metadata(self, scenario, parts_dir):
            return {"grid_injections": ["bogus"]}

    with registered(Squatter):
        with pytest.raises(RunError, match="uses keys the core writes: grid_injections"):
            run_scenario(validate_scenario(small_raw), tmp_path / "run")


def test_the_balance_counts_only_what_is_connected(small_raw, tmp_path):
    """A second PV model that feeds nothing (a shadow for comparison) is not an injection."""

    class Shadow(Component):
        name = "shadow"

        def add_entities(self, scenario, plan):
            units = [{**u, "name": f"shadow_{u['name']}"} for u in scenario.units("pv")]
            plan.add_model("pv", units, sid="shadow", fleet=False)

    with registered(Shadow):
        result = run_scenario(validate_scenario(small_raw), tmp_path / "run")
    assert result.metadata["status"] == "finished"
    assert result.metadata["grid_injections"]["pv"] == 2
    assert result.kpis["balance_residual_kwh"] < 1e-6


def test_installing_a_plugin_changes_no_scenario_hash(small_raw, tmp_path, monkeypatch):
    from twin.identity import scenario_hash

    before = scenario_hash(validate_scenario(small_raw))
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PLUGIN, site / "toy_meter.py")
    info = site / "toy_meter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-meter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[twin.components]\nmeter = toy_meter:MeterComponent\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        assert scenario_hash(validate_scenario(small_raw)) == before
        small_raw["meter"] = {"asset": "pv_roof"}
        assert scenario_hash(validate_scenario(small_raw)) != before
    finally:
        sys.modules.pop("toy_meter", None)


def test_a_named_error_prints_without_quotes():
    assert str(UnknownComponentError("component 'x' is broken")) == "component 'x' is broken"
