"""The engine in the loop: the same health and alerts as offline, out to MQTT and InfluxDB."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from adapters.mqtt.broker import Subscriber
from twin.diagnostics.run import diagnose_run
from twin.errors import ScenarioError
from twin.plan import PARENT_EID
from twin.run import run_scenario
from twin.world import plan_world

SITE = "microgrid_day"
SHADING = {"kind": "pv_shading", "target": "pv_roof", "start": "10h", "duration": "3h"}
DRIFT = {
    "kind": "sensor_drift",
    "target": "load_1.p_kw",
    "start": "14h",
    "severity": 2.0,
}  # open at the end


def _faults():
    return [{**SHADING, "severity": 0.3}, dict(DRIFT)]


def test_the_engine_reads_every_fleet_as_arrays_and_feeds_the_sinks(day_scenario, tmp_path):
    mqtt = {"broker": "mqtt://127.0.0.1:1", "client_id": "t-plan"}
    influx = {"url": "http://127.0.0.1:1", "db": "x"}
    plan = plan_world(
        day_scenario(diagnostics={}, mqtt=mqtt, outputs={"influx": influx}), tmp_path, "t"
    )
    into = {(c.src.full_id, c.attrs) for c in plan.connections if c.dst.sid == "diagnostics"}
    measured = {sid for sid, sim in plan.simulators.items() if sim.params.get("sensors")}
    assert measured == {"pv", "battery", "load", "grid"}
    for sid in measured:  # one connection per simulator, whatever its number of elements
        assert (f"{sid}.{PARENT_EID}", (("measured", "measured"),)) in into
    assert ("rule.bess", (("p_set_kw", "p_set_kw"),)) in into
    out = {(c.dst.full_id, c.attrs) for c in plan.connections if c.src.sid == "diagnostics"}
    assert out == {("influx.sink", (("lines", "lines"),)), ("mqtt.publisher", (("messages",) * 2,))}


def test_online_and_offline_give_the_same_health_and_alerts(day_scenario, tmp_path):
    result = run_scenario(day_scenario(faults=_faults(), diagnostics={}), tmp_path / "run")
    online = tmp_path / "run"
    stats = result.metadata["diagnostics"]
    assert stats["steps"] == 96 and stats["alerts"] >= 2 and stats["open_at_end"] >= 1
    offline = tmp_path / "offline"
    shutil.copytree(online, offline)
    for name in ("health.parquet", "alerts.parquet", "alerts.json"):
        (offline / name).unlink()
    diagnose_run(offline)
    pd.testing.assert_frame_equal(
        pd.read_parquet(online / "health.parquet"), pd.read_parquet(offline / "health.parquet")
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(online / "alerts.parquet"), pd.read_parquet(offline / "alerts.parquet")
    )
    alerts = json.loads((online / "alerts.json").read_text())
    assert alerts == json.loads((offline / "alerts.json").read_text())
    assets = {a["asset"]: a for a in alerts}
    assert assets["pv_roof"]["status"] == "cleared" and assets["load_1"]["status"] == "open"


def test_health_and_alerts_reach_mqtt_and_influxdb(mosquitto, influxdb, day_scenario, tmp_path):
    live = Subscriber(mosquitto, f"twin/{SITE}/+/health/#", "t-health-sub")
    try:
        mqtt = {"broker": mosquitto.url, "client_id": "t-diag", "publish": ["battery/*/soc"]}
        influx = {"url": influxdb.url, "db": "diag", "create_database": True}
        scenario = day_scenario(
            faults=_faults(), diagnostics={}, mqtt=mqtt, outputs={"influx": influx}
        )
        result = run_scenario(scenario, tmp_path / "run")
        health = pd.read_parquet(tmp_path / "run" / "health.parquet").dropna(subset=["value"])
        assert live.wait_for(len(health), f"twin/{SITE}/", 30.0)
    finally:
        live.stop()
    # every index value of every step, on its topic
    got = live.by_topic(f"twin/{SITE}/")
    roof = [p["value"] for p in got[f"twin/{SITE}/pv_roof/health/pv_performance"]]
    want = health[(health["asset"] == "pv_roof") & (health["quantity"] == "pv_performance")]
    assert roof == pytest.approx(want["value"].tolist())
    assert sum(len(v) for v in got.values()) == len(health)
    # the alerts still open are retained, the cleared ones are gone
    alerts = json.loads((tmp_path / "run" / "alerts.json").read_text())
    late = Subscriber(mosquitto, f"twin/{SITE}/alerts/#", "t-alerts-sub")
    try:
        late.wait_for(1, f"twin/{SITE}/alerts/", 10.0)
        retained = {
            t.rsplit("/", 1)[-1]: json.loads(p)
            for t, p in late.messages
            if t.startswith(f"twin/{SITE}/alerts/") and p
        }
    finally:
        late.stop()
    open_ids = {a["alert_id"] for a in alerts if a["status"] == "open"}
    assert set(retained) == open_ids and open_ids
    assert all(
        retained[i]["asset"] == a["asset"] for a in alerts if (i := a["alert_id"]) in open_ids
    )
    # InfluxDB: one health point per index value, the alert points with their state
    run_id = result.metadata["run_id"]
    answer = influxdb.query(f"SELECT count(value) FROM health WHERE run_id = '{run_id}'", db="diag")
    assert answer["results"][0]["series"][0]["values"][0][1] == len(health)
    answer = influxdb.query(
        f"SELECT last(open) FROM alert WHERE run_id = '{run_id}' GROUP BY alert_id", db="diag"
    )
    last = {s["tags"]["alert_id"]: s["values"][0][1] for s in answer["results"][0]["series"]}
    assert last == {a["alert_id"]: int(a["status"] == "open") for a in alerts}
    assert result.metadata["influx"]["points_unaccounted"] == 0
    # the next run of the site starts by deleting the alerts the last one left open
    again = run_scenario(day_scenario(diagnostics={}, mqtt=mqtt), tmp_path / "again")
    assert again.metadata["mqtt"]["publisher"]["retained_cleared"] == len(open_ids)
    assert _retained_alerts(mosquitto) == {}


def _retained_alerts(mosquitto) -> dict:
    late = Subscriber(mosquitto, f"twin/{SITE}/alerts/#", "t-alerts-again")
    try:
        late.wait_for(1, f"twin/{SITE}/alerts/", 2.0)  # a retained message comes at once
        return {t: p for t, p in late.messages if t.startswith(f"twin/{SITE}/alerts/") and p}
    finally:
        late.stop()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sensors": {"enabled": False}, "diagnostics": {}}, "diagnostics"),
        ({"diagnostics": {"model": "no/such/model"}}, "diagnostics.model"),
        ({"diagnostics": {"mode": "psychic"}}, "diagnostics.mode"),
        (
            {"diagnostics": {}, "mqtt": {"broker": "mqtt://127.0.0.1:1", "publish": []}},
            "diagnostics.publish",
        ),
    ],
)
def test_bad_diagnostics_settings_are_named(day_scenario, changes, field):
    with pytest.raises(ScenarioError) as info:
        day_scenario(**changes)
    assert f"{field}:" in str(info.value)


def test_in_the_loop_with_hardware_the_engine_reads_the_device(mosquitto, tmp_path):
    """hil_battery: the battery is an emulated device (aged, less efficient than its model).
    The plant's readings of it are the device's, online and offline alike."""
    import yaml

    from tests.conftest import ROOT
    from twin.diagnostics.run import measured_arrays
    from twin.results import load_results, wide
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["broker"] = mosquitto.url
    raw["diagnostics"] = {}
    scenario = validate_scenario(raw)
    run_scenario(scenario, tmp_path / "run")
    online = pd.read_parquet(tmp_path / "run" / "health.parquet")
    offline = tmp_path / "offline"
    shutil.copytree(tmp_path / "run", offline)
    diagnose_run(offline)
    pd.testing.assert_frame_equal(online, pd.read_parquet(offline / "health.parquet"))
    results = load_results(tmp_path / "run")
    keys = [("bess", "battery", "soc")]
    readings, _ = measured_arrays(results, scenario.clock().times, keys, [])
    device = wide(results, "battery", "soc", source="real")["bess"].to_numpy()[1:]
    fresh = wide(results, "battery", "quality", source="real")["bess"].to_numpy() >= 0.5
    np.testing.assert_array_equal(readings[fresh, 0], device[fresh])  # the device's SoC
    model = wide(results, "battery", "soc", source="measured")["bess"].to_numpy()[1:]
    assert np.nanmax(np.abs(model - device)) > 0.02  # which is not the model's
