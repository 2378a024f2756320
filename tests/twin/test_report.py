"""``twin report`` says how the run ended: a failed or crashed run is never shown as fine."""

import json
import os
import signal
from pathlib import Path
from time import monotonic, sleep

import pytest
import yaml
from typer.testing import CliRunner

from tests.support import spike_scenario, start_realtime_run
from twin.cli import app
from twin.errors import RunError
from twin.results import read_run
from twin.run import run_scenario
from twin.rundir import LOCK_NAME

runner = CliRunner()
BANNER = 'role="alert"'


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_finished_run_has_no_banner(small_raw, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write(tmp_path, small_raw)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output and "NOT FINISHED" not in result.output
    page = (out / "report.html").read_text()
    assert BANNER not in page and "FAILED" not in page
    assert "checks passed: energy_balance" in page and "Peak import (kW)" in page


def test_a_run_that_failed_a_check_is_reported_as_failed(small_raw, tmp_path, monkeypatch):
    from twin import checks

    monkeypatch.setattr(checks, "BALANCE_ABS_TOL_KWH", -1.0)  # no residual passes
    monkeypatch.setattr(checks, "BALANCE_REL_TOL", -1.0)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write(tmp_path, small_raw)), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert read_run(out)["status"] == "failed"

    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output  # the report was written
    assert "run FAILED 1 check(s): energy_balance" in result.stderr
    assert "energy_balance: residual" in result.stderr
    assert "FAILED" not in result.stdout
    page = (out / "report.html").read_text()
    body = page[page.index("<body>") :]
    assert body.index(BANNER) < body.index("<h1>")  # at the top, before everything
    assert "run FAILED 1 check(s): energy_balance" in page
    assert "<li>energy_balance: residual" in page and "status: failed" in page
    assert "(FAILED): twin report</title>" in page
    assert "Peak import (kW)" in page and 'id="fig-power-0"' in page  # still there to diagnose


def test_a_run_that_failed_mid_way_is_reported_from_what_it_saved(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunError, match="did not converge"):
        run_scenario(spike_scenario(tmp_path), out)
    assert not (out / "kpis.json").exists()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "run FAILED: GridError: " in result.stderr
    assert "did not converge" in result.stderr and "rows recorded before" in result.stderr
    page = (out / "report.html").read_text()
    assert BANNER in page and "did not converge" in page
    assert "No KPIs" in page and 'id="fig-power-0"' in page


def test_a_crashed_run_is_named_as_such(day_raw, tmp_path):
    path = write(tmp_path, day_raw)
    out = tmp_path / "run"
    run = start_realtime_run(path, 120.0, "--out", str(out))
    try:
        deadline = monotonic() + 180
        while True:  # killed while it runs: run.json says running, the lock names it
            assert run.poll() is None and monotonic() < deadline, run.stdout.read()
            try:
                running = json.loads((out / "run.json").read_text())["status"] == "running"
                locked = (out / LOCK_NAME).read_text().strip() == f"pid {run.pid}"
            except (OSError, ValueError, KeyError):
                running = locked = False
            if running and locked:
                break
            sleep(0.05)
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=30)
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 2, result.output
    assert "run NOT FINISHED: run.json still says status 'running'" in result.output
    assert "crashed or was killed" in result.output
    assert "results.parquet is missing" in result.output
    assert not (out / "report.html").exists()


def test_a_new_run_clears_every_file_the_report_writes(small_raw, tmp_path):
    from twin.rundir import RUN_OUTPUTS

    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write(tmp_path, small_raw)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    before = set(os.listdir(out))
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    written = set(os.listdir(out)) - before
    assert written == {"report.html"} and written <= set(RUN_OUTPUTS)


def test_a_new_run_clears_the_demo_comparison_page(tmp_path):
    from twin.rundir import claim_run_dir

    (tmp_path / "compare.html").write_text("<html>an old comparison</html>")
    with claim_run_dir(tmp_path):
        assert not (tmp_path / "compare.html").exists()
