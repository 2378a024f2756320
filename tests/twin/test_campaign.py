"""Campaigns on a dask LocalCluster: same results as one by one, failures, resume."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from twin.campaign import execute, load_campaign, scenario_of
from twin.errors import ScenarioError
from twin.run import run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def campaign_file(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("campaign")
    broken = tmp_path / "broken.csv"
    broken.write_text("this is not,a profile\n1,2\n")
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
            "assets.load[0].profile": [None, str(broken)],
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
    assert len(finished) == 6  # the broken profile fails every run that uses it
    for _, row in finished.head(3).iterrows():
        run = next(r for r in campaign.runs if r.run_id == row["run_id"])
        alone = run_scenario(
            validate_scenario(scenario_of(campaign, run)), tmp_path / row["run_id"]
        )
        for key, value in alone.kpis.items():
            assert row[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    faulted = finished[finished["reference"].notna()]
    for _, row in faulted.iterrows():
        ref = summary.set_index("run_id").loc[row["reference"]]
        assert row["delta_cost_scored_eur"] == pytest.approx(
            row["cost_scored_eur"] - ref["cost_scored_eur"]
        )
        assert row["delta_unserved_kwh"] == pytest.approx(row["unserved_kwh"] - ref["unserved_kwh"])
    outage = faulted[faulted["fault.kind"] == "grid_outage"]
    assert (outage["delta_unserved_kwh"] > 0).all()


def test_a_run_that_raises_is_recorded_and_the_rest_finish(executed):
    _, summary, out = executed
    failed = summary[summary["status"] == "failed"]
    assert len(failed) == 6
    assert failed["error"].str.contains("broken.csv|profile", regex=True).all()
    for run_id in failed["run_id"]:
        assert (out / "runs" / run_id / "error.txt").exists()
    on_disk = pd.read_csv(out / "summary.csv")
    assert list(on_disk["run_id"]) == list(summary["run_id"])


def test_a_rerun_skips_finished_runs(executed, campaign_file):
    campaign, summary, out = executed
    finished = summary[summary["status"] == "finished"]["run_id"]
    stamps = {r: (out / "runs" / r / "run.json").stat().st_mtime_ns for r in finished}
    again = execute(load_campaign(campaign_file), out, n_workers=2, progress=False)
    for run_id, stamp in stamps.items():
        assert (out / "runs" / run_id / "run.json").stat().st_mtime_ns == stamp
    pd.testing.assert_series_equal(
        again.set_index("run_id").loc[finished, "cost_eur"],
        summary.set_index("run_id").loc[finished, "cost_eur"],
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
    assert len({r.run_id for r in campaign.runs}) == len(campaign.runs)
    assert json.dumps(campaign.runs[0].axes)  # ids come from JSON-able axes


def test_a_missing_campaign_file_is_named(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read the campaign file"):
        load_campaign(tmp_path / "nope.yaml")
