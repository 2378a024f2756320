"""The emulator on a real Mosquitto: what a subscriber receives is exactly the truth."""

import copy
import json
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adapters.field.emulator import FieldOptions, default_wall_start, run_field
from adapters.field.errors import FieldError, FieldLinkError
from adapters.field.plan import PlanOptions
from adapters.mqtt.auth import MqttAuth
from adapters.mqtt.broker import BrokerSecurity, Mosquitto
from tests.adapters.field.conftest import IMPAIRED, tiny_raw
from tests.adapters.field.test_wire import senml_resolve
from twin.cli import app

TRUTH_COLUMNS = [
    "sensor", "topic", "gateway", "element", "quantity", "unit", "t", "t_true", "value",
    "truth", "value_twin", "truth_twin", "sigma_twin", "bias_twin", "published", "copies",
    "publish_wall", "quality",
]  # fmt: skip
PASSWORDS = {"twin": "tw1n-f13ld", "bess": "b3ss-f13ld"}


def _records(topic: str, payload: str, prefix: str = "field") -> list[tuple[str, float]]:
    body = json.loads(payload)
    if topic.endswith("/senml"):
        return [(r["n"], r["t"]) for r in senml_resolve(body)]
    if isinstance(body, list):
        return [(f"{prefix}/{r['n']}", r["t"]) for r in body]
    return [(topic, body["t"])]


@pytest.mark.parametrize("fmt", ["topic", "json", "senml"])
def test_a_subscriber_receives_exactly_what_the_truth_says(
    mosquitto, subscriber_factory, tiny, tmp_path, fmt
):
    prefix = f"emu/{fmt}"  # of this test alone on the session's broker
    sub = subscriber_factory(mosquitto, f"{prefix}/#", f"field-sub-{fmt}")
    options = FieldOptions(
        plan=PlanOptions(fmt=fmt, gateway_size=40, prefix=prefix),
        impair=IMPAIRED,
        speed=50.0,
        broker=mosquitto.url,
        client_id=f"field-{fmt}",
    )
    result = run_field(tiny, options, tmp_path / "out")
    assert result.ok, result.summary["problems"]
    truth = pd.read_parquet(tmp_path / "out" / "truth.parquet")
    assert list(truth.columns) == TRUTH_COLUMNS
    counts = result.summary["counts"]
    messages = counts["message_copies_accepted"]
    assert sub.wait_for(messages, f"{prefix}/", timeout_s=30)
    time.sleep(0.3)  # nothing more may come
    received = [(t, p) for t, p in sub.messages if t.startswith(f"{prefix}/")]
    assert len(received) == messages == result.summary["link"]["acked"]
    got = Counter(r for topic, payload in received for r in _records(topic, payload, prefix))
    published = truth[truth["published"]]
    expected = Counter(
        {(k, round(t, 6)): int(c) for k, t, c in published[["sensor", "t", "copies"]].values}
    )
    assert Counter({(k, round(t, 6)): c for (k, t), c in got.items()}) == expected
    # impairments recorded exactly
    assert (~truth["published"]).sum() == counts["dropouts"] > 0
    assert (truth["copies"] == 2).any() and counts["duplicated_messages"] > 0
    assert truth.loc[~truth["published"], "copies"].eq(0).all()
    skew = (
        (truth["t"] - truth["t_true"]).groupby(truth["gateway"], observed=True).agg(["min", "max"])
    )
    assert np.allclose(skew["min"], skew["max"], atol=1e-6)
    sensors = pd.read_parquet(tmp_path / "out" / "sensors.parquet")
    by_gw = sensors.groupby("gateway")["skew_s"].first()
    assert np.allclose(skew["min"].loc[by_gw.index], by_gw, atol=1e-6)
    assert truth["value"].to_numpy() == pytest.approx(
        truth["value_twin"].to_numpy() * np.tile(sensors["factor"], len(truth) // len(sensors))
    )
    field = json.loads((tmp_path / "out" / "field.json").read_text())
    assert field["counts"] == counts and field["link"]["dropped"] == 0


def test_messages_leave_on_the_plant_clock(mosquitto, tiny, tmp_path):
    wall_start = time.time() + 6.0  # after the plant's run: a start already past is refused
    speed = 10.0
    options = FieldOptions(
        plan=PlanOptions(groups=("bus", "poc"), gateway_size=8, fmt="json"),
        speed=speed,
        wall_start=wall_start,
        broker=mosquitto.url,
        client_id="field-clock",
    )
    result = run_field(tiny, options, tmp_path)
    assert result.ok and result.summary["wall_start"] == wall_start
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    due = wall_start + (truth["t_true"] - truth["t_true"].min()) / speed
    assert (truth["publish_wall"] >= due - 1e-3).all()  # never before its time
    assert truth["publish_wall"].min() >= wall_start
    # later steps leave later: the order of the steps is kept without jitter
    first = truth.groupby("t_true")["publish_wall"].min().to_numpy()
    assert (np.diff(first) > 0).all()


@pytest.fixture
def secure_broker(tmp_path):
    broker = Mosquitto(tmp_path / "secure", security=BrokerSecurity(users=dict(PASSWORDS)))
    broker.start()
    yield broker
    broker.stop()


def test_a_refused_login_is_a_named_error(secure_broker, tiny, tmp_path):
    options = FieldOptions(
        plan=PlanOptions(groups=("poc",)),
        speed=100.0,
        broker=secure_broker.url,
        auth=MqttAuth("twin", "wrong"),
    )
    with pytest.raises(FieldLinkError, match="refused the connection.*user 'twin'") as info:
        run_field(tiny, options, tmp_path)
    assert "wrong" not in str(info.value)


def _write_tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(4)))
    return path


