"""Every panel and variable query of every dashboard, run against a real InfluxDB."""

import json
import re
from pathlib import Path

import pytest
import yaml

from twin.grafana import InfluxQLQuery, dashboards, to_json, write_all
from twin.run import run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))


@pytest.fixture(scope="module")
def written_run(mosquitto, influxdb, tmp_path_factory):
    """The HIL scenario (devices, residuals, controller) written to InfluxDB."""
    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["broker"] = mosquitto.url
    raw["outputs"] = {"influx": {"url": influxdb.url, "db": "dash", "create_database": True}}
    result = run_scenario(validate_scenario(raw), tmp_path_factory.mktemp("dash") / "run")
    return result


def _substitute(query: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        query = query.replace(f"${name}", re.escape(value) if name != "timeFilter" else value)
    return query.replace("$__interval", "15m")


def _rows(influxdb, query: str) -> list:
    answer = influxdb.query(query, db="dash")
    result = answer["results"][0]
    assert "error" not in result, f"{query}: {result.get('error')}"
    return result.get("series", [])


def test_committed_dashboards_are_the_generated_ones(tmp_path):
    write_all(tmp_path)
    assert [p.name for p in DASHBOARDS] == sorted(
        p.name for p in (tmp_path / "dashboards").glob("*.json")
    )
    for path in DASHBOARDS:
        assert path.read_text() == (tmp_path / "dashboards" / path.name).read_text(), (
            f"{path.name} is stale: run `twin grafana --out grafana/`"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_validate_against_the_sdk_schema(path):
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = json.loads(path.read_text())
    parsed = Dashboard.from_json(data)  # typed models of grafana-foundation-sdk
    again = json.loads(json.dumps(parsed.to_json(), default=lambda o: o.to_json()))
    assert again == data  # nothing unknown to the schema, nothing lost
    targets = [t for p in parsed.panels or [] for t in getattr(p, "targets", None) or []]
    assert targets and all(isinstance(t, InfluxQLQuery) for t in targets)


@pytest.mark.parametrize("stem", sorted(dashboards()))
def test_every_query_returns_data_from_a_twin_run(stem, written_run, influxdb):
    data = to_json(dashboards()[stem])
    run_id = written_run.metadata["run_id"]
    values = {
        "site": "hil_battery",
        "run_id": run_id,
        "kind": "battery",
        "asset": "bess",
        "quantity": "soc",
        "timeFilter": "time >= '2016-06-21T04:00:00Z' AND time < '2016-06-22T04:00:00Z'",
    }
    for variable in data["templating"]["list"]:
        series = _rows(influxdb, _substitute(variable["query"], values))
        # As Grafana reads them: the "value" column of SHOW TAG VALUES, else the first.
        found = {
            str(v[s["columns"].index("value")] if "value" in s["columns"] else v[0])
            for s in series
            for v in s["values"]
        }
        expected = values[variable["name"]]
        assert expected in found, f"variable {variable['name']}: {found}"
    panels = [p for p in data["panels"] if p.get("targets")]
    assert panels
    for panel in panels:
        for target in panel["targets"]:
            series = _rows(influxdb, _substitute(target["query"], values))
            assert series and any(s["values"] for s in series), f"{panel['title']}: no data"
