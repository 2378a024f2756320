"""The direct executor: the same runs as mosaik's scheduler, without it."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import assert_same_kpis
from tests.twin.test_fleet import DAY, fleet_raw, spike_site
from tests.twin.test_plan import FAULTS
from twin.errors import RunError
from twin.executor import (
    EXECUTOR_ENV,
    DirectWorld,
    ExecutorError,
    choose_executor,
    requested_executor,
    why_not_direct,
)
from twin.plan import PlanError
from twin.run import run_scenario
from twin.runstate import local_simulators
from twin.scenario import load_scenario, validate_scenario
from twin.world import plan_world

KEYS = ["time", "site", "source", "asset", "kind", "quantity"]


def _frame(out):
    frame = pd.read_parquet(out / "results.parquet").drop(columns="run_id")
    for key in KEYS[1:]:
        frame[key] = frame[key].astype(str)
    return frame.sort_values(KEYS).reset_index(drop=True)


def _assert_same(left_out, right_out, left_kpis, right_kpis):
    left, right = _frame(left_out), _frame(right_out)
    assert len(left) > 0
    pd.testing.assert_frame_equal(left[KEYS], right[KEYS])
    np.testing.assert_allclose(left["value"], right["value"], rtol=0, atol=1e-9)
    assert_same_kpis(left_kpis, right_kpis)


def _both(scenario, tmp_path):
    """Run ``scenario`` on mosaik and on the direct executor; assert the same outcome."""
    runs = {}
    for executor in ("mosaik", "direct"):
        out = tmp_path / executor
        runs[executor] = run_scenario(scenario, out, compare_uncontrolled=False, executor=executor)
        assert runs[executor].metadata["executor"] == executor
        assert "executor_fallback" not in runs[executor].metadata
    mosaik, direct = runs["mosaik"], runs["direct"]
    _assert_same(mosaik.out_dir, direct.out_dir, mosaik.kpis, direct.kpis)
    # the same simulators measured the same parts; the first step is timed
    assert mosaik.metadata["component_s"].keys() == direct.metadata["component_s"].keys()
    assert direct.metadata["first_step_s"] > 0
    return runs


def _short(name, start, duration, **changes):
    raw = yaml.safe_load((DAY.parent / name).read_text())
    raw.update(start=start, duration=duration, **changes)
    return validate_scenario(raw)


def test_the_shipped_day_is_the_same_without_mosaik(day_scenario, tmp_path):
    runs = _both(day_scenario(), tmp_path)
    assert runs["direct"].metadata["status"] == "finished"


def test_the_day_at_1_min_with_sensors_is_the_same_to_1e_12_without_mosaik(day_scenario, tmp_path):
    """The small-site loop (sensors, the rule, the fast solver) pinned to mosaik's run."""
    scenario = day_scenario(start="2016-06-21T10:00:00-04:00", duration="2h", step="1min")
    assert scenario.sensors.enabled and scenario.controller == "rule"
    runs = {
        executor: run_scenario(
            scenario, tmp_path / executor, compare_uncontrolled=False, executor=executor
        )
        for executor in ("mosaik", "direct")
    }
    left, right = _frame(runs["mosaik"].out_dir), _frame(runs["direct"].out_dir)
    assert set(left["source"]) >= {"measured"} and len(left) > 0
    pd.testing.assert_frame_equal(left[KEYS], right[KEYS])
    np.testing.assert_allclose(left["value"], right["value"], rtol=0, atol=1e-12)
    mosaik_kpis, direct_kpis = runs["mosaik"].kpis, runs["direct"].kpis
    assert mosaik_kpis.keys() == direct_kpis.keys()
    for key, value in mosaik_kpis.items():
        if isinstance(value, float):
            assert value == pytest.approx(direct_kpis[key], rel=1e-12, abs=1e-12), key
        else:
            assert value == direct_kpis[key], key


