"""KPIs summed window by window from the lazy results equal the whole-run computation."""

import json
import math

import pytest

from tests.conftest import ROOT
from twin import kpi
from twin.kpi import compute_kpis
from twin.results import load_results, open_results
from twin.run import run_scenario
from twin.scenario import load_scenario
from twin.world import grid_injections, plan_world

SHIPPED = ["microgrid_day", "ev_depot"]  # a day at 15 min; a week of EVs at 5 min


def assert_same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("name", SHIPPED)
def test_windowed_kpis_equal_the_whole_run_on_the_shipped_scenarios(name, tmp_path, monkeypatch):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    run = run_scenario(scenario, tmp_path / name, compare_uncontrolled=False)
    written = json.loads((run.out_dir / "kpis.json").read_text())
    injecting = grid_injections(plan_world(scenario, tmp_path / "plan", "plan"))
    # the whole run in one table, as before the windows
    whole = compute_kpis(load_results(run.out_dir), scenario, injecting)
    assert_same({k: written[k] for k in whole}, whole)
    # windows of 37 steps: boundaries inside days and hours, many of them
    monkeypatch.setattr(kpi, "KPI_WINDOW_STEPS", 37)
    windows = list(kpi._windows(open_results(run.out_dir), scenario.clock()))
    assert len(windows) == -(-scenario.clock().n_steps // 37)
    assert_same(compute_kpis(open_results(run.out_dir), scenario, injecting), whole)
    # the balance and the battery's end state come from the last window's state row
    assert whole["balance_residual_kwh"] < 1e-6
    assert whole["e_battery_delta_kwh"] != 0.0
