"""A row at t: interval means over [t, t+dt) and states at the instant t (README)."""

import numpy as np
import pandas as pd
import pytest

from models.base import Model
from models.battery import Battery
from models.ev import EVCharging
from models.sensors import Sensors
from twin.registry import get_model
from twin.results import load_results, wide
from twin.run import run_scenario


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import yaml

    from tests.conftest import ROOT
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="6h")
    scenario = validate_scenario(raw)
    result = run_scenario(scenario, tmp_path_factory.mktemp("stamps"))
    return scenario, result, load_results(result.out_dir)


def test_first_soc_row_is_soc_init_and_the_last_is_the_end_state(run):
    scenario, result, results = run
    (unit,) = scenario.units("battery")
    soc = wide(results, "battery", "soc")["bess"]
    assert soc.index[0] == pd.Timestamp("2016-06-21T13:00:00Z")
    assert soc.iloc[0] == unit["soc_init"]
    assert soc.index[-1] == pd.Timestamp("2016-06-21T19:00:00Z")  # the end of the run
    power = wide(results, "battery", "p_kw")["bess"]
    assert power.index[-1] == pd.Timestamp("2016-06-21T18:45:00Z")  # the last step's start
    # the SoC moves by exactly the energy of the step between its two instants
    soh = wide(results, "battery", "soh")["bess"].to_numpy()
    cells = np.where(power > 0, -power / unit["eta_dis"], -power * unit["eta_ch"]) * 0.25
    moved = np.diff(soc.to_numpy()) * unit["e_kwh"] * soh[:-1]
    np.testing.assert_allclose(moved, cells, atol=1e-9)


def test_end_state_kpis_use_the_true_end_state(run):
    scenario, result, results = run
    (unit,) = scenario.units("battery")
    e_end = wide(results, "battery", "e_kwh")["bess"].iloc[-1]
    start = unit["soc_init"] * unit["e_kwh"] * unit["soh_init"]
    assert result.kpis["e_battery_delta_kwh"] == pytest.approx(e_end - start)
    soh = wide(results, "battery", "soh")["bess"]
    assert soh.iloc[0] == unit["soh_init"]
    assert result.kpis["soh_change"] == pytest.approx(soh.iloc[-1] - unit["soh_init"])


def test_states_are_declared_on_the_ports():
    assert Battery.outputs["soc"].state and not Battery.outputs["p_kw"].state
    assert {n for n, p in Battery.outputs.items() if p.state} == {"soc", "soh", "t_c", "e_kwh"}
    assert EVCharging.outputs["soc"].state and not EVCharging.outputs["p_kw"].state
    for name in ("pv", "load", "tariff", "grid"):
        assert not any(port.state for port in get_model(name).outputs.values()), name


def test_a_model_with_states_reports_its_initial_state(run):
    scenario, _, _ = run
    from models.base import Clock

    clock = Clock(pd.Timestamp("2016-06-21T09:00:00-04:00"), 900, 4)
    battery = Battery(scenario.units("battery"), clock, {})
    assert set(battery.state()) == set(battery.state_outputs())
    assert battery.state()["soc"][0] == scenario.units("battery")[0]["soc_init"]
    assert Model([], clock).state_outputs() == []
    sensor = Sensors([{"name": "bess.soc", "state": True, "initial": 0.3}], clock, {})
    assert sensor.state_outputs() == ["measured", "value"]
    assert Sensors([{"name": "pv.p_kw"}], clock, {}).state_outputs() == []
