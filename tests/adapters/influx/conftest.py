"""A real InfluxDB 1.6 (Debian's ``influxd``) on free loopback ports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from adapters.influx.server import InfluxServer


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
