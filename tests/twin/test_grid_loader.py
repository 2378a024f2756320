"""Grids from every source load with their elements handled or rejected by name."""

import json

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
import yaml
from typer.testing import CliRunner

from models.grid import Grid
from models.gridnet import SIMBENCH_CODE, GridSourceError, load_net
from tests.conftest import make_clock
from twin.cli import app
from twin.errors import ScenarioError
from twin.scenario import validate_scenario

SITE = {"lat": 36.1, "lon": -79.95, "altitude": 273, "tz": "America/New_York"}


def raw_scenario(grid: str, **changes) -> dict:
    raw = {
        "name": "grid_loader",
        "start": "2016-06-21T09:00:00-04:00",
        "duration": "1h",
        "step": "15min",
        "site": SITE,
        "grid": grid,
        "assets": {"load": [{"from_grid": True}]},
    }
    raw.update(changes)
    return raw


def test_every_listed_simbench_code_is_accepted():
    import simbench

    codes = simbench.collect_all_simbench_codes()
    assert len(codes) == 246
    assert [c for c in codes if not SIMBENCH_CODE.match(c)] == []
    assert not SIMBENCH_CODE.match("case33bw") and not SIMBENCH_CODE.match("grid-0-sw.json")


@pytest.mark.parametrize("code", ["1-HVMV-mixed-1.105-0-sw", "1-MVLV-rural-1.108-0-sw"])
def test_multi_level_simbench_code_loads_profiles_and_equals_runpp(code):
    scenario = validate_scenario(raw_scenario(code))
    loads = scenario.units("load")
    assert len(loads) > 50 and all(u["profile"] for u in loads)
    from models.load import Load

    clock = make_clock(step_s=900, n=2)
    load = Load(loads, clock, {"site": SITE, "grid": code})
    grid = Grid([{"name": "poc", "grid": code, "solver": "fast"}], clock)
    pos = {bus: i for i, bus in enumerate(grid.net.bus.index)}
    for k in range(2):
        now = clock.time_at(k * 900)
        out_load = load.step(now, 900, {"scale": np.ones(len(loads))})
        p_kw, q_kvar = np.zeros(len(pos)), np.zeros(len(pos))
        for unit, p, q in zip(loads, out_load["p_kw"], out_load["q_kvar"], strict=True):
            p_kw[pos[unit["bus"]]] += p
            q_kvar[pos[unit["bus"]]] += q
        out = grid.step(now, 900, {**grid.default_inputs(), "p_kw": p_kw, "q_kvar": q_kvar})
        net = load_net(code)
        net.load["in_service"] = net.sgen["in_service"] = False
        for unit, p, q in zip(loads, out_load["p_kw"], out_load["q_kvar"], strict=True):
            pp.create_load(net, unit["bus"], p_mw=-p / 1000, q_mvar=-q / 1000)
        pp.runpp(net)
        assert np.nanmax(np.abs(out["v_pu"] - net.res_bus["vm_pu"].to_numpy())) <= 1e-6
        assert out["p_kw"][0] / 1000 == pytest.approx(net.res_ext_grid["p_mw"].sum(), abs=1e-6)
        balance = out["p_kw"][0] + p_kw.sum() - out["losses_kw"][0]
        assert balance == pytest.approx(0.0, abs=1e-3)


def test_from_grid_loads_honour_scaling_and_service():
    net = pn.mv_oberrhein()
    assert (net.load["scaling"] == 0.6).all()
    scenario = validate_scenario(raw_scenario("mv_oberrhein"))
    total_kw = sum(u["p_kw"] for u in scenario.units("load"))
    live = net.load[net.load["in_service"]]
    assert total_kw == pytest.approx((live["p_mw"] * live["scaling"]).sum() * 1000)


def test_out_of_service_grid_loads_are_not_assets(tmp_path):
    net = pn.case33bw()
    net.load.loc[net.load.index[:3], "in_service"] = False
    path = tmp_path / "grid.json"
    pp.to_json(net, str(path))
    scenario = validate_scenario(raw_scenario(str(path)))
    assert len(scenario.units("load")) == len(net.load) - 3


def test_grid_generators_are_replaced_and_the_balance_closes(tmp_path):
    # case30: 5 voltage-controlled gen; left in service they fed ~3e5 kWh in 2 h
    result = CliRunner().invoke(
        app,
        ["run", str(write(tmp_path, "case30")), "--no-progress", "--out", str(tmp_path / "run")],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "finished"
    kpis = json.loads((tmp_path / "run" / "kpis.json").read_text())
    assert kpis["balance_residual_kwh"] < 1e-3
    assert kpis["e_import_kwh"] == pytest.approx(kpis["e_load_kwh"] + kpis["losses_kwh"], rel=1e-6)


def test_unaccounted_grid_element_fails_the_run_via_the_cli(tmp_path, monkeypatch):
    # a loader that forgot an element type: the energy-balance check must catch it
    import models.grid

    monkeypatch.setattr(
        models.grid,
        "REPLACED_ELEMENTS",
        tuple(t for t in models.grid.REPLACED_ELEMENTS if t != "gen"),
    )
    result = CliRunner().invoke(
        app,
        ["run", str(write(tmp_path, "case30")), "--no-progress", "--out", str(tmp_path / "run")],
    )
    assert result.exit_code == 1, result.output
    assert "energy_balance" in result.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed"
    assert [c["check"] for c in meta["checks"]["failed"]] == ["energy_balance"]


@pytest.mark.parametrize(
    ("table", "create"),
    [
        ("dcline", lambda n: pp.create_dcline(n, 1, 5, 1.0, 0.0, 0.0, 1.0, 1.0)),
        ("svc", lambda n: pp.create_svc(n, 3, 1.0, 1.0, 1.0, 140.0)),
    ],
)
def test_unsupported_grid_elements_are_named(tmp_path, table, create):
    net = pn.case33bw()
    create(net)
    path = tmp_path / "grid.json"
    pp.to_json(net, str(path))
    with pytest.raises(ScenarioError, match=f"grid.source: 1 {table} element"):
        validate_scenario(raw_scenario(str(path)))
    with pytest.raises(GridSourceError, match=table):
        Grid([{"name": "poc", "grid": str(path)}], make_clock())


def test_grid_without_external_grid_is_named(tmp_path):
    net = pn.case33bw()
    net.ext_grid["in_service"] = False
    pp.create_gen(net, 0, p_mw=0.0, slack=True)
    path = tmp_path / "grid.json"
    pp.to_json(net, str(path))
    with pytest.raises(ScenarioError, match="no ext_grid in service"):
        validate_scenario(raw_scenario(str(path)))


def write(tmp_path, grid: str):
    raw = raw_scenario(grid, duration="2h")
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_grid_load_out_of_bounds_is_a_scenario_problem_at_its_path(tmp_path):
    net = pn.case33bw()
    net.load.loc[net.load.index[4], "p_mw"] = 2e4  # 20 GW: beyond any load's bound
    path = tmp_path / "grid.json"
    pp.to_json(net, str(path))
    with pytest.raises(ScenarioError, match=r"assets\.load\[4\]\.p_kw: .*as resolved"):
        validate_scenario(raw_scenario(str(path)))


@pytest.mark.slow
def test_the_largest_simbench_all_grid_validates_with_its_11542_loads():
    scenario = validate_scenario(raw_scenario("1-MVLV-urban-all-0-sw"))
    assert len(scenario.units("load")) == 11542
