"""Fleet exchange: one connection per fleet gives the results of one per element."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from models.base import Clock
from tests.conftest import assert_same_kpis, plan_replacing
from tests.twin.test_plan import FAULTS
from twin.plan import PlanError, Replacement
from twin.run import run_scenario
from twin.world import EXCHANGE_ENV, grid_injections, plan_world
from twin.wrapper import ModelSimulator

KEYS = ["time", "site", "source", "asset", "kind", "quantity"]


def _run(scenario, out, monkeypatch, exchange: str):
    monkeypatch.setenv(EXCHANGE_ENV, exchange)
    result = run_scenario(scenario, out, compare_uncontrolled=False)
    return pd.read_parquet(out / "results.parquet"), result.kpis


def _assert_same(fleet, element):
    (a, kpis_a), (b, kpis_b) = fleet, element
    assert len(a) == len(b)
    both = a.merge(b, on=KEYS, how="outer", suffixes=("_fleet", "_element"), indicator=True)
    assert (both["_merge"] == "both").all()
    np.testing.assert_allclose(both["value_fleet"], both["value_element"], rtol=0, atol=1e-9)
    assert_same_kpis(kpis_a, kpis_b)


def _both(scenario, tmp_path, monkeypatch):
    fleet = _run(scenario, tmp_path / "fleet", monkeypatch, "fleet")
    element = _run(scenario, tmp_path / "element", monkeypatch, "element")
    return fleet, element


def test_the_day_is_the_same_with_fleet_connections(day_scenario, tmp_path, monkeypatch):
    _assert_same(*_both(day_scenario(), tmp_path, monkeypatch))


def test_a_fault_run_is_the_same_with_fleet_connections(day_scenario, tmp_path, monkeypatch):
    _assert_same(*_both(day_scenario(faults=FAULTS), tmp_path, monkeypatch))


def test_the_day_plans_one_injection_connection_per_fleet(day_scenario, tmp_path, monkeypatch):
    sc = day_scenario()
    fleet = plan_world(sc, tmp_path / "f", "test")
    monkeypatch.setenv(EXCHANGE_ENV, "element")
    element = plan_world(sc, tmp_path / "e", "test")
    to_grid = [c for c in fleet.connections if c.dst.sid == "grid" and c.src.sid != "faults"]
    assert sorted(c.src.full_id for c in to_grid) == ["battery.fleet", "load.fleet", "pv.fleet"]
    assert all(c.fleet and c.dst.full_id == "grid.fleet" for c in to_grid)
    # the same element edges, the same per-pair counts, the same balance
    assert sorted(map(_edge, fleet.element_edges())) == sorted(map(_edge, element.element_edges()))
    assert {k: e["count"] for k, e in fleet.simulator_edges().items()} == {
        k: e["count"] for k, e in element.simulator_edges().items()
    }
    assert 'n_load -->|"p_kw, q_kvar (13)"| n_grid' in fleet.mermaid()
    assert grid_injections(fleet) == grid_injections(element)
    assert re.search(r"\npv\.pv_roof +grid\.bus_7 ", fleet.table())  # a row per element
    assert "pv.fleet -> grid.fleet" in fleet.table()
    assert len(fleet.connections) == len(element.connections) - 16 + 3
    load = fleet.simulators["grid"].params["fleet_inputs"]["load.fleet"]
    assert load["group"] == "bus" and len(load["index"]) == 13


def _edge(edge):
    src, dst, attrs = edge
    return src.full_id, dst.full_id, attrs


def test_a_replaced_element_keeps_its_own_connection(day_scenario, tmp_path):
    """A device that replaces an asset injects for it; the fleet skips the element."""
    from twin.plan import Entity

    bridge = Entity("field", "pv_roof", "FieldPV")
    plan = plan_replacing(
        day_scenario(), tmp_path, ("pv", "pv_roof"), Replacement(bridge, provides=("p_kw",))
    )
    (pv,) = [c for c in plan.connections if c.src.full_id == "pv.fleet"]
    assert pv.index[[e.eid for e in plan.simulators["pv"].entities].index("pv_roof")] == -1
    assert pv.elements == 1
    edges = {(s.full_id, d.full_id) for s, d, _ in plan.element_edges()}
    assert ("field.pv_roof", "grid.bus_7") in edges and ("pv.pv_roof", "grid.bus_7") not in edges
    assert grid_injections(plan)["pv"] == ["pv_roof", "pv_barn"]


def test_a_fleet_connection_is_checked_where_it_is_made(day_scenario, tmp_path):
    plan = plan_world(day_scenario(controller="none"), tmp_path, "test")
    pv, grid, load = plan.fleets["pv"], plan.fleets["grid"], plan.fleets["load"]
    with pytest.raises(PlanError, match=r"index has 1 entries, expected one per pv element \(2\)"):
        plan.connect_fleet(pv, grid, "p_kw", index=[0])
    with pytest.raises(PlanError, match=r"index 15 is not an element of bus \(0\.\.14\) or -1"):
        plan.connect_fleet(pv, grid, "p_kw", index=[0, 15])
    with pytest.raises(PlanError, match=r"pv \(pv\) has no output 'soc'; outputs: p_kw"):
        plan.connect_fleet(pv, grid, ("soc", "p_kw"), index=[0, 1])
    with pytest.raises(PlanError, match="connected twice"):
        plan.connect_fleet(load, grid, "p_kw", index=[0] * 13)
    with pytest.raises(PlanError, match="names no attribute"):
        plan.connect_fleet(pv, grid, index=[0, 1])
    # a per-element connection may not use a parent's fleet attributes
    parent = plan.connections[0].dst
    plan.connect(plan.children("pv")["pv_roof"], parent, "p_kw")
    with pytest.raises(PlanError, match="serves 'measured' and fleet connections only"):
        plan.check_ports()


def _grid_simulator(fleet_inputs):
    sim = ModelSimulator()
    clock = Clock(pd.Timestamp("2016-06-21T00:00:00-04:00"), 900, 4)
    sim.init("grid", model="grid", clock=clock.to_dict())
    unit = {"name": "poc", "grid": "1-LV-rural1--0-sw", "solver": "fast"}
    sim.create(1, "Grid", units=[unit], context={}, fleet_inputs=fleet_inputs)
    return sim


def test_the_wrapper_scatters_fleet_arrays_and_adds_elements_on_top():
    index = [3, -1, 3, 0]
    sim = _grid_simulator({"pv.fleet": {"group": "bus", "index": index}})
    arrays = sim.model.default_inputs()
    before = arrays["p_kw"].copy()
    values = [1.0, 100.0, 2.5, -4.0]  # a remote source sends a list
    hits = sim._scatter(arrays, {"p_kw": {"pv.fleet": values}})
    expected = before.copy()
    expected[3], expected[0] = 3.5, -4.0
    np.testing.assert_array_equal(arrays["p_kw"], expected)
    assert list(np.flatnonzero(hits["p_kw"])) == [0, 3]
    # a step: the fleet's array plus a per-element source on top of bus 3 is what the
    # same injections give on per-element connections
    bus0, bus3 = (sim.model.elements["bus"][i] for i in (0, 3))
    sim.step(0, {"fleet": {"p_kw": {"pv.fleet": np.array(values)}}, bus3: {"p_kw": {"x": 1.0}}}, 0)
    plain = _grid_simulator({})
    plain.step(0, {bus0: {"p_kw": {"a": -4.0}}, bus3: {"p_kw": {"a": 1.0, "b": 3.5}}}, 0)
    buses = sim.model.elements["bus"]
    out = sim.get_data({"fleet": ["v_pu"], bus3: ["v_pu"]})
    assert isinstance(out["fleet"]["v_pu"], list)  # not in a mosaik process: JSON-able
    expected = plain.get_data({b: ["v_pu"] for b in buses})
    assert out["fleet"]["v_pu"] == pytest.approx([expected[b]["v_pu"] for b in buses], abs=1e-12)
    assert out[bus3]["v_pu"] == expected[bus3]["v_pu"] != 1.0


def test_a_fleet_input_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="fleet input from pv.fleet does not fit group 'bus'"):
        _grid_simulator({"pv.fleet": {"group": "bus", "index": [99]}})


def test_hybrid_run_is_the_same_with_fleet_connections(
    mosquitto, tmp_path, day_scenario, monkeypatch
):
    """A device replaces pv_roof: its bridge injects on top of the fleet's array at bus 7."""
    from tests.adapters.mqtt.test_bridge import SITE, Feeder

    device = {"asset": "pv_roof", "measure": ["p_kw"], "timeout_s": 20.0, "stale_after": "1min"}
    scenario = day_scenario(mqtt={"broker": mosquitto.url, "devices": [device]})
    clock = scenario.clock()
    fed = {k: 10.0 + 0.1 * k for k in range(clock.n_steps)}
    runs = []
    for exchange in ("fleet", "element"):
        feeder = Feeder(mosquitto.url, f"field/{SITE}/pv_roof/p_kw", fed, clock)
        feeder.start()
        runs.append(_run(scenario, tmp_path / exchange, monkeypatch, exchange))
        feeder.join(10)
        feeder.link.close()
        metadata = json.loads((tmp_path / exchange / "run.json").read_text())
        assert metadata["mqtt"]["devices"]["pv_roof"]["fallback_steps"] == 0
    _assert_same(*runs)