def test_a_fault_run_is_the_same_without_mosaik(day_scenario, tmp_path):
    _both(day_scenario(faults=FAULTS, duration="6h"), tmp_path)


def test_the_ev_depot_is_the_same_without_mosaik(tmp_path):
    runs = _both(_short("ev_depot.yaml", "2016-06-20T06:00:00-04:00", "12h"), tmp_path)
    assert runs["direct"].kpis["e_ev_delivered_kwh"] > 0


@pytest.mark.parametrize("controller", ["rule", "mpc", "oracle"])
def test_each_controller_runs_the_same_without_mosaik(controller, small_raw, tmp_path):
    small_raw["controller"] = controller
    _both(validate_scenario(small_raw), tmp_path)


def test_a_fleet_in_one_world_is_the_same_without_mosaik(tmp_path, monkeypatch):
    from twin.fleet import run_fleet, validate_fleet

    results = {}
    for executor in ("mosaik", "direct"):
        monkeypatch.setenv(EXECUTOR_ENV, executor)
        fleet = validate_fleet(fleet_raw(), tmp_path)
        results[executor] = run_fleet(fleet, tmp_path / executor, mode="world")
    for site in ("farm", "plain", "school"):
        dirs = {e: tmp_path / e / "sites" / site for e in results}
        metas = {e: json.loads((d / "run.json").read_text()) for e, d in dirs.items()}
        assert {e: m["executor"] for e, m in metas.items()} == {e: e for e in results}
        kpis = {e: results[e].kpis["sites"][site] for e in results}
        _assert_same(dirs["mosaik"], dirs["direct"], kpis["mosaik"], kpis["direct"])
    _assert_same(
        tmp_path / "mosaik",
        tmp_path / "direct",
        results["mosaik"].kpis["fleet"],
        results["direct"].kpis["fleet"],
    )


def test_the_same_seed_gives_the_same_results(day_scenario, tmp_path):
    first = run_scenario(day_scenario(faults=FAULTS), tmp_path / "a", executor="direct")
    again = run_scenario(day_scenario(faults=FAULTS), tmp_path / "b", executor="direct")
    left, right = _frame(first.out_dir), _frame(again.out_dir)
    pd.testing.assert_frame_equal(left, right)
    assert first.kpis == again.kpis


def test_auto_falls_back_to_mosaik_and_says_why(day_scenario, tmp_path, monkeypatch):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    plain = run_scenario(day_scenario(duration="1h"), tmp_path / "plain")
    assert plain.metadata["executor"] == "direct"  # auto, where the world allows it
    # the online diagnostics engine is an in-process adapter that does not declare itself
    result = run_scenario(day_scenario(duration="1h", diagnostics={}), tmp_path / "diag")
    assert result.metadata["executor"] == "mosaik"
    assert "'diagnostics'" in result.metadata["executor_fallback"]
    written = json.loads((tmp_path / "diag" / "run.json").read_text())
    assert written["executor_fallback"] == result.metadata["executor_fallback"]


def test_direct_refuses_a_world_it_cannot_run_and_names_the_simulator(day_scenario, tmp_path):
    with pytest.raises(RunError, match="executor: direct cannot run this world") as raised:
        run_scenario(day_scenario(duration="1h", diagnostics={}), tmp_path, executor="direct")
    assert isinstance(raised.value.__cause__, ExecutorError)
    assert "simulator 'diagnostics'" in str(raised.value)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["status"] == "failed" and "'diagnostics'" in meta["error"]


def test_a_remote_simulator_or_real_time_keeps_mosaik(day_scenario, tmp_path):
    plan = plan_world(day_scenario(), tmp_path, "t")
    assert why_not_direct(plan) is None
    assert "real time" in why_not_direct(plan, realtime=True)
    plan.simulators["grid"].sim_config = {"cmd": "%(python)s -m twin.simulator --model grid"}
    reason = why_not_direct(plan)
    assert reason == "simulator 'grid' runs in another process (cmd)"
    assert choose_executor(plan, "auto") == ("mosaik", reason)
    with pytest.raises(ExecutorError, match="'grid' runs in another process"):
        choose_executor(plan, "direct")


