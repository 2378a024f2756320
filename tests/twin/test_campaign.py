"""Campaigns on a dask LocalCluster: same results as one by one, failures, resume."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from twin.campaign import Campaign, execute, load_campaign, scenario_of
from twin.component import Component, register_component, unregister_component
from twin.errors import ScenarioError
from twin.run import run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def campaign_file(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("campaign")
    # A point with an impossible load (100 MW on a LV feeder) validates and then fails
    # in its run: the power flow diverges.
    spec = {
        "name": "tiny",
        "base": str((tmp_path / "base.yaml").resolve()),
        "axes": {
            "controller": ["rule", "none"],
            "fault": [
                {"kind": "pv_shading", "target": "pv_roof", "duration": "3h", "severity": 0.5},
                {"kind": "grid_outage", "target": "grid", "duration": "2h"},
            ],
            "fault.start": ["17h"],
            "assets.load[0].p_kw": [10.0, 100_000.0],
        },
    }
    base = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    base["duration"] = "1d"
    base["assets"]["load"] = [{"name": "house", "bus": 7, "p_kw": 10.0, "profile": None}]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def executed(campaign_file):
    campaign = load_campaign(campaign_file)
    out = campaign_file.parent / "out"
    summary = execute(campaign, out, n_workers=2, progress=False)
    return campaign, summary, out


def test_a_campaign_on_a_local_cluster_matches_runs_one_by_one(executed, tmp_path):
    campaign, summary, _ = executed
    # 2 controllers x 2 faults x 2 profiles, plus 2 x 2 fault-free references
    assert len(campaign.runs) == 12 and len(summary) == 12
    finished = summary[summary["status"] == "finished"]
    assert len(finished) == 6  # the impossible load fails every run that has it
    for _, row in finished.head(3).iterrows():
        run = next(r for r in campaign.runs if r.point_id == row["point_id"])
        alone = run_scenario(
            validate_scenario(scenario_of(campaign, run)), tmp_path / row["point_id"]
        )
        for key, value in alone.kpis.items():
            assert row[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    faulted = finished[finished["reference"].notna()]
    for _, row in faulted.iterrows():
        ref = summary.set_index("point_id").loc[row["reference"]]
        assert row["delta_cost_scored_eur"] == pytest.approx(
            row["cost_scored_eur"] - ref["cost_scored_eur"]
        )
        assert row["delta_unserved_kwh"] == pytest.approx(row["unserved_kwh"] - ref["unserved_kwh"])
    outage = faulted[faulted["fault.kind"] == "grid_outage"]
    assert (outage["delta_unserved_kwh"] > 0).all()
    # each run's CPU is its own thread's: positive, never more than its wall time
    assert (finished["cpu_s"] > 0).all() and (finished["cpu_s"] <= finished["wall_s"]).all()


def test_a_run_that_raises_is_recorded_and_the_rest_finish(executed):
    _, summary, out = executed
    failed = summary[summary["status"] == "failed"]
    assert len(failed) == 6
    assert failed["error"].str.contains("did not converge").all()
    for point_id in failed["point_id"]:
        assert (out / "runs" / point_id / "error.txt").exists()
    on_disk = pd.read_csv(out / "summary.csv")
    assert list(on_disk["point_id"]) == list(summary["point_id"])


def test_a_rerun_skips_finished_runs(executed, campaign_file):
    campaign, summary, out = executed
    finished = summary[summary["status"] == "finished"]["point_id"]
    stamps = {r: (out / "runs" / r / "run.json").stat().st_mtime_ns for r in finished}
    again = execute(load_campaign(campaign_file), out, n_workers=2, progress=False)
    for point_id, stamp in stamps.items():
        assert (out / "runs" / point_id / "run.json").stat().st_mtime_ns == stamp
    pd.testing.assert_series_equal(
        again.set_index("point_id").loc[finished, "cost_eur"],
        summary.set_index("point_id").loc[finished, "cost_eur"],
    )
    assert (again["status"] == summary["status"]).all()  # the failed ones failed again


def test_bad_axes_are_named(tmp_path, campaign_file):  # noqa: D103
    spec = yaml.safe_load(campaign_file.read_text())
    spec["axes"] = {"assets.battery[0].e_kwhh": [10, 20]}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(ScenarioError, match="e_kwhh"):
        load_campaign(bad)
    spec["axes"] = {"controller": "rule"}
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(ScenarioError, match="axes.controller: expected a non-empty list"):
        load_campaign(bad)


def test_the_shipped_fault_sweep_expands_and_validates():
    path = Path(__file__).resolve().parents[2] / "scenarios" / "campaigns" / "fault_sweep.yaml"
    campaign = load_campaign(path)
    faulted = [r for r in campaign.runs if r.reference is not None]
    assert len(faulted) == 16 * 4 * 2
    kinds = {r.fault["kind"] for r in faulted}
    from models.faults import FAULT_KINDS

    assert kinds == set(FAULT_KINDS)
    assert len({r.point_id for r in campaign.runs}) == len(campaign.runs)
    assert json.dumps(campaign.runs[0].axes)  # ids come from JSON-able axes


def test_a_missing_campaign_file_is_named(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read the campaign file"):
        load_campaign(tmp_path / "nope.yaml")


@pytest.fixture
def client():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def write_profile(path, p_pu):
    times = pd.date_range("2016-06-21T13:00:00Z", periods=24, freq="15min")
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": p_pu})
    frame.to_csv(path, index=False)


def _two_point_campaign(tmp_path, client, name: str, duration: str, loads=None):
    """A campaign of the day scenario over two controllers, and a function that executes it
    (again) into ``tmp_path/out`` and returns its summary by point id, all finished."""
    base = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    base.update(start="2016-06-21T09:00:00-04:00", duration=duration)
    if loads is not None:
        base["assets"]["load"] = loads
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"name": name, "base": "base.yaml", "axes": {"controller": ["rule", "none"]}}
    (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"

    def execute_again():
        summary = execute(
            load_campaign(tmp_path / "campaign.yaml"), out, client=client, progress=False
        )
        assert (summary["status"] == "finished").all(), summary["error"].tolist()
        return summary.set_index("point_id")

    return base, out, execute_again


def test_resume_runs_again_what_changed_and_says_why(tmp_path, client):
    write_profile(tmp_path / "house.csv", 0.5)
    house = {"name": "house", "bus": 7, "p_kw": 10.0, "profile": str(tmp_path / "house.csv")}
    base, out, execute_again = _two_point_campaign(tmp_path, client, "resume", "6h", [house])
    first = execute_again()
    assert not first["resumed"].any() and first["rerun_reason"].isna().all()
    assert first["run_id"].nunique() == 2 and first["scenario_hash"].nunique() == 2

    same = execute_again()  # nothing changed: every point resumed
    assert same["resumed"].all() and same["rerun_reason"].isna().all()
    assert (same["run_id"] == first["run_id"]).all()

    base["assets"]["battery"][0]["e_kwh"] = 120.0  # the base changed
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    bigger = execute_again()
    assert not bigger["resumed"].any()
    assert not bigger["run_id"].isin(first["run_id"]).any()
    changed = r"inputs changed: assets\.battery\[0\]\.e_kwh: 60\.0 -> 120\.0"
    assert bigger["rerun_reason"].str.contains(changed).all()
    for point_id in bigger.index:
        meta = json.loads((out / "runs" / point_id / "run.json").read_text())
        assert meta["scenario"]["assets"]["battery"][0]["e_kwh"] == 120.0
        assert meta["run_id"] == bigger.loc[point_id, "run_id"]
    rule = bigger["controller"] == "rule"
    assert (bigger.loc[rule, "cost_eur"] != first.loc[rule, "cost_eur"]).all()

    write_profile(tmp_path / "house.csv", 0.8)  # a file the scenario reads changed
    heavier = execute_again()
    assert not heavier["resumed"].any()
    assert heavier["rerun_reason"].str.contains(r"input file assets\.load\[0\]\.profile").all()
    assert (heavier["e_load_kwh"] != bigger["e_load_kwh"]).all()

    assert execute_again()["resumed"].all()


def test_a_run_that_fails_its_checks_is_a_failed_row_with_its_reason(tmp_path, monkeypatch):
    from twin import checks
    from twin.campaign import run_one

    def always(scenario, metadata, kpis):
        return [checks.CheckFailure("test_check", "found what the test planted")]

    class Planted(Component):  # a component whose only contribution is a failing check
        name = "planted"

        def checks(self):
            return {"test_check": always}

    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="2h")
    register_component(Planted)
    try:
        row = run_one(raw, str(tmp_path / "run"))
    finally:
        unregister_component("planted")
    assert row["status"] == "failed" and row["kpis"] == {}
    assert "test_check: found what the test planted" in row["error"]
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and row["run_id"] == meta["run_id"]


def test_a_campaign_with_a_failed_run_exits_non_zero(tmp_path, campaign_file):
    from typer.testing import CliRunner

    from twin.cli import app

    spec = yaml.safe_load(campaign_file.read_text())
    spec["axes"] = {"assets.load[0].p_kw": [100_000.0]}
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["campaign", str(path), "--out", str(out), "--workers", "1", "--no-progress"]
    )
    assert result.exit_code == 1, result.output
    assert "campaign FAILED" in result.output
    assert (pd.read_csv(out / "summary.csv")["status"] == "failed").all()


def test_nothing_to_run_or_a_busy_directory_writes_no_summary(tmp_path, campaign_file):
    from twin.errors import TwinError
    from twin.rundir import RunDirLockedError, lock_dir

    campaign = load_campaign(campaign_file)
    empty = Campaign(campaign.name, campaign.base_path, campaign.base, campaign.axes)
    with pytest.raises(TwinError, match="no runs to execute"):
        execute(empty, tmp_path / "empty", progress=False)
    with lock_dir(tmp_path / "busy"), pytest.raises(RunDirLockedError, match="in use"):
        execute(campaign, tmp_path / "busy", progress=False)
    assert not list(tmp_path.glob("*/summary.*"))


def test_resume_needs_readable_results_and_says_which_file(tmp_path, client):
    _, out, execute_again = _two_point_campaign(tmp_path, client, "damaged", "2h")
    first = execute_again()
    missing, corrupt = first.index
    (out / "runs" / missing / "results.parquet").unlink()
    (out / "runs" / corrupt / "results.parquet").write_bytes(b"PAR1 not a parquet file")
    again = execute_again()
    assert not again["resumed"].any()
    assert again.loc[missing, "rerun_reason"] == "the earlier run's results.parquet is missing"
    assert again.loc[corrupt, "rerun_reason"].startswith(
        "the earlier run's results.parquet is corrupt ("
    )
    assert not again["run_id"].isin(first["run_id"]).any()
    for point_id in again.index:
        results = pd.read_parquet(out / "runs" / point_id / "results.parquet")
        assert (results["run_id"] == again.loc[point_id, "run_id"]).all()
    pd.testing.assert_series_equal(again["cost_eur"], first["cost_eur"])

    resumed = execute_again()  # repaired: both resume again
    assert resumed["resumed"].all() and resumed["rerun_reason"].isna().all()


def test_local_workers_run_without_the_profiler_and_default_to_one_per_cpu():
    import os

    from dask.distributed import Client

    from twin.campaign import local_cluster, usable_cpus

    assert usable_cpus() == len(os.sched_getaffinity(0))
    cluster = local_cluster(1)
    try:
        with Client(cluster) as client:

            def profiling() -> bool:
                import dask

                return dask.config.get("distributed.worker.profile.enabled")

            assert list(client.run(profiling).values()) == [False]
    finally:
        cluster.close()
