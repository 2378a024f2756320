import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from tests.support import runpp_voltages
from twin.errors import RunError
from twin.results import load_results, wide
from twin.run import run_scenario
from twin.scenario import validate_scenario


def small_scenario(**changes):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="6h", **changes)
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def rule_run(tmp_path_factory):
    return run_scenario(small_scenario(), tmp_path_factory.mktemp("rule"))


def test_run_writes_tidy_results_metadata_and_kpis(rule_run):
    results = load_results(rule_run.out_dir)
    assert list(results.columns) == [
        "time",
        "site",
        "run_id",
        "source",
        "asset",
        "kind",
        "quantity",
        "value",
    ]
    assert str(results["time"].dt.tz) == "UTC"
    assert results["time"].min() == pd.Timestamp("2016-06-21T13:00:00Z")
    # 24 step starts, plus the end of the run for the states (SoC, energy, SoH, t_c)
    assert results["time"].nunique() == 25
    at_end = results[results["time"] == pd.Timestamp("2016-06-21T19:00:00Z")]
    assert set(at_end["quantity"]) == {"soc", "soh", "t_c", "e_kwh"}
    assert not results["value"].isna().any()
    meta = json.loads((rule_run.out_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["seed"] == 42
    assert meta["versions"]["mosaik"].startswith("3.6")
    assert meta["scenario"]["assets"]["load"][0]["name"] == "load_0"
    kpis = json.loads((rule_run.out_dir / "kpis.json").read_text())
    assert kpis == pytest.approx(rule_run.kpis)


def test_site_energy_balance_closes(rule_run):
    k = rule_run.kpis
    throughput = (
        k["e_import_kwh"]
        + k["e_export_kwh"]
        + k["e_pv_kwh"]
        + k["e_load_kwh"]
        + k["battery_throughput_kwh"]
    )
    assert k["balance_residual_kwh"] <= 1e-6 * throughput


def test_voltages_equal_runpp_on_the_recorded_injections(rule_run):
    results = load_results(rule_run.out_dir)
    scenario = small_scenario()
    for time in wide(results, "bus", "v_pu").index[::5]:
        ours, reference = runpp_voltages(scenario, results, time)
        assert np.max(np.abs(ours - reference)) <= 1e-6


def test_same_scenario_and_seed_give_identical_results(rule_run, tmp_path):
    again = run_scenario(small_scenario(), tmp_path)
    pd.testing.assert_frame_equal(load_results(rule_run.out_dir), load_results(again.out_dir))
    assert again.kpis == rule_run.kpis


def test_rule_controller_keeps_limits_and_beats_no_control(rule_run, tmp_path):
    none = run_scenario(small_scenario(controller="none"), tmp_path)
    assert none.kpis["battery_throughput_kwh"] == 0.0
    assert rule_run.kpis["e_export_kwh"] < none.kpis["e_export_kwh"]
    assert rule_run.kpis["self_consumption"] > none.kpis["self_consumption"]
    soc = wide(load_results(rule_run.out_dir), "battery", "soc")["bess"]
    assert soc.min() >= 0.1 - 1e-9 and soc.max() <= 0.9 + 1e-9


def test_failed_run_keeps_what_was_recorded(tmp_path):
    profile = tmp_path / "spike.csv"
    times = pd.date_range("2016-06-21T13:00:00Z", periods=24, freq="15min")
    p_pu = np.where(np.arange(24) < 10, 0.5, 10_000.0)  # 10 steps, then an impossible load
    pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": p_pu}).to_csv(
        profile, index=False
    )
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="6h")
    raw["assets"]["load"].append({"name": "spike", "bus": 5, "p_kw": 10, "profile": str(profile)})
    with pytest.raises(RunError, match="did not converge at 2016-06-21T15:30:00"):
        run_scenario(validate_scenario(copy.deepcopy(raw)), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "GridError" in meta["error"]
    saved = load_results(tmp_path / "run")
    states = saved["quantity"].isin(["soc", "soh", "t_c", "e_kwh"])
    assert saved.loc[~states, "time"].nunique() == 10
    # the states at the 10 step starts and at the end of the last step saved
    assert saved.loc[states, "time"].nunique() == 11
