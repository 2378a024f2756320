"""A real InfluxDB 1.6 (Debian's ``influxd``) on free loopback ports."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from adapters.influx.server import InfluxServer
from tests.support import start_realtime_run


@pytest.fixture
def own_influx(tmp_path: Path) -> InfluxServer:
    """A server of the test's own (it may be stopped and restarted)."""
    server = InfluxServer(tmp_path / "influxdb").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_influx(tmp_path_factory: pytest.TempPathFactory) -> InfluxServer:
    """A server that requires credentials: admin / s3cret, database ``twin``."""
    server = InfluxServer(tmp_path_factory.mktemp("influxdb-auth"), auth=True).start()
    server.create_admin("admin", "s3cret")
    server.query('CREATE DATABASE "twin"', auth=("admin", "s3cret"))
    yield server
    server.stop()


def counts(server: InfluxServer, db: str, run_id: str) -> dict[str, int]:
    """Stored field values per measurement of one run."""
    answer = server.query(f"SELECT COUNT(*) FROM /.*/ WHERE run_id = '{run_id}'", db=db)
    out = {}
    for series in answer["results"][0].get("series", []):
        if series["name"] == "kpi":  # the run's KPIs, one point: not a result row
            continue
        out[series["name"]] = int(sum(v for v in series["values"][0][1:] if v is not None))
    return out


def parquet_counts(results: pd.DataFrame) -> dict[str, int]:
    """Non-NaN rows per kind (line protocol has no NaN)."""
    valid = results[results["value"].notna()]
    return {str(k): int(n) for k, n in valid.groupby("kind", observed=True).size().items() if n}


def stop_server_mid_run(
    server: InfluxServer, day_raw: dict[str, Any], tmp_path: Path, db: str
) -> subprocess.Popen:
    """Start a real-time ``twin run`` writing to ``db`` on ``server`` (into
    ``tmp_path/run``) and stop the server once the run has stored something."""
    influx = {"url": server.url, "db": db, "create_database": True, "retries": 1}
    raw = {**day_raw, "outputs": {"influx": {**influx, "flush_interval_s": 0.2}}}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = start_realtime_run(path, 8.0, "--out", str(tmp_path / "run"))
    deadline = time.monotonic() + 60
    while not server.query(f'SHOW MEASUREMENTS ON "{db}"')["results"][0].get("series"):
        assert run.poll() is None and time.monotonic() < deadline, "the run wrote nothing"
        time.sleep(0.1)
    server.stop()
    return run
