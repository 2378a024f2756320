"""Real Mosquitto and InfluxDB 1.6: raw values stored exactly once, logins and the ACL,
and a live run in real time across a broker restart and an InfluxDB restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adapters.influx.server import InfluxServer
from adapters.influx.transport import InfluxConfig
from adapters.ingest.store import RawStore
from adapters.ingest.subscribe import SubscriptionRefused, subscribe
from adapters.mqtt.auth import MqttAuth
from adapters.mqtt.broker import BrokerSecurity, Mosquitto
from adapters.mqtt.link import MqttLink
from tests.adapters.ingest.conftest import FIELD_RULES, START, make_ingestor
from tests.conftest import ROOT
from tests.support import THREAD_WAIT_S

BUSES = [f"bus_{i}" for i in range(1, 11)]
LINES = [f"line_{i}" for i in range(5)]


def stored(server: InfluxServer, db: str, measurement: str, field: str) -> dict[str, int]:
    """Stored points per sensor tag."""
    q = f'SELECT COUNT("{field}") FROM "{measurement}" GROUP BY "sensor"'
    answer = server.query(q, db=db)["results"][0]
    return {s["tags"]["sensor"]: int(s["values"][0][1]) for s in answer.get("series", [])}


def test_raw_points_carry_payload_time_tags_and_quality_and_rewrites_overwrite(
    elements, own_influx
):
    config = InfluxConfig(own_influx.url, db="plant", create_database=True, flush_interval_s=0.05)
    store = RawStore(config, "microgrid_day").open()
    ing = make_ingestor(elements, store=store)
    ing.clock.follow_s = 2.0
    payload = {"t": START + 1.25, "v": 231.0, "u": "V", "q": 1}
    for _ in range(2):  # the second is a duplicate: dropped
        ing.receive("field/bus_7/v", json.dumps(payload).encode(), 0.0)
    ing.receive("field/bess/p", json.dumps({"t": START + 1.5, "v": 9e6}).encode(), 0.0)
    stats = store.close()
    assert stats["points_written"] == 2 and ing.counts.duplicates == 1
    answer = own_influx.query("SELECT * FROM bus, battery", db="plant")["results"][0]["series"]
    rows = {s["name"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in answer}
    assert rows["bus"]["time"] == "2016-06-21T04:00:01.25Z"
    assert rows["bus"]["sensor"] == "field/bus_7/v" and rows["bus"]["source"] == "real"
    assert rows["bus"]["asset"] == "bus_7" and rows["bus"]["site"] == "microgrid_day"
    assert rows["bus"]["v_pu"] == pytest.approx(231.0 * 3**0.5 / (elements["bus_7"].vn_kv * 1e3))
    assert "run_id" not in rows["bus"]
    assert rows["battery"]["quality"] == 0 and rows["battery"]["p_kw"] == 9000  # implausible
    # a restarted twin (a new store) writing the same value again: still one point
    store = RawStore(config, "microgrid_day").open()
    again = make_ingestor(elements, store=store)
    again.clock.follow_s = 2.0
    again.receive("field/bus_7/v", json.dumps(payload).encode(), 0.0)
    store.close()
    assert stored(own_influx, "plant", "bus", "v_pu") == {"field/bus_7/v": 1}


PASSWORDS = {"twin": "tw1n-s3cret", "reader": "r3ad-s3cret", "nobody": "n0-s3cret"}


@pytest.fixture
def secure_broker(tmp_path: Path) -> Mosquitto:
    acl = tmp_path / "acl.conf"
    acl.write_text(
        "user twin\ntopic readwrite field/#\n\nuser reader\ntopic read field/#\n\n"
        "user nobody\ntopic write field/#\n"
    )
    security = BrokerSecurity(users=dict(PASSWORDS), acl_file=acl)
    broker = Mosquitto(tmp_path / "secure", security=security).start()
    yield broker
    broker.stop()


def _link(broker, user, password=None, client="ingest-test"):
    password = PASSWORDS.get(user, "") if password is None else password
    return MqttLink(broker.url, client, auth=MqttAuth(user, password))


def test_a_login_with_read_access_subscribes(secure_broker):
    got = []
    link = _link(secure_broker, "reader")
    # it may not write the probe: read access stays unverified, which is no error
    assert subscribe(link, ["field/#"], got.append, 1)["probe"] == "unverified"
    publisher = _link(secure_broker, "twin", client="pub").open()
    publisher.publish("field/bus_7/v", b"1")
    publisher.close()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    link.close()
    assert [m.topic for m in got] == ["field/bus_7/v"]


def test_a_login_that_may_read_and_write_proves_read_access(secure_broker):
    link = _link(secure_broker, "twin")
    assert subscribe(link, ["field/#"], lambda m: None, 1)["probe"] == "ok"
    link.close()


def test_a_login_the_acl_gives_no_read_access_is_a_named_error(secure_broker):
    with pytest.raises(SubscriptionRefused) as caught:
        subscribe(_link(secure_broker, "nobody"), ["field/#"], lambda m: None, 1)
    message = str(caught.value)
    assert "refused the subscription to field/#" in message and "user 'nobody'" in message
    assert "no read access" in message and "n0-s3cret" not in message


def test_a_wrong_password_is_refused_without_showing_it(secure_broker):
    with pytest.raises(ConnectionError, match="check the username and password") as caught:
        subscribe(_link(secure_broker, "reader", "wrong-pw"), ["field/#"], lambda m: None, 1)
    assert "wrong-pw" not in str(caught.value)


def test_a_run_whose_ingest_login_may_not_subscribe_fails_at_set_up(
    secure_broker, day_raw, tmp_path
):
    from twin.errors import RunError
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    day_raw.update(duration="5s", step="1s")
    day_raw["ingest"] = {
        "broker": secure_broker.url,
        "username": "nobody",
        "password_env": "TEST_INGEST_PW",
        "mapping": FIELD_RULES,
    }
    scenario = validate_scenario(day_raw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEST_INGEST_PW", PASSWORDS["nobody"])
        with pytest.raises(RunError, match="refused the subscription to field/#"):
            run_scenario(scenario, tmp_path / "run", progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "failed" and PASSWORDS["nobody"] not in json.dumps(run)


class Publisher(threading.Thread):
    """A field plant: 10 bus voltages per topic, 5 line flows in a gateway JSON array and
    a SenML pack (pv_roof, bess), one sample per plant second, through an MqttLink.

    It starts with the twin's first step (``started``), on the same plant clock."""

    def __init__(self, url: str, speed: float, samples: int) -> None:
        super().__init__(daemon=True)
        self.link = MqttLink(url, "field-plant", buffer_max=1_000_000, clean_session=False)
        self.speed, self.samples = speed, samples
        self.started = threading.Event()
        self.wall_start = 0.0
        self.done = threading.Event()

    def messages(self, k: int) -> list[tuple[str, bytes]]:
        t = START + k + 0.1
        out = [
            (f"field/{b}/v", json.dumps({"t": t, "v": 231.0 + 0.01 * k, "u": "V"}).encode())
            for b in BUSES
        ]
        batch = [{"n": f"{line}/p_from", "t": t, "v": 1000.0 + k, "u": "W"} for line in LINES]
        out.append(("field/gw/g1", json.dumps(batch).encode()))
        pack = [
            {"bn": "field/", "bt": t, "n": "pv_roof/p", "u": "W", "v": 2000.0},
            {"n": "bess/soc", "u": "%", "v": 50.0},
        ]
        out.append(("field/gw/g2/senml", json.dumps(pack).encode()))
        return out

    def run(self) -> None:
        self.link.open()
        assert self.started.wait(THREAD_WAIT_S)
        for k in range(self.samples):
            due = self.wall_start + (k + 0.1) / self.speed
            time.sleep(max(0.0, due - time.time()))
            for topic, payload in self.messages(k):
                self.link.publish(topic, payload)
        self.link.flush(60)
        self.done.set()


