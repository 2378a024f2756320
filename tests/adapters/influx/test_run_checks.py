"""Whatever the InfluxDB writer could not deliver fails the run (status, checks, exit code).

Each test makes the database lose or refuse something on purpose and checks that the
run says so: ``run.json`` status ``failed`` with an ``influx`` check, exit code 1 (or a
set-up error before the run), and counters that agree with the files left behind.
"""

import gzip
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapters.influx.outputs import flush_spool
from adapters.server import free_port
from tests.adapters.influx.conftest import counts, parquet_counts, stop_server_mid_run
from tests.conftest import ROOT
from twin.cli import app
from twin.errors import RunError
from twin.results import load_results
from twin.run import RunCheckError, run_scenario
from twin.scenario import validate_scenario


def _spool_points(spool: Path) -> tuple[int, int]:
    files = sorted(spool.glob("*.lp.gz"))
    return len(files), sum(gzip.decompress(f.read_bytes()).count(b"\n") for f in files)


def _twin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_a_server_down_for_the_whole_run_fails_it_and_flush_delivers(
    influxdb, tmp_path, small_raw, day_scenario
):
    dead = f"http://127.0.0.1:{free_port()}"
    influx = {"url": dead, "db": "late", "create_database": True, "retries": 0}
    scenario = day_scenario(start=small_raw["start"], duration="6h", outputs={"influx": influx})
    with pytest.raises(RunCheckError) as caught:
        run_scenario(scenario, tmp_path / "run")
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed"
    (failure,) = [f for f in meta["checks"]["failed"] if f["check"] == "influx"]
    batches, points = _spool_points(run / "influx-spool")
    assert points > 0 and f"{points:,} points in {batches} batches left" in failure["message"]
    assert f"`twin influx flush {run}`" in failure["message"]
    stats = meta["influx"]
    assert (stats["spooled_left"], stats["spooled_points_left"]) == (batches, points)
    assert stats["points_written"] == 0 and stats["points_unaccounted"] == 0
    assert "influx" in str(caught.value)

    summary = flush_spool(run, url=influxdb.url)
    assert summary.ok and (summary.batches_before, summary.points_before) == (batches, points)
    assert summary.stats.points_replayed == points and summary.points_left == 0
    results = load_results(run)
    assert counts(influxdb, "late", meta["run_id"]) == parquet_counts(results)
    kpi = influxdb.query(f"SELECT * FROM kpi WHERE run_id = '{meta['run_id']}'", db="late")
    assert len(kpi["results"][0]["series"][0]["values"]) == 1  # the KPI point was spooled too

    again = CliRunner().invoke(app, ["influx", "flush", str(run), "--url", influxdb.url])
    assert again.exit_code == 0, again.output
    assert "held 0 points in 0 batches; 0 replayed, 0 dropped, 0 points in 0 batches left" in (
        again.output
    )
    assert counts(influxdb, "late", meta["run_id"]) == parquet_counts(results)  # no doubles


def test_flush_to_a_server_that_is_still_away_says_so(tmp_path, small_raw, day_scenario):
    dead = f"http://127.0.0.1:{free_port()}"
    influx = {"url": dead, "retries": 0}
    scenario = day_scenario(start=small_raw["start"], duration="6h", outputs={"influx": influx})
    with pytest.raises(RunCheckError):
        run_scenario(scenario, tmp_path / "run")
    result = CliRunner().invoke(app, ["influx", "flush", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"InfluxDB {dead} (database 'twin') unreachable" in result.output
    # a URL the settings refuse: named, no traceback, no password echoed
    result = CliRunner().invoke(
        app, ["influx", "flush", str(tmp_path / "run"), "--url", "admin:S3cret@host:8086"]
    )
    assert result.exit_code == 2 and "invalid InfluxDB settings (url)" in result.output
    assert "S3cret" not in result.output
    assert isinstance(result.exception, SystemExit)  # an exit, not a traceback


def test_a_server_that_dies_mid_run_and_stays_away_fails_the_run(own_influx, tmp_path, day_raw):
    run = stop_server_mid_run(own_influx, day_raw, tmp_path, "gone")
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 1, output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed"
    batches, points = _spool_points(tmp_path / "run" / "influx-spool")
    assert points > 0 and meta["influx"]["spooled_points_left"] == points
    assert "check failed: influx:" in output and "left in the spool" in output
    assert meta["influx"]["points_written"] + points == meta["influx"]["points_submitted"] + 1


def test_the_wrong_api_is_a_set_up_error_before_the_run(influxdb, tmp_path, small_raw):
    raw = {
        **small_raw,
        "outputs": {
            "influx": {"url": influxdb.url, "api": "v2", "token": "t", "org": "o", "bucket": "b"},
        },
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = _twin("run", str(path), "--no-progress", "--out", str(tmp_path / "run"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "InfluxDB 1.6.7" in done.stderr and "api: v1" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "no /api/v2/write" in meta["error"]
    assert not (tmp_path / "run" / "results.parquet").exists()  # stopped before the run


def test_a_missing_database_is_a_set_up_error_naming_the_nearest(influxdb, tmp_path, small_raw):
    influxdb.query('CREATE DATABASE "microgrid"')
    raw = {**small_raw, "outputs": {"influx": {"url": influxdb.url, "db": "microgird"}}}
    with pytest.raises(RunError, match=r"database 'microgird' does not exist; did you mean "):
        run_scenario(validate_scenario(raw), tmp_path / "run")
    databases = influxdb.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
    assert ["microgird"] not in databases


def test_a_refused_kpi_point_fails_the_run(influxdb, tmp_path, small_raw, day_scenario):
    """The KPI field already exists with another type: the server refuses the KPI point."""
    influxdb.query('CREATE DATABASE "kpiclash"')
    scenario = day_scenario(
        start=small_raw["start"],
        duration="6h",
        outputs={"influx": {"url": influxdb.url, "db": "kpiclash"}},
    )
    last = int(scenario.clock().times[-1].timestamp())  # the shard of the run's KPI point
    body = f'kpi,run_id=other peak_import_kw="high" {last}'
    urllib.request.urlopen(
        f"{influxdb.url}/write?db=kpiclash&precision=s", data=body.encode(), timeout=30
    ).close()
    with pytest.raises(RunCheckError):
        run_scenario(scenario, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    messages = [f["message"] for f in meta["checks"]["failed"] if f["check"] == "influx"]
    assert any("KPI point not written" in m and "field type conflict" in m for m in messages)


def test_a_baseline_run_that_fails_its_influx_check_still_leaves_the_run_recorded(tmp_path):
    """EV scenarios also run uncontrolled; its failed check must not abort this run."""
    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw["duration"] = "6h"
    raw["outputs"] = {"influx": {"url": f"http://127.0.0.1:{free_port()}", "retries": 0}}
    with pytest.raises(RunCheckError):
        run_scenario(validate_scenario(raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["uncontrolled_status"] == "failed"
    assert "peak_import_uncontrolled_kw" in json.loads((tmp_path / "run" / "kpis.json").read_text())