def test_cli_exit_codes(secure_broker, tmp_path, monkeypatch):
    runner = CliRunner()
    scenario = _write_tiny(tmp_path)
    common = ["field", str(scenario), "--broker", secure_broker.url, "--speed", "100",
              "--groups", "poc", "--no-progress", "--password-env", "FIELD_PW"]  # fmt: skip
    monkeypatch.setenv("FIELD_PW", PASSWORDS["twin"])
    ok = runner.invoke(
        app,
        [*common, "--username", "twin", "--out", str(tmp_path / "ok"),
         "--bias", "field/poc/p=10@2"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "ok" / "field.json").read_text())["status"] == "ok"
    truth = pd.read_parquet(tmp_path / "ok" / "truth.parquet")
    offset = truth["t_true"] - truth["t_true"].min()
    biased = truth["bias_twin"] != 0
    assert (biased == ((truth["sensor"] == "field/poc/p") & (offset >= 2))).all()
    rows = truth[biased]
    assert rows["bias_twin"].to_numpy() == pytest.approx(10 * rows["sigma_twin"].to_numpy())
    # the ACL lets bess write only field/<site>/bess/...: every message refused
    monkeypatch.setenv("FIELD_PW", PASSWORDS["bess"])
    refused = runner.invoke(app, [*common, "--username", "bess", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 1, refused.output
    field = json.loads((tmp_path / "no" / "field.json").read_text())
    assert field["status"] == "failed" and field["link"]["refused"] == 3 * 4
    assert "refused by the broker" in refused.output
    truth = pd.read_parquet(tmp_path / "no" / "truth.parquet")
    assert len(truth) == 12
    wrong = runner.invoke(app, [*common, "--username", "nobody"])
    assert wrong.exit_code == 2 and "refused the connection" in wrong.output
    bad = runner.invoke(app, [*common, "--format", "xml"])
    assert bad.exit_code == 2 and "--format" in bad.output
    plan = runner.invoke(app, ["field", str(scenario), "--plan-only", "--redundancy", "2"])
    assert plan.exit_code == 0 and "gateway" in plan.output


def test_a_stop_ends_publishing_and_the_truth_says_what_went_out(
    mosquitto, subscriber_factory, tiny, tmp_path
):
    sub = subscriber_factory(mosquitto, "emu-stop/#", "field-stop-sub")
    stop = threading.Event()
    options = FieldOptions(
        plan=PlanOptions(groups=("bus", "poc"), prefix="emu-stop"), speed=2.0,
        broker=mosquitto.url,
        client_id="field-stop",
    )  # fmt: skip
    watcher = threading.Thread(
        target=lambda: sub.wait_for(30, "emu-stop/", 60.0) and stop.set(), daemon=True
    )
    watcher.start()
    result = run_field(tiny, options, tmp_path, stop=stop)
    assert not result.ok and "stopped early" in result.summary["problems"][0]
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    sent = int(truth["copies"].sum())
    assert 30 <= sent < len(truth)
    assert sub.wait_for(sent, "emu-stop/", 30.0)
    time.sleep(0.3)
    assert sub.count("emu-stop/") == sent == result.summary["link"]["acked"]


def test_the_default_wall_start_is_the_next_second_plus_one():
    assert default_wall_start(1000.2) == 1002.0
    assert default_wall_start(1000.0) == 1001.0


def test_a_wall_start_in_the_past_is_refused(mosquitto, tiny, tmp_path):
    options = FieldOptions(
        plan=PlanOptions(groups=("poc",)),
        wall_start=time.time() - 3600.0,
        broker=mosquitto.url,
        client_id="field-past",
    )
    with pytest.raises(FieldError, match=r"--wall-start: .* s in the past .* one step \(1 wall s"):
        run_field(tiny, options, tmp_path / "api")
    runner = CliRunner()
    scenario = _write_tiny(tmp_path)
    past = runner.invoke(
        app,
        ["field", str(scenario), "--broker", mosquitto.url, "--groups", "poc", "--no-progress",
         "--client-id", "field-past-cli", "--wall-start", str(time.time() - 3600.0),
         "--out", str(tmp_path / "cli")],
    )  # fmt: skip
    assert past.exit_code == 2, past.output
    assert "--wall-start" in past.output and "in the past" in past.output
    bad = runner.invoke(app, ["field", str(scenario), "--max-lateness-s", "-1"])
    assert bad.exit_code == 2 and "--max-lateness-s" in bad.output


def test_late_publishing_is_a_failed_run(prepared):
    from adapters.field.schedule import Outcome
    from adapters.field.summary import settle, summarize
    from adapters.mqtt.link import MqttLink

    prepared = copy.deepcopy(prepared)
    prepared.wall_start = 1000.0
    due = prepared.due_wall(prepared.wall_start)
    link = MqttLink("mqtt://127.0.0.1:1", "field-late")  # never opened: nothing dropped
    for late_s, status in ((0.5, "ok"), (3.0, "failed")):
        handed = due + late_s
        outcome = Outcome(handed, prepared.messages.copies.copy(), 999.0, handed.max(), False)
        settle(prepared, outcome)
        summary = summarize(prepared, outcome, due, link, True)
        assert summary["status"] == status, summary["problems"]
        assert summary["lateness"]["p99_s"] == pytest.approx(late_s)
    assert summary["problems"] == [
        "published late: lateness p99 3.000 s > --max-lateness-s 2 s (the machine or the link "
        "could not keep up with the plant clock)"
    ]


def test_bad_quality_samples_are_sent_with_q0_and_recorded(mosquitto, subscriber_factory, tmp_path):
    prefix = "emu-quality"
    sub = subscriber_factory(mosquitto, f"{prefix}/#", "field-quality-sub")
    scenario = _write_tiny(tmp_path)
    result = CliRunner().invoke(
        app,
        ["field", str(scenario), "--broker", mosquitto.url, "--groups", "bus,poc",
         "--no-progress", "--speed", "100", "--prefix", prefix, "--bad-quality", "0.3",
         "--impair-seed", "5", "--client-id", "field-quality", "--out", str(tmp_path / "q")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    truth = pd.read_parquet(tmp_path / "q" / "truth.parquet")
    assert set(truth["quality"]) == {0, 1}
    field = json.loads((tmp_path / "q" / "field.json").read_text())
    assert field["counts"]["bad_quality_samples"] == int((truth["quality"] == 0).sum())
    assert field["options"]["impair"]["bad_quality"] == 0.3
    assert sub.wait_for(len(truth), f"{prefix}/", timeout_s=30)
    received = [(t, json.loads(p)) for t, p in sub.messages if t.startswith(f"{prefix}/")]
    got = {(t, round(body["t"], 6)): body["q"] for t, body in received}
    expected = {(k, round(t, 6)): int(q) for k, t, q in truth[["sensor", "t", "quality"]].values}
    assert got == expected
