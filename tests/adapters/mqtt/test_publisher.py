"""Telemetry of a run on a real Mosquitto, read back by a separate ``mosquitto_sub``."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import yaml

from tests.conftest import ROOT
from tests.support import start_realtime_run
from twin.results import load_results
from twin.run import run_scenario
from twin.scenario import validate_scenario

SITE = "microgrid_day"


def _expected(out_dir) -> dict[str, np.ndarray]:
    """topic -> the recorded values of the run (source twin), in step order.

    States (SoC, energy, SoH, t_c) have one value more: at the start and the end.
    """
    results = load_results(out_dir)
    results = results[results["source"] == "twin"].sort_values("time")
    return {
        f"twin/{SITE}/{asset}/{quantity}": group["value"].to_numpy()
        for (asset, quantity), group in results.groupby(["asset", "quantity"], observed=True)
    }


def _assert_values(payloads: list[dict], expected: np.ndarray, topic: str) -> None:
    got = np.array([np.nan if p["value"] is None else p["value"] for p in payloads])
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True, err_msg=topic)


def test_telemetry_arrives_complete_and_in_order(
    mosquitto, subscriber_factory, tmp_path, day_scenario
):
    sub = subscriber_factory(mosquitto, f"twin/{SITE}/#", "telemetry-sub")
    mqtt = {"broker": mosquitto.url, "bundle": "never", "client_id": "t-telemetry"}
    result = run_scenario(day_scenario(mqtt=mqtt), tmp_path / "run")
    expected = _expected(result.out_dir)
    total = sum(len(v) for v in expected.values())
    sub.wait_for(total, f"twin/{SITE}/", 30.0)
    received = sub.by_topic(f"twin/{SITE}/")
    assert set(received) == set(expected)  # every recorded series, nothing else
    for topic, payloads in received.items():
        steps = list(range(len(expected[topic])))
        assert [p["seq"] for p in payloads] == steps, topic  # complete, in order
        _assert_values(payloads, expected[topic], topic)
    soc = received[f"twin/{SITE}/bess/soc"]
    assert soc[0]["unit"] == "1"
    # a state is stamped with its instant: soc_init at the start, the end state at the end
    assert soc[0]["ts"] == "2016-06-21T04:00:00Z" and soc[0]["value"] == 0.3
    assert soc[-1]["ts"] == "2016-06-22T04:00:00Z" and len(soc) == 97
    assert received[f"twin/{SITE}/bess/p_kw"][4]["ts"] == "2016-06-21T05:00:00Z"
    assert len(received[f"twin/{SITE}/bess/p_kw"]) == 96
    stats = result.metadata["mqtt"]["publisher"]
    assert stats["published"] == stats["acked"] >= total  # plus birth and status messages
    assert stats["dropped"] == 0 and stats["undelivered"] == 0


def test_birth_messages_and_status_are_retained(
    mosquitto, subscriber_factory, tmp_path, day_scenario
):
    mqtt = {"broker": mosquitto.url, "publish": ["battery/*/*"], "client_id": "t-birth"}
    result = run_scenario(day_scenario(mqtt=mqtt), tmp_path / "run")
    run_id = result.metadata["run_id"]
    late = subscriber_factory(mosquitto, f"twin/{SITE}/+/meta", "late-sub")  # after the run
    late.wait_for(1, f"twin/{SITE}/bess/meta", 5.0)
    meta = json.loads(dict(late.messages)[f"twin/{SITE}/bess/meta"])
    assert meta["kind"] == "battery" and meta["bus"] == 7
    assert meta["run_id"] == result.metadata["run_id"]  # which run the telemetry is
    assert meta["scenario_hash"] == result.metadata["scenario_hash"]
    assert meta["units"]["p_kw"] == "kW" and meta["units"]["soc"] == "1"
    status = subscriber_factory(mosquitto, f"twin/{SITE}/status", "status-sub")
    status.wait_for(1, f"twin/{SITE}/status", 5.0)
    final = json.loads(dict(status.messages)[f"twin/{SITE}/status"])
    assert final == {"state": "offline", "run_id": run_id}  # clean end, of this run


def test_last_will_marks_a_dead_twin_offline(mosquitto, subscriber_factory):
    sub = subscriber_factory(mosquitto, "will/site/status", "will-sub")
    code = (
        "from adapters.mqtt.link import MqttLink; import time;"
        f"link = MqttLink({mosquitto.url!r}, 'will-pub', will=('will/site/status', b'offline'))"
        ".open(); link.publish('will/site/status', b'online', retain=True); link.flush();"
        "print('up', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "up"
    sub.wait_for(1, "will/", 5.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    sub.wait_for(2, "will/", 30.0)  # the broker notices at keepalive x 1.5 at the latest
    assert [p for _, p in sub.messages if _.startswith("will/")] == ["online", "offline"]


def test_bundled_telemetry_carries_every_value(
    mosquitto, subscriber_factory, tmp_path, day_scenario
):
    sub = subscriber_factory(mosquitto, f"twin/{SITE}/bundle/#", "bundle-sub")
    mqtt = {"broker": mosquitto.url, "bundle": "always", "client_id": "t-bundle"}
    result = run_scenario(day_scenario(mqtt=mqtt), tmp_path / "run")
    expected = _expected(result.out_dir)
    kinds = set(load_results(result.out_dir)["kind"].astype(str))
    sub.wait_for(96 * len(kinds), f"twin/{SITE}/bundle/", 30.0)
    bundles = sub.by_topic(f"twin/{SITE}/bundle/")
    assert set(bundles) == {f"twin/{SITE}/bundle/{kind}" for kind in kinds}
    rebuilt: dict[str, list] = {}
    for topic, payloads in bundles.items():
        # the battery's bundles carry its states at the end of the run too
        steps = 97 if topic.endswith("/battery") else 96
        assert [p["seq"] for p in payloads] == list(range(steps))
        for p in payloads:
            for asset, values in p["values"].items():
                for quantity, value in values.items():
                    topic = f"twin/{SITE}/{asset}/{quantity}"
                    rebuilt.setdefault(topic, []).append({"value": value})
    assert set(rebuilt) == set(expected)
    for topic, payloads in rebuilt.items():
        _assert_values(payloads, expected[topic], topic)


def test_no_qos1_message_is_lost_across_a_broker_restart(
    own_broker, subscriber_factory, tmp_path, day_raw
):
    """The broker goes down mid-run (SIGTERM) and comes back with its persistence file."""
    sub = subscriber_factory(own_broker, f"twin/{SITE}/#", "restart-sub")
    raw = {**day_raw, "mqtt": {"broker": own_broker.url, "client_id": "t-restart"}}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = start_realtime_run(path, 10.0, "--out", str(tmp_path / "run"))
    sub.wait_for(200, f"twin/{SITE}/", 60.0)  # the run is publishing
    own_broker.stop()
    down_at = len(sub.messages)
    time.sleep(2.0)
    own_broker.start()
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    expected = _expected(tmp_path / "run")
    sub.wait_for(sum(len(v) for v in expected.values()), f"twin/{SITE}/", 60.0)
    assert len(sub.messages) > down_at
    received = sub.by_topic(f"twin/{SITE}/")
    assert set(received) == set(expected)
    for topic, payloads in received.items():
        seqs = [p["seq"] for p in payloads]
        # QoS 1 is "at least once": what the broker had sent but not yet seen
        # acknowledged before it stopped comes again. First arrivals must be complete
        # and in order.
        first = list(dict.fromkeys(seqs))
        assert first == list(range(len(expected[topic]))), f"{topic}: gaps or disorder"
    meta = json.loads((tmp_path / "run" / "run.json").read_text())["mqtt"]["publisher"]
    assert meta["connects"] >= 2 and meta["dropped"] == 0 and meta["undelivered"] == 0
    assert meta["buffered_peak"] > 0  # messages did wait for the broker
    assert "reconnected" in output and "Simulation too slow" not in output
    assert meta["published"] == meta["acked"] >= sum(len(v) for v in expected.values())


def test_telemetry_lost_while_the_broker_is_down_fails_the_run(
    own_broker, subscriber_factory, tmp_path, day_raw
):
    """QoS 0 telemetry published while the broker is away is lost: counted, and the run fails."""
    sub = subscriber_factory(own_broker, f"twin/{SITE}/#", "loss-sub")
    mqtt = {"broker": own_broker.url, "client_id": "t-loss", "qos": 0}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({**day_raw, "mqtt": mqtt}))
    run = start_realtime_run(path, 10.0, "--out", str(tmp_path / "run"))
    sub.wait_for(200, f"twin/{SITE}/", 60.0)  # the run is publishing
    own_broker.stop()
    time.sleep(2.0)
    own_broker.start()
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 1, output  # finished its steps, failed a check
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    lost = meta["mqtt"]["publisher"]["dropped"] + meta["mqtt"]["publisher"]["undelivered"]
    assert meta["status"] == "failed" and lost > 0
    failed = {f["check"]: f["message"] for f in meta["checks"]["failed"]}
    assert f"{lost} MQTT message(s) dropped" in failed["mqtt_delivery"]
    assert "mqtt_delivery" in output
    sent = meta["mqtt"]["publisher"]["published"] + meta["mqtt"]["publisher"]["dropped"]
    assert sub.count(f"twin/{SITE}/") < sent  # the loss is real, not a counting artefact


def test_the_uncontrolled_comparison_does_not_speak_for_the_run_on_mqtt(
    mosquitto, subscriber_factory, tmp_path
):
    """The EV comparison run is a what-if, not the twin: it publishes nothing."""
    ev_raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    ev_raw.update(duration="2h")
    ev_raw["mqtt"] = {"broker": mosquitto.url, "publish": ["*"], "client_id": "t-ev"}
    result = run_scenario(validate_scenario(ev_raw), tmp_path / "run")
    site = ev_raw["name"]
    status = subscriber_factory(mosquitto, f"twin/{site}/status", "ev-status-sub")
    status.wait_for(1, f"twin/{site}/status", 5.0)
    final = json.loads(dict(status.messages)[f"twin/{site}/status"])
    assert final["run_id"] == result.metadata["run_id"]  # not the comparison's
    child = json.loads((tmp_path / "run" / "uncontrolled" / "run.json").read_text())
    assert "mqtt" not in child and child["scenario"]["mqtt"] is None
