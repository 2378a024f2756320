"""A broker restart mid-run: the outbox rides it out, nothing is lost or counted twice."""

import json
import threading
import time

import pandas as pd

from adapters.field.emulator import FieldOptions, run_field
from adapters.field.plan import PlanOptions
from tests.adapters.field.conftest import tiny_raw
from tests.adapters.mqtt.conftest import own_broker  # noqa: F401 - a shared fixture
from twin.scenario import validate_scenario


def test_the_outbox_rides_out_a_broker_restart(own_broker, subscriber_factory, tmp_path):  # noqa: F811
    sub = subscriber_factory(own_broker, "field/#", "field-restart-sub")
    scenario = validate_scenario(tiny_raw(40))
    options = FieldOptions(
        plan=PlanOptions(groups=("bus", "poc")),
        speed=5.0,
        broker=own_broker.url,
        client_id="field-restart",
    )
    done = {}
    runner = threading.Thread(
        target=lambda: done.setdefault("result", run_field(scenario, options, tmp_path))
    )
    runner.start()
    assert sub.wait_for(50, "field/", 60.0)  # publishing
    own_broker.stop()
    time.sleep(1.5)
    own_broker.start()
    runner.join(120)
    result = done["result"]
    assert result.ok, result.summary["problems"]
    link = result.summary["link"]
    assert link["connects"] >= 2 and link["dropped"] == 0 and link["buffered_peak"] > 0
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    expected = {(k, round(t, 6)) for k, t in truth.loc[truth["published"], ["sensor", "t"]].values}
    assert sub.wait_for(len(expected), "field/", 60.0)
    received = {
        (topic, round(json.loads(payload)["t"], 6))
        for topic, payload in sub.messages
        if topic.startswith("field/")
    }
    assert received == expected  # QoS 1: at least once, so compared as sets
