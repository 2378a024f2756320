"""The ingest section in a run: the mosaik simulator's outputs, counters and run check."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from adapters.ingest.component import plan_ingest
from adapters.ingest.simulator import IngestSimulator
from adapters.ingest.subscribe import subscribe
from adapters.mqtt.link import MqttLink
from tests.adapters.ingest.conftest import FIELD_RULES, START
from twin.plan import WorldPlan, _resolved


def _queue(broker, client_id: str, messages: list[tuple[str, bytes]]) -> None:
    """Create the twin's persistent session and queue ``messages`` for it."""
    session = MqttLink(broker.url, client_id, clean_session=False)
    subscribe(session, ["field/#", "plant/#"], lambda m: None, 1)
    session.close()
    plant = MqttLink(broker.url, "plant-pub")
    plant.open()
    for topic, payload in messages:
        plant.publish(topic, payload)
    assert plant.flush(30)
    plant.close()


def test_the_simulator_serves_readings_and_the_sensor_table(own_broker, day_raw, tmp_path):
    from twin.scenario import validate_scenario

    day_raw.update(duration="10s", step="1s")
    day_raw["ingest"] = {"broker": own_broker.url, "mapping": FIELD_RULES, "client_id": "ing-1"}
    scenario = validate_scenario(day_raw)
    plan = WorldPlan(scenario.clock(), tmp_path, {}, {"run_id": "r"})
    plan_ingest(scenario, plan)
    init = _resolved(plan.simulators["ingest"].init)
    assert init["config"]["influx"] is None  # no outputs.influx: nothing stored
    _queue(
        own_broker,
        "ing-1",
        [
            ("field/bus_7/v", json.dumps({"t": START + 0.5, "v": 231.0, "u": "V"}).encode()),
            ("field/bess/soc", json.dumps({"t": START + 0.2, "v": 40, "q": 0}).encode()),
            ("field/bess/soc", json.dumps({"t": START + 1.2, "v": 41}).encode()),
        ],
    )
    sim = IngestSimulator()
    meta = sim.init("ingest", clock=init["clock"], config=init["config"])
    assert meta["models"]["Ingest"]["attrs"] == ["readings", "sensors"]
    assert sim.create(1, "Ingest") == [{"eid": "ingest", "type": "Ingest", "rel": []}]
    deadline = time.monotonic() + 30
    while sim.ingestor._waiting.__len__() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # before the first step the messages wait for the plant clock
    assert sim.step(0, {}, 10) == 1
    first = sim.get_data({"ingest": ["readings", "sensors"]})["ingest"]
    assert first["readings"]["t_s"] == -1.0 and first["readings"]["ids"].size == 0
    assert first["sensors"] == [
        ("field/bus_7/v", "bus_7", "v_pu", None),
        ("field/bess/soc", "bess", "soc", None),
    ]
    sim.step(1, {}, 10)
    readings = sim.get_data({"ingest": ["readings"]})["ingest"]["readings"]
    assert readings["t_s"] == 0.0 and readings["ids"].tolist() == [0, 1]
    np.testing.assert_allclose(readings["values"][1], 0.40)
    assert readings["quality"].tolist() == [1, 0] and readings["flags"].tolist() == [0, 0]
    sim.step(2, {}, 10)
    assert sim.get_data({"ingest": ["readings"]})["ingest"]["readings"]["ids"].tolist() == [1]
    sim.finalize()
    stats = json.loads((tmp_path / "parts" / "ingest.json").read_text())
    assert stats["accepted"] == 3 and stats["delivered"] == 3 and "store" not in stats


