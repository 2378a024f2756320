"""Logins, ACL and TLS on a real Mosquitto: refused clearly, never leaked."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from adapters.mqtt.auth import MqttAuth, redacted
from adapters.mqtt.broker import BrokerSecurity, Mosquitto
from adapters.mqtt.link import MqttLink
from twin.errors import ScenarioError
from twin.run import RunCheckError, run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[3]
PASSWORDS = {"twin": "tw1n-s3cret", "bess": "b3ss-s3cret", "pv_roof": "pv-s3cret"}


@pytest.fixture
def secure_broker(tmp_path, test_ca):
    """Users twin, bess and pv_roof; the shipped ACL; TLS with client certificates."""
    security = BrokerSecurity(
        users=dict(PASSWORDS),
        ca_file=test_ca["ca"],
        cert_file=test_ca["server"],
        key_file=test_ca["server.key"],
        require_certificate=True,
    )
    broker = Mosquitto(tmp_path / "secure", security=security).start()
    yield broker
    broker.stop()


def _auth(test_ca, user: str | None, password: str | None = None, **changes) -> MqttAuth:
    files = {
        "ca_file": str(test_ca["ca"]),
        "cert_file": str(test_ca["client"]),
        "key_file": str(test_ca["client.key"]),
    }
    password = PASSWORDS.get(user or "") if password is None else password
    return MqttAuth(user, password, tls=True, **{**files, **changes})


def test_login_in_the_url_is_moved_out_and_kept_secret(day_raw):
    raw = {**day_raw, "mqtt": {"broker": "mqtts://twin:tw1n-s3cret@broker.example"}}
    mqtt = validate_scenario(raw).mqtt
    assert mqtt.broker == "mqtts://broker.example:8883" and mqtt.username == "twin"
    assert mqtt.password.get_secret_value() == "tw1n-s3cret"
    dumped = json.dumps(validate_scenario(raw).model_dump(mode="json"))
    assert "tw1n-s3cret" not in dumped and "**********" in dumped
    assert redacted("mqtt://twin:tw1n-s3cret@h:1") == "mqtt://twin:***@h:1"


def test_the_right_login_over_tls_connects(secure_broker, test_ca):
    link = MqttLink(secure_broker.url, "t-ok", auth=_auth(test_ca, "twin")).open()
    assert link.connected
    link.close()


@pytest.mark.parametrize(
    ("user", "password", "changes", "expected"),
    [
        ("twin", "wrong", {}, r"refused the connection \(Not authorized\) for user 'twin'"),
        (None, None, {}, r"refused the connection \(Not authorized\) for an anonymous client"),
        ("twin", None, {"ca_file": None}, "TLS handshake failed"),  # not our CA: refused
    ],
)
def test_bad_logins_are_refused_by_name(secure_broker, test_ca, user, password, changes, expected):
    auth = _auth(test_ca, user, password, **changes)
    with pytest.raises(ConnectionError, match=expected) as info:
        MqttLink(secure_broker.url, "t-bad", auth=auth, connect_timeout_s=30).open()
    assert secure_broker.url in str(info.value)
    assert not any(p in str(info.value) for p in (*PASSWORDS.values(), "wrong"))


def test_a_client_without_a_certificate_is_refused(secure_broker, test_ca):
    auth = _auth(test_ca, "twin", cert_file=None, key_file=None)
    with pytest.raises(ConnectionError, match=secure_broker.url):
        MqttLink(secure_broker.url, "t-nocert", auth=auth, connect_timeout_s=30).open()


def test_a_device_writes_only_its_own_topics(secure_broker, test_ca):
    received: list[tuple[str, bytes]] = []
    marker = threading.Event()
    twin = MqttLink(secure_broker.url, "t-twin", auth=_auth(test_ca, "twin")).open()

    def on_message(message) -> None:
        received.append((message.topic, message.payload))
        if message.payload == b"done":
            marker.set()

    twin.subscribe("field/#", on_message)
    twin.subscribe("twin/#", on_message)
    twin.flush()
    bess = MqttLink(secure_broker.url, "t-bess", auth=_auth(test_ca, "bess")).open()
    for topic in (
        "field/hil_battery/bess/p_kw",  # its own measurement: allowed
        "field/hil_battery/pv_roof/p_kw",  # another device's: dropped by the broker
        "field/hil_battery/bess/set/p_set_kw",  # its own setpoint: only the twin writes it
        "twin/hil_battery/status",  # the twin's telemetry
    ):
        bess.publish(topic, b"60")
    bess.publish("field/hil_battery/bess/soc", b"done")  # after all of the above
    bess.flush()
    assert marker.wait(30)
    assert received == [
        ("field/hil_battery/bess/p_kw", b"60"),
        ("field/hil_battery/bess/soc", b"done"),
    ]
    bess.close()
    twin.close()


@pytest.mark.parametrize("qos", [1, 2])
def test_a_publication_the_acl_refuses_is_counted_as_refused(secure_broker, test_ca, caplog, qos):
    """MQTT v5: Mosquitto's PUBACK (QoS 2: PUBREC) says 0x87 (Not authorized); under
    3.1.1 it said nothing."""
    bess = MqttLink(secure_broker.url, "t-refused", auth=_auth(test_ca, "bess")).open()
    for _ in range(3):  # accepted by the link ...
        assert bess.publish("twin/hil_battery/bess/p_kw", b"1", qos=qos)
    bess.publish("field/hil_battery/bess/p_kw", b"2", qos=qos)  # its own topic: allowed
    assert bess.flush(10.0) and bess.pending == 0  # ... answered, not left pending
    bess.close()
    stats = bess.stats
    assert stats.published == 4 and stats.acked == 1
    assert stats.refused == stats.dropped == 3
    assert stats.refused_topics == {"twin/hil_battery/bess/p_kw": 3}
    assert stats.as_dict()["refused_topics"] == {"twin/hil_battery/bess/p_kw": 3}
    logged = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
    assert len(logged) == 1  # once per topic
    assert "on twin/hil_battery/bess/p_kw for user 'bess' (Not authorized)" in logged[0]
    assert secure_broker.url in logged[0] and PASSWORDS["bess"] not in logged[0]


def _secure_hil(url: str, test_ca, tmp_path: Path) -> dict:
    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    (tmp_path / "bess.pw").write_text(PASSWORDS["bess"] + "\n")
    tls = {"ca_file": str(test_ca["ca"]), "cert_file": str(test_ca["client"]),
           "key_file": str(test_ca["client.key"])}  # fmt: skip
    raw["mqtt"].update(broker=url, tls=tls, username="twin", password_env="TWIN_TEST_MQTT_PW")
    raw["mqtt"]["devices"][0]["credentials"] = {
        "username": "bess",
        "password_file": str(tmp_path / "bess.pw"),
    }
    return raw


def test_hil_over_tls_with_logins_and_the_acl(secure_broker, test_ca, tmp_path, monkeypatch):
    monkeypatch.setenv("TWIN_TEST_MQTT_PW", PASSWORDS["twin"])
    scenario = validate_scenario(_secure_hil(secure_broker.url, test_ca, tmp_path))
    result = run_scenario(scenario, tmp_path / "run")  # the emulated device logs in as bess
    assert result.metadata["status"] == "finished"
    assert result.kpis["device_fallback_steps_bess"] == 0
    links = [
        result.metadata["mqtt"]["publisher"],
        result.metadata["mqtt"]["devices"]["bess"]["link"],
    ]
    for link in links:  # MQTT v5: the broker would say if it refused any of them
        assert link["refused"] == 0 and link["refused_topics"] == {} and link["dropped"] == 0
        assert link["acked"] == link["published"] > 0 and link["username"] == "twin"
    written = "".join(p.read_text() for p in result.out_dir.rglob("*.json"))
    written += "".join(p.read_text() for p in result.out_dir.glob("*.log"))
    assert not any(p in written for p in PASSWORDS.values())


def test_a_wrong_password_stops_the_cli_with_a_clear_message(secure_broker, test_ca, tmp_path):
    raw = _secure_hil(secure_broker.url, test_ca, tmp_path)
    raw["mqtt"].pop("password_env")
    raw["mqtt"]["password"] = "not-the-password"
    raw["mqtt"]["devices"][0].update(emulate=None, credentials=None)
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", str(path), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"MQTT broker {secure_broker.url} refused the connection" in output
    assert "Traceback" not in output and "not-the-password" not in output
    run_json = (tmp_path / "run" / "run.json").read_text()
    assert json.loads(run_json)["status"] == "failed" and "not-the-password" not in run_json


def test_twin_broker_makes_a_secure_broker(tmp_path, test_ca):
    from adapters.server import free_port

    port = free_port()
    env = {**os.environ, "TWIN_PW": PASSWORDS["twin"], "BESS_PW": PASSWORDS["bess"]}
    command = [
        sys.executable, "-m", "twin.cli", "broker", "--data-dir", str(tmp_path / "b"),
        "--port", str(port), "--user", "twin=TWIN_PW", "--user", "bess=BESS_PW",
        "--tls-cert", str(test_ca["server"]), "--tls-key", str(test_ca["server.key"]),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once it serves
        url = f"mqtts://127.0.0.1:{port}"
        assert url in line
        ca = {"ca_file": str(test_ca["ca"]), "cert_file": None, "key_file": None}
        MqttLink(url, "t-cli", auth=_auth(test_ca, "bess", **ca)).open().close()
        with pytest.raises(ConnectionError, match="Not authorized"):
            MqttLink(url, "t-cli-bad", auth=_auth(test_ca, "bess", "nope", **ca)).open()
        conf = (tmp_path / "b" / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in conf and "acl_file" in conf
        passwd = (tmp_path / "b" / "passwd").read_text()
        assert "bess:$7$" in passwd and PASSWORDS["bess"] not in passwd
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_telemetry_the_acl_refuses_fails_the_run(
    secure_broker, test_ca, tmp_path, monkeypatch, caplog
):
    """``mqtt.prefix: plant``: user twin may not write plant/#, so the broker refuses
    every telemetry message (MQTT v5 PUBACK 0x87); the run must not report delivery."""
    monkeypatch.setenv("TWIN_TEST_MQTT_PW", PASSWORDS["twin"])
    raw = _secure_hil(secure_broker.url, test_ca, tmp_path)
    raw["mqtt"]["prefix"] = "plant"
    with pytest.raises(RunCheckError) as info:
        run_scenario(validate_scenario(raw), tmp_path / "run")
    meta = info.value.result.metadata
    assert meta["status"] == "failed"
    publisher = meta["mqtt"]["publisher"]
    assert publisher["refused"] == publisher["published"] > 0  # every message, counted
    assert publisher["acked"] == 0 and publisher["undelivered"] == 0
    assert publisher["refused_topics"]["plant/hil_battery/bundle/battery"] == 97
    assert publisher["refused_topics"]["plant/hil_battery/status"] == 2  # online, offline
    residuals = meta["mqtt"]["devices"]["bess"]["link"]  # residuals refused, setpoints not
    assert set(residuals["refused_topics"]) == {
        f"plant/hil_battery/bess/residual/{q}" for q in ("p_kw", "soc", "t_c")
    }
    (message,) = [f["message"] for f in meta["checks"]["failed"] if f["check"] == "mqtt_delivery"]
    assert f"the broker refused {publisher['refused']} message(s) of publisher" in message
    assert "plant/hil_battery/bundle/battery (97)" in message and "user 'twin'" in message
    assert "of device bess on plant/hil_battery/bess/residual/" in message
    assert "check the broker's ACL and mqtt.prefix 'plant'" in message
    logged = [r.getMessage() for r in caplog.records if "refused a message on" in r.getMessage()]
    for q in ("p_kw", "soc", "t_c"):  # once per topic, with the user, never the password
        assert (
            sum(f"on plant/hil_battery/bess/residual/{q} for user 'twin'" in m for m in logged) == 1
        )
    assert not any(p in m for m in logged for p in PASSWORDS.values())
    assert info.value.result.kpis["mqtt_dropped"] >= publisher["refused"]
    assert not any(p in json.dumps(meta) for p in PASSWORDS.values())


def test_any_refusal_fails_the_delivery_check_whatever_max_dropped_says():
    from types import SimpleNamespace

    from adapters.mqtt.checks import delivery_failures

    scenario = SimpleNamespace(mqtt=SimpleNamespace(max_dropped=1000, prefix="plant"))
    link = {"dropped": 2, "refused": 2, "refused_topics": {"plant/s/a/p": 2}, "username": "twin"}
    metadata = {"mqtt": {"publisher": link, "devices": {}}}
    (failure,) = delivery_failures(scenario, metadata, {})
    assert "the broker refused 2 message(s) of publisher on plant/s/a/p (2) for user 'twin'" in (
        failure.message
    )
    ok = {"dropped": 2, "refused": 0, "refused_topics": {}, "username": "twin"}
    assert delivery_failures(scenario, {"mqtt": {"publisher": ok, "devices": {}}}, {}) == []


def test_a_broker_url_that_cannot_be_parsed_never_shows_its_password(day_raw):
    day_raw["mqtt"] = {"broker": "mqtt://bob:s3cr/et@host"}
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(day_raw)
    assert "mqtt.broker" in str(caught.value) and "s3cr" not in str(caught.value)
