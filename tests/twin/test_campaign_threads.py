"""A campaign's runs in threads of one process give the results they give alone."""

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support import THREAD_WAIT_S, hook_step
from twin.campaign import execute, load_campaign, scenario_of
from twin.errors import TwinError
from twin.results import load_results
from twin.run import run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_points(tmp_path):
    """Two hours of the day scenario under two controllers (different simulators)."""
    base = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    base.update(start="2016-06-21T09:00:00-04:00", duration="2h")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"name": "threads", "base": "base.yaml", "axes": {"controller": ["rule", "none"]}}
    (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(spec))
    return load_campaign(tmp_path / "campaign.yaml")


def test_two_runs_interleaved_in_threads_equal_the_runs_one_after_another(
    two_points, tmp_path, monkeypatch
):
    """Both runs are mid-run at once (each waits at its grid's fifth step for the
    other). With run state in module globals, one run's ``component_s`` held the other's
    simulators (the uncontrolled run reported the rule controller's timings)."""
    alone = {
        run.point_id: run_scenario(
            validate_scenario(scenario_of(two_points, run)), tmp_path / "alone" / run.point_id
        )
        for run in two_points.runs
    }
    meet = threading.Barrier(2, timeout=THREAD_WAIT_S)
    hook_step(monkeypatch, "grid", lambda time: meet.wait() if time == 4 * 900 else None)
    out = tmp_path / "threads"
    summary = execute(two_points, out, executor="threads", n_workers=2, progress=False)
    assert (summary["status"] == "finished").all(), summary["error"].tolist()
    assert meet.n_waiting == 0 and not meet.broken  # both met mid-run
    for _, row in summary.iterrows():
        single = alone[row["point_id"]]
        run_dir = out / "runs" / row["point_id"]
        for key, value in single.kpis.items():
            assert row[key] == pytest.approx(value, rel=0, abs=0, nan_ok=True), key
        pd.testing.assert_frame_equal(
            load_results(run_dir).drop(columns="run_id"),
            load_results(single.out_dir).drop(columns="run_id"),
        )
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["run_id"] == row["run_id"] != single.metadata["run_id"]
        assert meta["component_s"].keys() == single.metadata["component_s"].keys()
    controllers = {
        row["controller"]: json.loads((out / "runs" / row["point_id"] / "run.json").read_text())
        for _, row in summary.iterrows()
    }
    assert "rule" in controllers["rule"]["component_s"]
    assert not any(key.startswith("rule") for key in controllers["none"]["component_s"])


def test_threads_take_no_dask_scheduler_and_executors_are_named(two_points, tmp_path):
    with pytest.raises(TwinError, match="give no scheduler or client"):
        execute(two_points, tmp_path, executor="threads", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(TwinError, match="expected one of dask, threads, got 'fibres'"):
        execute(two_points, tmp_path, executor="fibres")
    assert not list(tmp_path.glob("summary.*"))


def test_the_command_line_runs_a_campaign_in_threads(two_points, tmp_path):
    from typer.testing import CliRunner

    from twin.cli import app

    out = tmp_path / "out"
    args = ["campaign", str(tmp_path / "campaign.yaml"), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--executor", "threads", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(out / "summary.csv")["status"] == "finished").all()
    result = CliRunner().invoke(app, [*args, "--executor", "fibres"])
    assert result.exit_code != 0 and "expected one of dask, threads" in result.output