def test_a_run_with_too_many_unknown_messages_fails_its_ingest_check(own_broker, day_raw, tmp_path):
    from twin.run import RunCheckError, run_scenario
    from twin.scenario import validate_scenario

    day_raw.update(duration="5s", step="1s")
    day_raw["ingest"] = {
        "broker": own_broker.url,
        "client_id": "ing-2",
        "topics": ["field/#", "plant/#"],
        "mapping": FIELD_RULES,
        "max_unknown_share": 0.5,
    }
    scenario = validate_scenario(day_raw)
    known = ("field/bus_7/v", json.dumps({"t": START + 0.5, "v": 231.0, "u": "V"}).encode())
    _queue(own_broker, "ing-2", [known] + [("plant/meter/x", b"1.0")] * 3)
    with pytest.raises(RunCheckError) as caught:
        run_scenario(scenario, tmp_path / "run", progress=False)
    (failure,) = [f for f in caught.value.failures if f.check == "ingest"]
    assert "75.0% of 4 messages had no known sensor" in failure.message
    assert "plant/meter/x" in failure.message
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "failed"
    assert run["ingest"]["unknown_top"] == {"plant/meter/x": 3}
    assert run["ingest"]["accepted"] == 1 and caught.value.result.kpis["ingest_unknown"] == 3.0


def test_unknown_messages_within_the_share_do_not_fail_the_run(own_broker, day_raw, tmp_path):
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    day_raw.update(duration="3s", step="1s")
    day_raw["ingest"] = {
        "broker": own_broker.url,
        "client_id": "ing-3",
        "mapping": FIELD_RULES,
        "max_unknown_share": 0.5,
    }
    known = ("field/bus_7/v", json.dumps({"t": START + 0.5, "v": 231.0, "u": "V"}).encode())
    _queue(own_broker, "ing-3", [known, known, ("field/mystery/x", b"1")])
    result = run_scenario(validate_scenario(day_raw), tmp_path / "run", progress=False)
    assert result.metadata["status"] == "finished"
    assert result.metadata["ingest"]["unknown_messages"] == 1
    assert result.metadata["ingest"]["duplicates"] == 1


def test_the_section_needs_a_mapping_and_keeps_the_password_out_of_run_json(day_raw):
    from twin.errors import ScenarioError
    from twin.scenario import validate_scenario

    with pytest.raises(ScenarioError, match="give mapping"):
        validate_scenario({**day_raw, "ingest": {"broker": "mqtt://h"}})
    with pytest.raises(ScenarioError, match="put the login in username"):
        validate_scenario(
            {**day_raw, "ingest": {"broker": "mqtt://u:pw@h", "mapping": FIELD_RULES}}
        )
    raw = {**day_raw, "ingest": {"username": "u", "password": "s3cret", "mapping": FIELD_RULES}}
    dumped = json.dumps(validate_scenario(raw).model_dump(mode="json"))
    assert "s3cret" not in dumped


def test_ingest_v2_influx_is_refused(day_raw):
    from twin.errors import ScenarioError
    from twin.scenario import validate_scenario

    influx = {"url": "http://h:8086", "api": "v2", "token": "t", "org": "o", "bucket": "b"}
    with pytest.raises(ScenarioError, match="ingest.influx.api: raw points are written at ns"):
        validate_scenario({**day_raw, "ingest": {"mapping": FIELD_RULES, "influx": influx}})


def test_a_what_if_beside_the_run_takes_no_plant_data(day_raw):
    from twin.component import baseline_of
    from twin.scenario import validate_scenario

    scenario = validate_scenario({**day_raw, "ingest": {"mapping": FIELD_RULES}})
    assert baseline_of(scenario).ingest is None


def test_setup_waits_for_the_plant_and_runs_its_clock_at_the_runs_pace():
    from adapters.ingest.window import PlantClock
    from twin.realtime import LatenessMeter

    sim = IngestSimulator()
    sim.cfg = {"wall_start": time.time() + 7200.0}
    with pytest.raises(ValueError, match="ingest.wall_start is .* ahead"):
        sim.setup_done()
    sim.cfg = {"wall_start": time.time() - 1.0, "speed": None}
    sim.ingestor = SimpleNamespace(clock=PlantClock(0.0, sim.cfg["wall_start"], 1.0))
    sim.lateness = LatenessMeter(0.25, 0.1)  # a run four times faster than real time
    sim.setup_done()
    assert sim.ingestor.clock.speed == 4.0
    sim.cfg["speed"] = 2.0  # the section's own speed wins
    sim.ingestor.clock.speed = 2.0
    sim.setup_done()
    assert sim.ingestor.clock.speed == 2.0
