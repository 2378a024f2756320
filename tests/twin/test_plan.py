"""The world as data: what a scenario plans, checked without starting mosaik."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from models.sensors import MODIFIERS
from tests.conftest import plan_replacing
from twin.plan import (
    Entity,
    PlanError,
    Replacement,
    SimulatorPlan,
    WorldPlan,
    _resolved,
    instantiate,
)
from twin.registry import get_model
from twin.scenario import validate_scenario
from twin.world import plan_world

ROOT = Path(__file__).resolve().parents[2]
FAULTS = [
    {"kind": "soc_misreport", "target": "bess", "start": "1h", "severity": 0.2},
    {"kind": "sensor_noise", "target": "pv_roof.p_kw", "start": "2h", "severity": 3.0},
    {"kind": "line_outage", "target": "line_3", "start": "3h", "duration": "1h"},
    {"kind": "voltage_sag", "target": "grid", "start": "1h", "severity": 0.1},
]


def scenario(name: str, **changes):
    raw = yaml.safe_load((ROOT / "scenarios" / name).read_text())
    raw.update({"start": raw["start"], "duration": "6h", **copy.deepcopy(changes)})
    return validate_scenario(raw)


def edges(plan: WorldPlan) -> set[tuple[str, str]]:
    """Element-to-element edges (fleet connections expanded)."""
    return {(src.full_id, dst.full_id) for src, dst, _ in plan.element_edges()}


@pytest.mark.parametrize(
    "name, changes",
    [
        ("microgrid_day.yaml", {}),
        ("microgrid_day.yaml", {"controller": "mpc"}),
        ("microgrid_day.yaml", {"faults": FAULTS}),
        ("ev_depot.yaml", {}),
        ("ev_depot.yaml", {"controller": "none"}),
    ],
)
def test_planned_entities_are_the_models_elements(name, changes, tmp_path):
    """Every model simulator's planned entities are what its model builds (no mosaik)."""
    sc = scenario(name, **changes)
    plan = plan_world(sc, tmp_path, "test")
    for sim in plan.simulators.values():
        if not sim.model_name:
            continue
        model = get_model(sim.model_name)(sim.params["units"], plan.clock, sim.params["context"])
        built = {(group, n) for group, names in model.elements.items() for n in names}
        assert {(e.type, e.eid) for e in sim.entities} == built, sim.sid
    # every connection joins two planned entities
    planned = {e.full_id for sim in plan.simulators.values() for e in sim.entities}
    assert {end for edge in edges(plan) for end in edge} <= planned


def test_day_plan_as_a_graph(tmp_path):
    sc = scenario("microgrid_day.yaml")
    plan = plan_world(sc, tmp_path, "test")
    graph = edges(plan)
    assert ("pv.pv_roof", "grid.bus_7") in graph
    assert ("battery.bess", "grid.bus_7") in graph
    assert ("rule.bess", "battery.bess") in graph
    (feedback,) = [
        c for c in plan.connections if c.src.full_id == "battery.bess" and c.dst.sid == "rule"
    ]
    # the controller acts on what the battery's sensor reports
    assert feedback.time_shifted and feedback.attrs == (("soc.value", "soc"), ("soh.value", "soh"))
    battery = sc.assets.battery[0]
    assert feedback.initial_data == {"soc.value": battery.soc_init, "soh.value": battery.soh_init}
    recorded = {"pv", "load", "battery", "tariff", "grid", "rule"}
    measured = {f"{sid}.measured" for sid in ("pv", "load", "battery", "grid")}
    assert {p.stem for p in plan.parts} == recorded | measured
    assert set(plan.fleets) == {"pv", "battery", "load", "tariff", "grid", "controller"}


