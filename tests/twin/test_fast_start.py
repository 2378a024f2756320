"""A run from the disk cache equals a fresh one; run.json says when the first step ended."""

import json

import numpy as np

from models import grid as grid_module
from models import gridnet, profiles
from models.diskcache import CACHE_ENV
from twin.results import load_results
from twin.run import run_scenario


def forget_in_process() -> None:
    """Drop the per-process caches, so the next run reads (or fills) the disk cache."""
    grid_module._solver_model.cache_clear()
    gridnet._load.cache_clear()
    gridnet._tables.cache_clear()
    profiles._profile_table.cache_clear()


def test_a_run_from_a_warm_cache_equals_a_fresh_run(day_scenario, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # empty: everything derived
    scenario = day_scenario(duration="12h", start="2016-06-21T06:00:00-04:00")
    forget_in_process()
    fresh = run_scenario(scenario, tmp_path / "fresh", compare_uncontrolled=False)
    assert {"grids", "pv", "solver"} <= {p.name for p in (tmp_path / "cache").iterdir()}
    forget_in_process()
    warm = run_scenario(scenario, tmp_path / "warm", compare_uncontrolled=False)
    a, b = load_results(fresh.out_dir), load_results(warm.out_dir)
    assert len(a) == len(b) > 0
    a, b = a.drop(columns="run_id"), b.drop(columns="run_id")  # a new id per run
    key = [c for c in a.columns if c != "value"]
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    assert a.drop(columns="value").equals(b.drop(columns="value"))
    np.testing.assert_allclose(b["value"], a["value"], rtol=0, atol=1e-9)
    assert warm.kpis.keys() == fresh.kpis.keys()
    for name, value in fresh.kpis.items():
        assert abs(warm.kpis[name] - value) <= 1e-9 * max(1.0, abs(value)), name


def test_run_json_says_when_the_first_step_ended(day_scenario, tmp_path):
    run_scenario(day_scenario(duration="2h"), tmp_path, compare_uncontrolled=False)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["status"] == "finished"
    assert meta["setup_s"] < meta["first_step_s"] <= meta["setup_s"] + meta["loop_s"]
    assert meta["first_step_process_s"] > meta["first_step_s"]
