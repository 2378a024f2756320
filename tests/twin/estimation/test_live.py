"""The live twin end to end: the field emulator publishes a plant's sensors over a real
Mosquitto, the twin ingests them (raw values into a real InfluxDB), estimates the grid's
state every step and flags the sensor that lies; the diagnostics engine raises the alert.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml

from adapters.field.emulator import FieldOptions, run_field
from adapters.field.impair import Impairments
from adapters.field.noise import parse_bias
from adapters.field.plan import PlanOptions
from tests.conftest import ROOT
from tests.support import THREAD_WAIT_S

FIELD_MAPPING = ROOT / "scenarios" / "mappings" / "field.yaml"

SECONDS = 24
SPEED = 4.0
BIASED = "field/line_3/p_from"
BIAS_FROM_S = 8


def _raw(seconds: int) -> dict:
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T12:00:00-04:00", duration=f"{seconds}s", step="1s")
    return copy.deepcopy(raw)


def _mapping() -> list[dict]:
    """The shipped mapping, with the LV feeder's voltages in V phase-to-neutral."""
    mapping = yaml.safe_load(FIELD_MAPPING.read_text())["mapping"]
    mapping = copy.deepcopy(mapping)
    for rule in mapping:
        rule["quantities"]["v"] = {"quantity": "v_pu", "unit": "V", "voltage": "phase"}
    return mapping


def _query(server, q: str, db: str) -> list[dict]:
    params = urllib.parse.urlencode({"q": q, "db": db})
    with urllib.request.urlopen(f"{server.url}/query?{params}", timeout=30) as answer:
        return json.loads(answer.read())["results"][0].get("series", [])


@pytest.mark.slow
def test_the_live_twin_estimates_the_plant_and_flags_the_lying_sensor(
    mosquitto, influxdb, tmp_path
):
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    wall_start = float(int(time.time()) + 20)  # both set up meanwhile
    options = FieldOptions(
        plan=PlanOptions(fmt="senml", gateway_size=40),
        impair=Impairments(jitter_s=0.1, reorder=0.1, duplicates=0.05, seed=4),
        speed=SPEED,
        wall_start=wall_start,
        seed=11,
        biases=(parse_bias(f"{BIASED}=10@{BIAS_FROM_S}"),),
        broker=mosquitto.url,
        client_id="field-live-estimate",
    )
    raw = _raw(SECONDS)
    raw.update(
        ingest={
            "broker": mosquitto.url,
            "client_id": "twin-live-estimate",
            "mapping": _mapping(),
            "wall_start": wall_start,
        },
        estimation={},
        diagnostics={"publish": False},
    )
    raw["outputs"] = {  # raw values, the twin's and the estimate: one database
        "influx": {"url": influxdb.url, "db": "live_estimate", "create_database": True}
    }
    # one scenario for both: the emulator's true plant drops the live twin's sections
    twin = plant = validate_scenario(raw)
    results: dict = {}
    emulating = threading.Thread(
        target=lambda: results.update(field=run_field(plant, options, tmp_path / "field")),
        daemon=True,
    )
    emulating.start()
    result = run_scenario(twin, tmp_path / "run", progress=False, rt_factor=1 / SPEED)
    emulating.join(THREAD_WAIT_S)
    assert results["field"].ok, results["field"].summary["problems"]
    meta = result.metadata
    assert meta["status"] == "finished", meta.get("checks")
    stats = meta["estimation"]
    # every window of the plant (the last closes after the run) estimated
    assert stats["windows"] >= SECONDS - 2 and stats["solved"] == stats["windows"]

    # estimated voltages against the plant's truth, in the voltage sensors' sigma
    truth = pd.read_parquet(tmp_path / "field" / "truth.parquet")
    volts = truth[truth["quantity"] == "v_pu"]
    volts = volts.assign(element=volts["element"].astype(str))
    volts = volts.groupby(["element", "t_true"], as_index=False, observed=True).agg(
        truth=("truth_twin", "first"), sigma=("sigma_twin", "min")
    )
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    est = rows[(rows["source"] == "estimate") & (rows["quantity"] == "v_pu")].dropna(
        subset=["value"]
    )
    est = est.assign(element=est["asset"].astype(str), t_true=est["time"].astype("int64") / 1e9)
    joined = est.merge(volts, on=["element", "t_true"])
    assert len(joined) >= 0.8 * len(est) > 0
    z = np.abs(joined["value"] - joined["truth"]) / joined["sigma"]
    assert (z <= 3).mean() >= 0.99, z.describe()

    # the biased sensor, and only it, is flagged within 3 steps of its first biased sample
    flagged = {f["sensor"]: f for f in stats["flagged"]}
    assert set(flagged) == {BIASED}, stats["flagged"]
    since = pd.Timestamp(flagged[BIASED]["since"])
    start = pd.Timestamp(twin.start)
    assert (since - start).total_seconds() - BIAS_FROM_S < 3
    health = pd.read_parquet(tmp_path / "run" / "sensor_health.parquet")
    assert set(health.loc[health["state"] == "flagged", "sensor"]) == {BIASED}

    # the diagnostics engine's alert on the line, from the estimate's sensor-health signal
    alerts = json.loads((tmp_path / "run" / "alerts.json").read_text())
    mine = [a for a in alerts if a["asset"] == "line_3"]
    assert mine and mine[0]["kind"] == "sensor_drift"
    assert "inconsistent:p_from_kw" in mine[0]["evidence"]

    # raw values (source=real) and the estimate (source=estimate) in InfluxDB
    (real,) = _query(
        influxdb, "SELECT count(quality) FROM bus WHERE source='real'", "live_estimate"
    )
    assert real["values"][0][1] > 0
    (estimated,) = _query(
        influxdb, "SELECT count(v_pu) FROM bus WHERE source='estimate'", "live_estimate"
    )
    n_bus = est["asset"].nunique()
    assert estimated["values"][0][1] == stats["solved"] * n_bus