def _in_background(call) -> None:
    threading.Thread(target=call, daemon=True).start()


@pytest.mark.slow
def test_a_live_run_stores_every_value_exactly_once_across_broker_and_influx_restarts(
    own_broker, own_influx, tmp_path, monkeypatch
):
    from adapters.ingest.simulator import IngestSimulator
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    speed, samples = 2.0, 40
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(duration="60s", step="1s")
    raw["ingest"] = {
        "broker": own_broker.url,
        "client_id": "twin-ingest-live-test",
        "mapping": FIELD_RULES,
        "max_delay_s": 120,
        "influx": {"url": own_influx.url, "db": "plant", "create_database": True, "retries": 1},
        "trace": str(tmp_path / "trace.parquet"),
    }
    scenario = validate_scenario(raw)
    # the twin's persistent session exists before the plant starts: nothing is missed
    session = MqttLink(own_broker.url, "twin-ingest-live-test", clean_session=False)
    subscribe(session, ["field/#"], lambda m: None, 1)
    session.close()
    plant = Publisher(own_broker.url, speed, samples)
    plant.start()

    step = IngestSimulator.step

    def hooked(self, time_s, inputs, max_advance):
        if time_s == 0:  # the plant clock starts with the first step (no wall_start)
            plant.wall_start = time.time()
            plant.started.set()
        elif time_s == 8:
            _in_background(own_broker.restart)
        elif time_s == 24:
            _in_background(lambda: (own_influx.stop(), time.sleep(2.0), own_influx.start()))
        return step(self, time_s, inputs, max_advance)

    monkeypatch.setattr(IngestSimulator, "step", hooked)
    result = run_scenario(scenario, tmp_path / "run", progress=False, rt_factor=1 / speed)
    assert plant.done.wait(THREAD_WAIT_S)
    plant.link.close()
    stats = result.metadata["ingest"]
    assert result.metadata["status"] == "finished" and not result.metadata.get("check_failures")
    expected = {f"field/{b}/v": samples for b in BUSES}
    assert stored(own_influx, "plant", "bus", "v_pu") == expected
    assert stored(own_influx, "plant", "line", "p_from_kw") == {
        f"field/{line}/p_from": samples for line in LINES
    }
    assert stored(own_influx, "plant", "pv", "p_kw") == {"field/pv_roof/p": samples}
    assert stored(own_influx, "plant", "battery", "soc") == {"field/bess/soc": samples}
    values = samples * (len(BUSES) + len(LINES) + 2)
    assert stats["accepted"] == values and stats["submitted"] == values
    assert stats["values"] == values + stats["duplicates"]
    assert stats["unknown"] == stats["skewed"] == stats["malformed"] == 0
    assert stats["link"]["connects"] >= 2  # the broker restart was lived through
    store = stats["store"]
    assert store["points_written"] >= values and store["spooled_points_left"] == 0
    assert stats["steps"] == 60 and 0 < stats["windows"] <= 60
    assert stats["sensors"] == len(BUSES) + len(LINES) + 2
    assert stats["read_probe"] == "ok" and stats["delivered"] > 0
    trace = pd.read_parquet(tmp_path / "trace.parquet")
    assert len(trace) == values and trace["stored_wall"].notna().all()
    assert (trace["stored_wall"] >= trace["received_wall"]).all()
