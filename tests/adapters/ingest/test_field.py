"""The live twin's ingestion fed by the real field emulator (``twin field``).

The emulator publishes the tiny true plant's sensors with every impairment (jitter,
reordering, duplicates, dropouts, gateway clock skew) on the twin's plant clock; the
twin's ``ingest`` section stores every published sample exactly once."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
import urllib.parse
import urllib.request

import pandas as pd
import pytest
import yaml

import adapters.field.emulator as emulator
from adapters.field.emulator import FieldOptions, prepare, run_field
from adapters.field.plan import PlanOptions
from tests.adapters.field.conftest import IMPAIRED, tiny_raw
from tests.conftest import ROOT
from tests.support import THREAD_WAIT_S

FIELD_MAPPING = ROOT / "scenarios" / "mappings" / "field.yaml"


def _lv_mapping() -> list[dict]:
    """The shipped mapping, with the LV feeder's bus voltages in V phase-to-neutral."""
    mapping = yaml.safe_load(FIELD_MAPPING.read_text())["mapping"]
    mapping = copy.deepcopy(mapping)
    for rule in mapping:
        rule["quantities"]["v"] = {"quantity": "v_pu", "unit": "V", "voltage": "phase"}
    return mapping


def _stored(server, db: str) -> pd.DataFrame:
    """Every stored point: measurement, sensor, t (epoch s, microseconds)."""
    params = urllib.parse.urlencode(
        {"q": 'SELECT "quality" FROM /.*/ GROUP BY "sensor"', "db": db, "epoch": "u"}
    )
    with urllib.request.urlopen(f"{server.url}/query?{params}", timeout=30) as answer:
        result = json.loads(answer.read())["results"][0]
    rows = [
        (s["name"], s["tags"]["sensor"], v[0] / 1e6)
        for s in result.get("series", [])
        for v in s["values"]
    ]
    return pd.DataFrame(rows, columns=["measurement", "sensor", "t"])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["json", "senml"])
def test_every_published_sample_of_the_field_emulator_is_stored_exactly_once(
    own_broker, own_influx, tmp_path, monkeypatch, fmt
):
    from adapters.ingest.simulator import IngestSimulator
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    speed, seconds = 5.0, 30
    plant = validate_scenario(tiny_raw(seconds))
    options = FieldOptions(
        plan=PlanOptions(fmt=fmt, gateway_size=40),
        impair=IMPAIRED,
        speed=speed,
        broker=own_broker.url,
        client_id=f"field-{fmt}",
    )
    prepared = prepare(plant, options, tmp_path / "field")  # the true plant, run up front
    monkeypatch.setattr(emulator, "prepare", lambda *args: prepared)
    results: dict = {}

    def field() -> None:
        results["field"] = run_field(plant, results["options"], tmp_path / "field")

    raw = tiny_raw(seconds + 10)  # the twin listens a little longer than the plant talks
    raw["ingest"] = {
        "broker": own_broker.url,
        "client_id": f"twin-ingest-{fmt}",
        "mapping": _lv_mapping(),
        "influx": {"url": own_influx.url, "db": "plant", "create_database": True},
    }
    twin = validate_scenario(raw)
    emulating = threading.Thread(target=field, daemon=True)
    step = IngestSimulator.step

    def hooked(self, time_s, inputs, max_advance):
        if time_s == 0:  # the plant clock of both starts with the twin's first step
            results["options"] = dataclasses.replace(options, wall_start=time.time())
            emulating.start()
        return step(self, time_s, inputs, max_advance)

    monkeypatch.setattr(IngestSimulator, "step", hooked)
    result = run_scenario(twin, tmp_path / "run", progress=False, rt_factor=1 / speed)
    emulating.join(THREAD_WAIT_S)
    assert results["field"].ok, results["field"].summary["problems"]
    stats = result.metadata["ingest"]
    assert result.metadata["status"] == "finished"
    truth = pd.read_parquet(tmp_path / "field" / "truth.parquet")
    published = truth[truth["published"]]
    expected = sorted(zip(published["sensor"], published["t"].round(6), strict=True))
    stored = _stored(own_influx, "plant")
    got = sorted(zip(stored["sensor"], stored["t"].round(6), strict=True))
    assert got == expected  # every published sample once, at its payload time
    assert stats["unknown"] == 0 and stats["skewed"] == 0 and stats["malformed"] == 0
    assert stats["duplicates"] == int((published["copies"] == 2).sum()) > 0
    assert stats["accepted"] == len(published) == stats["submitted"]
    assert stats["sensors"] == published["sensor"].nunique()
    assert stats["delivered"] > 0