def test_the_executor_is_one_of_three(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "simpy")
    with pytest.raises(ExecutorError, match=f"{EXECUTOR_ENV}: expected one of auto, mosaik"):
        requested_executor()
    assert requested_executor("mosaik") == "mosaik"


def test_a_failing_simulator_saves_the_completed_steps_as_with_mosaik(tmp_path):
    spike = spike_site(tmp_path)
    runs = {}
    for executor in ("mosaik", "direct"):
        start = "start=2016-06-21T10:00:00-04:00"
        scenario = load_scenario(DAY, [*spike["set"], "duration=2h", start])
        with pytest.raises(RunError, match="did not converge"):
            run_scenario(scenario, tmp_path / executor, executor=executor)
        runs[executor] = json.loads((tmp_path / executor / "run.json").read_text())
        assert runs[executor]["status"] == "failed"
        assert runs[executor]["executor"] == executor
    assert runs["direct"]["rows_saved"] == runs["mosaik"]["rows_saved"] > 0
    left, right = _frame(tmp_path / "mosaik"), _frame(tmp_path / "direct")
    assert left.loc[left["quantity"] == "p_kw", "time"].nunique() == 4  # then the spike
    pd.testing.assert_frame_equal(left, right)


def test_directly_stepped_simulators_pass_fleet_arrays_in_process(day_scenario, tmp_path):
    world = DirectWorld(plan_world(day_scenario(duration="1h"), tmp_path, "t"))
    try:
        sims = local_simulators(world)
        assert set(sims) >= {"pv", "load", "battery", "grid"}
        assert all(sim.in_process for sim in sims.values())
        with pytest.raises(ExecutorError, match="'pv' called mosaik.get_related_entities"):
            sims["pv"].mosaik.get_related_entities()
        assert not hasattr(sims["pv"].mosaik, "__deepcopy__")  # copy's probes are no call
    finally:
        world.shutdown()


def test_a_same_step_cycle_is_refused(day_scenario, tmp_path):
    plan = plan_world(day_scenario(duration="1h"), tmp_path, "t")
    cycle = [c for c in plan.connections if c.time_shifted]
    assert cycle  # the controller reads the battery's SoC of the step before
    plan.connections = [
        c.__class__(c.src, c.dst, c.attrs, False, None) if c.time_shifted else c
        for c in plan.connections
    ]
    with pytest.raises(PlanError, match="form a cycle"):
        DirectWorld(plan)


def test_twin_run_takes_the_executor(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from twin.cli import app

    monkeypatch.setenv(EXECUTOR_ENV, "auto")  # restored after: the command sets it
    args = ["run", str(DAY), "--out", str(tmp_path), "--no-progress", "--set", "duration=1h"]
    result = CliRunner().invoke(app, [*args, "--executor", "mosaik"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run.json").read_text())["executor"] == "mosaik"
    assert os.environ[EXECUTOR_ENV] == "mosaik"  # for the process: a fleet, comparison runs
    wrong = CliRunner().invoke(app, [*args, "--executor", "simpy"])
    assert wrong.exit_code == 2
    assert "executor: expected one of auto, mosaik, direct, got 'simpy'" in wrong.output


def test_a_direct_run_does_not_import_mosaik(tmp_path):
    from tests.support import imported

    code = (
        "from twin.run import run_scenario\nfrom twin.scenario import load_scenario\n"
        f"sc = load_scenario({str(DAY)!r}, ['duration=1h'])\n"
        f"run_scenario(sc, {str(tmp_path)!r}, compare_uncontrolled=False, executor='direct')"
    )
    assert imported(code, "mosaik", "networkx") == []