def test_faults_act_on_the_sensors_the_controller_reads(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml", faults=FAULTS), tmp_path, "test")
    battery, pv = plan.children("battery")["bess"], plan.children("pv")["pv_roof"]
    assert plan.observed[("bess", "soc")] == (battery, "soc.value")
    assert plan.observed[("pv_roof", "p_kw")] == (pv, "p_kw.value")
    attrs = {(c.src.full_id, c.dst.full_id): c.attrs for c in plan.connections}
    assert attrs[("battery.bess", "rule.bess")] == (("soc.value", "soc"), ("soh.value", "soh"))
    assert attrs[("pv.pv_roof", "rule.site")] == (("p_kw.value", "p_kw"),)
    # sensor faults feed the modifier inputs of the measured outputs
    faulted = {
        (c.dst.full_id, c.attrs)
        for c in plan.connections
        if c.src.sid == "faults" and "." in c.src.eid
    }
    assert faulted
    assert all(dst_attr.split(".")[1] in MODIFIERS for _, ((_, dst_attr),) in faulted)
    assert ("faults.line_3:in_service", "grid.line_3") in edges(plan)
    assert "faults" not in plan.fleets  # sinks mirror the plant, not the fault schedule
    # without the sensors section a sensor fault still gets (a perfect) sensor
    off = plan_world(
        scenario("microgrid_day.yaml", faults=FAULTS, sensors={"enabled": False}),
        tmp_path / "off",
        "test",
    )
    assert off.observed[("bess", "soc")] == (off.children("battery")["bess"], "soc.value")
    assert off.simulators["battery"].params["sensors"]["soc"] == {}
    assert ("bess", "p_kw") not in off.observed


def test_plan_renders_as_table_mermaid_and_dot(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml"), tmp_path, "test")
    table = plan.table()
    assert "grid       grid     1 grid, 15 bus, 13 line, 1 trafo  yes" in table
    # (column widths follow the longest cell: match the cells, not the padding)
    assert re.search(r"\nbattery\.bess +rule\.bess +soc\.value->soc, soh\.value->soh +yes\n", table)
    mermaid = plan.mermaid()
    assert mermaid.startswith("flowchart LR")
    assert 'n_battery -.->|"soc, soh (1)"| n_rule' in mermaid
    dot = plan.dot()
    assert '"battery" -> "rule" [label="soc, soh (1)" style="dashed"];' in dot
    assert dot.rstrip().endswith("}")


def test_a_plan_that_does_not_match_its_simulator_is_refused(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml", controller="none"), tmp_path, "test")
    plan.simulators["tariff"].entities.append(Entity("tariff", "ghost", "tariff"))
    with pytest.raises(PlanError, match=r"'tariff' created other entities than planned"):
        instantiate(plan)


def test_a_connection_needs_an_attribute(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml", controller="none"), tmp_path, "test")
    a, b = plan.children("pv")["pv_roof"], plan.children("grid")["bus_7"]
    with pytest.raises(PlanError, match="names no attribute"):
        plan.connect(a, b)


def test_a_plan_holds_no_secret_and_needs_none(tmp_path, monkeypatch):
    """Logins are read when the world starts: a plan prints without them and never shows them."""
    monkeypatch.delenv("TWIN_TEST_UNSET", raising=False)
    mqtt = {
        "broker": "mqtt://127.0.0.1:1",
        "username": "twin",
        "password_env": "TWIN_TEST_UNSET",
        "devices": [{"asset": "bess", "measure": ["soc"]}],
    }
    influx = {"url": "http://127.0.0.1:1", "username": "twin", "password": "hunter2-influx"}
    sc = scenario("microgrid_day.yaml", mqtt=mqtt, outputs={"influx": influx})
    plan = plan_world(sc, tmp_path, "test")  # the unset variable does not stop a plan
    assert "hunter2" not in repr(plan) and "hunter2" not in plan.table()
    with pytest.raises(Exception, match="TWIN_TEST_UNSET"):
        _resolved(plan.simulators["mqtt"].init)  # read only when the world starts
    monkeypatch.setenv("TWIN_TEST_UNSET", "hunter2-mqtt")
    assert _resolved(plan.simulators["mqtt"].init)["config"]["auth"]["password"] == "hunter2-mqtt"
    assert _resolved(plan.simulators["influx"].init)["config"]["influx"]["password"] == (
        "hunter2-influx"
    )


def test_a_replacement_serves_only_what_it_provides(tmp_path):
    """Sinks mirror a replaced asset with what its replacement declares, nothing more."""
    sc = scenario(
        "microgrid_day.yaml",
        mqtt={"broker": "mqtt://127.0.0.1:1", "publish": ["pv/pv_roof/*"]},
        outputs={"influx": {"url": "http://127.0.0.1:1"}},
    )
    field = Entity("field", "pv_roof", "FieldPV")
    plan = plan_replacing(sc, tmp_path, ("pv", "pv_roof"), Replacement(field, provides=("p_kw",)))
    to_publisher = [c for c in plan.connections if c.src == field and c.dst.sid == "mqtt"]
    assert [c.attrs for c in to_publisher] == [(("p_kw", "p_kw"),)]  # no quality, no p_avail_kw
    assert not [c for c in plan.connections if c.src == field and c.dst.sid == "influx"]
    assert ("field.pv_roof", "grid.bus_7") in edges(plan)  # it injects for the asset


def test_a_validated_scenario_pickles():
    import pickle

    sc = scenario("microgrid_day.yaml")
    again = pickle.loads(pickle.dumps(sc))
    assert again == sc and type(again.outputs) is type(sc.outputs)


def test_a_connection_to_a_port_that_does_not_exist_is_refused_in_the_plan(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml", controller="none"), tmp_path, "test")
    plan.connect(plan.children("pv")["pv_roof"], plan.children("grid")["bus_7"], "soc")
    with pytest.raises(
        PlanError, match=r"pv\.pv_roof \(pv pv\) has no output 'soc'; outputs: p_kw"
    ):
        plan.check_ports()


def test_a_connection_to_an_entity_not_in_the_plan_is_refused(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml", controller="none"), tmp_path, "test")
    plan.connect(Entity("tariff", "tarif", "tariff"), plan.children("grid")["bus_7"], "p_kw")
    with pytest.raises(PlanError, match=r"no planned entity tariff\.tarif"):
        plan.check_ports()


def test_an_adapter_with_a_model_parameter_is_not_taken_for_a_model(tmp_path):
    plan = plan_world(scenario("microgrid_day.yaml", controller="none"), tmp_path, "test")
    plan.add_simulator(
        SimulatorPlan(
            sid="forecaster",
            sim_config={"python": "mypkg:Forecaster"},
            init={"model": "forecaster.onnx"},
            model="Forecaster",
            params={},
            entities=[Entity("forecaster", "f", "Forecaster")],
        )
    )
    plan.connect(plan.children("pv")["pv_roof"], Entity("forecaster", "f", "Forecaster"), "p_kw")
    plan.check_ports()  # an adapter takes what it is configured for
    assert plan.simulators["forecaster"].model_name == ""


def test_sites_join_one_plan_under_their_own_simulator_ids(tmp_path):
    sites = {
        "north": plan_world(scenario("microgrid_day.yaml"), tmp_path / "north", "n"),
        "south": plan_world(scenario("ev_depot.yaml"), tmp_path / "south", "s"),
    }
    joined = WorldPlan(sites["north"].clock, tmp_path, {}, {})
    for name, site in sites.items():
        joined.join_site(name, site)
    joined.check_ports()
    for name, site in sites.items():
        for sid, sim in site.simulators.items():
            mine = joined.simulators[f"{name}-{sid}"]
            assert [e.full_id for e in mine.entities] == [
                f"{name}-{e.full_id}" for e in sim.entities
            ]
            assert mine.params["stream"] == sid  # sensor noise as alone
            assert mine.parts == sim.parts  # recorded into the site's own directory
            for source in mine.params.get("fleet_inputs", {}):
                assert source.startswith(f"{name}-") and source.endswith(".fleet")
        own = {(f"{name}-{s}", f"{name}-{d}") for s, d in edges(site)}
        assert own <= edges(joined)
    assert len(joined.connections) == sum(len(s.connections) for s in sites.values())
    with pytest.raises(PlanError, match="two simulators are named 'north-grid'"):
        joined.join_site("north", sites["north"])


def test_a_site_name_with_a_dot_or_an_adapter_is_not_joined(tmp_path):
    site = plan_world(scenario("microgrid_day.yaml"), tmp_path / "a", "a")
    joined = WorldPlan(site.clock, tmp_path, {}, {})
    with pytest.raises(PlanError, match="without dots"):
        joined.join_site("a.b", site)
    site.add_adapter("bridge", "tests.elsewhere:Bridge", "Bridge", "b0", init={}, kind="mqtt")
    with pytest.raises(PlanError, match="bridge cannot share a world.*mode: split"):
        joined.join_site("a", site)