def test_in_a_mosaik_process_fleet_arrays_pass_as_arrays(day_scenario, tmp_path):
    from twin.runstate import local_simulators
    from twin.world import build_world

    built = build_world(day_scenario(), tmp_path, "test")
    try:
        sims = local_simulators(built.world)
        assert all(sim.in_process for sim in sims.values())
        assert set(sims) >= {"pv", "load", "battery", "grid"}
    finally:
        built.world.shutdown()


def _world_of(scenario, out, remote_grid: bool):
    from twin.component import components
    from twin.plan import WorldPlan

    context = {
        "site": scenario.site.model_dump(),
        "weather": scenario.weather,
        "grid": scenario.grid.source,
        "seed": scenario.seed,
    }
    plan = WorldPlan(scenario.clock(), out, context, {"run_id": "x", "site": "s"})
    active = [c for c in components() if c.wanted(scenario)]
    plan.add_model("grid", [{"name": "poc", "grid": scenario.grid.source, "solver": "fast"}])
    for component in active:
        component.add_entities(scenario, plan)
    if remote_grid:
        plan.simulators["grid"].sim_config = {"cmd": "%(python)s -m twin.simulator %(addr)s"}
    for component in active:
        component.add_connections(scenario, plan)
    return plan


def _grid_voltages(scenario, out, remote_grid: bool):
    from twin.plan import instantiate
    from twin.results import load_results, merge_parts, wide

    plan = _world_of(scenario, out, remote_grid)
    world, _ = instantiate(plan)
    world.run(until=plan.clock.end_s)
    merge_parts(plan.parts, out / "results.parquet")
    return plan, wide(load_results(out), "bus", "v_pu")


def test_a_grid_in_another_process_gets_the_fleets_as_lists(day_scenario, tmp_path):
    sc = day_scenario(controller="none", duration="2h", sensors={"enabled": False})
    plan, remote = _grid_voltages(sc, tmp_path / "remote", remote_grid=True)
    assert all(plan.simulators[k].params.get("fleet_lists") for k in ("pv", "load", "battery"))
    _, local = _grid_voltages(sc, tmp_path / "local", remote_grid=False)
    assert len(remote) == sc.clock().n_steps and remote.notna().all().all()
    assert remote.columns.equals(local.columns)
    np.testing.assert_allclose(remote.to_numpy(), local.to_numpy(), rtol=0, atol=1e-12)
