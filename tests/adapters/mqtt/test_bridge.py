"""Real devices in the loop: hybrid replacement, HIL with ``twin device``, robustness."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from adapters.mqtt.link import MqttLink
from models.base import Clock
from models.battery import Battery
from twin.results import as_operated, load_results, wide
from twin.run import RunCheckError, run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[3]
SITE = "microgrid_day"
GAP = range(40, 50)


def _series(results: pd.DataFrame, kind: str, asset: str, quantity: str, source: str):
    return wide(results, kind, quantity, source)[asset].to_numpy()


class Feeder(threading.Thread):
    """A measured-data source: waits for the twin to come online, then publishes a day.

    ``values`` maps a step to its value, or to a raw payload (bytes) sent as it is.
    """

    def __init__(self, url: str, topic: str, values: dict[int, float | bytes], clock: Clock):
        super().__init__(daemon=True)
        self.link = MqttLink(url, "feeder").open()
        self.online = threading.Event()
        self.link.subscribe(f"twin/{SITE}/status", self._status)
        self.topic, self.values, self.clock = topic, values, clock

    def _status(self, message) -> None:
        if json.loads(message.payload)["state"] == "online":
            self.online.set()

    def run(self) -> None:
        assert self.online.wait(30)
        for k, value in self.values.items():
            ts = self.clock.time_at(k * self.clock.step_s).astimezone().isoformat()
            if isinstance(value, bytes):  # a raw payload, as it is
                self.link.publish(self.topic, value)
            else:
                self.link.publish(self.topic, json.dumps({"ts": ts, "value": value}).encode())
        self.link.flush()


def test_hybrid_mode_replaces_the_simulated_values(mosquitto, tmp_path, day_scenario):
    device = {
        "asset": "pv_roof",
        "measure": ["p_kw"],
        "timeout_s": 2.0,  # lock-step: wait for each step's measurement
        "stale_after": "1min",  # only this step's measurement is fresh
        "max_fallback": 0.2,  # the gap below is 10 of 96 steps
    }
    scenario = day_scenario(mqtt={"broker": mosquitto.url, "devices": [device]})
    clock = scenario.clock()
    fed = {k: 10.0 + 0.1 * k for k in range(clock.n_steps) if k not in GAP}
    feeder = Feeder(mosquitto.url, f"field/{SITE}/pv_roof/p_kw", fed, clock)
    feeder.start()
    result = run_scenario(scenario, tmp_path / "run")
    feeder.join(10)
    feeder.link.close()

    results = load_results(result.out_dir)
    twin = _series(results, "pv", "pv_roof", "p_kw", "twin")
    real = _series(results, "pv", "pv_roof", "p_kw", "real")
    expected = np.array([fed.get(k, np.nan) for k in range(clock.n_steps)])
    np.testing.assert_allclose(real, expected, equal_nan=True)
    quality = _series(results, "pv", "pv_roof", "quality", "real")
    assert list(np.flatnonzero(quality == 0.0)) == list(GAP)  # the silent stretch
    # What the grid and the controller saw: measured values, the model's in the gap.
    operated = wide(as_operated(results), "pv", "p_kw")["pv_roof"].to_numpy()
    np.testing.assert_allclose(operated, np.where(np.isnan(expected), twin, expected))
    assert result.kpis["balance_residual_kwh"] < 1e-6  # the grid carried the measured power
    residual = _series(results, "pv", "pv_roof", "p_kw", "residual")
    np.testing.assert_allclose(residual, expected - twin, equal_nan=True)
    valid = ~np.isnan(expected)
    rmse = np.sqrt(np.mean((expected - twin)[valid] ** 2))
    assert result.kpis["residual_rmse_pv_roof_p_kw"] == pytest.approx(rmse, rel=1e-9)
    assert result.kpis["device_fallback_steps_pv_roof"] == len(GAP)


@pytest.fixture
def field_device(tmp_path):
    """Start ``twin device`` processes; they are stopped after the test."""
    started = []

    def start(url: str, *args: str) -> subprocess.Popen:
        ready = tmp_path / f"ready-{len(started)}"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twin.cli",
                "device",
                "--broker",
                url,
                "--site",
                "hil_battery",
                "--asset",
                "bess",
                "--ready-file",
                str(ready),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "twin device did not come up"
            time.sleep(0.05)
        return process

    yield start
    for process in started:
        process.terminate()
        process.communicate(timeout=10)


def _failing(scenario, out_dir: Path, check: str):
    """Run a scenario that must fail ``check``: its result (run.json says failed)."""
    with pytest.raises(RunCheckError) as info:
        run_scenario(scenario, out_dir)
    assert check in [f.check for f in info.value.failures]
    assert json.loads((out_dir / "run.json").read_text())["status"] == "failed"
    return info.value.result


def _hil(url: str, **device_changes) -> object:
    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["broker"] = url
    raw["mqtt"]["devices"][0].update(device_changes)
    return validate_scenario(raw)


def _replay(setpoints: np.ndarray, params: dict[str, float], step_s: int) -> dict[str, np.ndarray]:
    """The emulated battery's physics, replayed on the setpoints it was sent."""
    from adapters.mqtt.emulator import field_battery_unit

    clock = Clock(pd.Timestamp("2016-06-21", tz="UTC"), step_s, len(setpoints))
    battery = Battery([field_battery_unit("bess", params)], clock)
    out = [battery.step(clock.time_at(0), step_s, {"p_set_kw": np.array([p])}) for p in setpoints]
    return {q: np.array([o[q][0] for o in out]) for q in ("p_kw", "soc", "t_c")}


def test_hil_loop_closes_with_the_emulated_device(mosquitto, tmp_path):
    scenario = _hil(mosquitto.url)  # the scenario starts `twin device` itself (emulate)
    result = run_scenario(scenario, tmp_path / "run")
    results = load_results(result.out_dir)
    setpoints = _series(results, "controller", "bess", "p_set_kw", "twin")
    params = scenario.mqtt.devices[0].emulate
    device = _replay(setpoints, params, scenario.clock().step_s)
    real_p = _series(results, "battery", "bess", "p_kw", "real")
    np.testing.assert_allclose(real_p, device["p_kw"])  # every answer is the device's physics
    for q in ("soc", "t_c"):  # states: row k+1 is what the device read at the end of step k
        real = _series(results, "battery", "bess", q, "real")
        assert len(real) == len(real_p) + 1 and np.isnan(real[0])
        np.testing.assert_allclose(real[1:], device[q])
    twin_soc = _series(results, "battery", "bess", "soc", "twin")[1:]  # the same instants
    assert np.abs(device["soc"] - twin_soc).max() > 0.01  # different battery, visible residual
    # The controller acted on the device's SoC: its rule keeps the *device* in its window.
    assert device["soc"].min() >= 0.1 - 1e-9
    residual = device["soc"] - twin_soc
    assert result.kpis["residual_rmse_bess_soc"] == pytest.approx(np.sqrt(np.mean(residual**2)))
    assert result.kpis["residual_bias_bess_soc"] == pytest.approx(residual.mean())
    assert result.kpis["residual_max_abs_bess_soc"] == pytest.approx(np.abs(residual).max())
    assert result.kpis["device_fallback_steps_bess"] == 0
    assert result.kpis["balance_residual_kwh"] < 1e-6


def test_malformed_payloads_are_counted_and_the_run_goes_on(
    mosquitto, tmp_path, field_device, caplog
):
    field_device(mosquitto.url, "--garbage-every", "10")
    scenario = _hil(mosquitto.url, emulate=None, timeout_s=2.0)
    result = run_scenario(scenario, tmp_path / "run")
    assert result.kpis["mqtt_malformed_bess"] == 96 // 10
    stats = result.metadata["mqtt"]["devices"]["bess"]
    assert stats["malformed"] == {"field/hil_battery/bess/p_kw": 96 // 10}
    logged = [r for r in caplog.records if "malformed payload" in r.getMessage()]
    assert logged and "field/hil_battery/bess/p_kw" in logged[0].getMessage()
    assert result.kpis["device_fallback_steps_bess"] == 0  # the good answers still count


def test_a_silent_device_falls_back_to_the_model(mosquitto, tmp_path, field_device, caplog):
    field_device(mosquitto.url, "--silent-after", "40")
    scenario = _hil(mosquitto.url, emulate=None, timeout_s=1.0)
    started = time.monotonic()
    result = _failing(scenario, tmp_path / "run", "mqtt_device_fallback")
    assert time.monotonic() - started < 30  # a silent device is probed, not waited for
    results = load_results(result.out_dir)
    quality = _series(results, "battery", "bess", "quality", "real")
    assert list(np.flatnonzero(quality == 0.0)) == list(range(40, 96))
    real = _series(results, "battery", "bess", "p_kw", "real")
    assert np.isnan(real[40:]).all() and not np.isnan(real[:40]).any()
    operated = wide(as_operated(results), "battery", "p_kw")["bess"].to_numpy()
    twin = _series(results, "battery", "bess", "p_kw", "twin")
    np.testing.assert_allclose(operated[40:], twin[40:])
    assert result.kpis["device_fallback_steps_bess"] == 56
    silent = [r for r in caplog.records if "missed the step" in r.getMessage()]
    assert len(silent) == 1  # one warning, not one per step


def test_device_spec_problems_name_the_field():
    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["devices"] = [
        {"asset": "bes", "mode": "hil"},
        {"asset": "pv_roof", "mode": "hil", "measure": ["p_kww"]},
        {"asset": "bess", "emulate": {"e_kwhh": 5}},
    ]
    from twin.errors import ScenarioError

    with pytest.raises(ScenarioError) as info:
        validate_scenario(raw)
    text = str(info.value)
    assert "mqtt.devices[0].asset: no asset named 'bes'; did you mean 'bess'?" in text
    assert "mqtt.devices[1].measure[0]: pv has no output 'p_kww'" in text
    assert "mqtt.devices[1].mode: hil needs a battery" in text
    assert "mqtt.devices[2].emulate.e_kwhh: unknown battery parameter" in text


def test_an_unreachable_broker_is_named(tmp_path, day_scenario):
    from adapters.server import free_port
    from twin.errors import RunError

    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(RunError, match=f"MQTT broker {url} unreachable"):
        run_scenario(day_scenario(mqtt={"broker": url}), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_a_missed_answer_does_not_disable_the_device(mosquitto, tmp_path, field_device, caplog):
    field_device(mosquitto.url, "--miss-every", "10")  # answers 10, 20, ..., 90 are lost
    scenario = _hil(mosquitto.url, emulate=None, timeout_s=1.0)
    result = _failing(scenario, tmp_path / "run", "mqtt_device_fallback")  # 9.4 % > 5 %
    quality = _series(load_results(result.out_dir), "battery", "bess", "quality", "real")
    assert list(np.flatnonzero(quality == 0.0)) == [9, 19, 29, 39, 49, 59, 69, 79, 89]
    stats = result.metadata["mqtt"]["devices"]["bess"]
    assert stats["fallback_steps"] == 9 and stats["gaps"] == 9 and stats["longest_gap"] == 1
    failure = result.metadata["checks"]["failed"][0]["message"]
    assert "9 of 96 steps (9.4 %), more than max_fallback 5 %" in failure
    gaps = [r for r in caplog.records if "missed the step" in r.getMessage()]
    assert len(gaps) == 5  # aggregated: the first gaps logged, all counted
    assert any("9 of 96 steps" in r.getMessage() for r in caplog.records)  # one summary


def test_the_fallback_share_a_run_may_have_is_configurable(mosquitto, tmp_path, field_device):
    field_device(mosquitto.url, "--miss-every", "10")
    scenario = _hil(mosquitto.url, emulate=None, timeout_s=1.0, max_fallback=0.1)
    result = run_scenario(scenario, tmp_path / "run")
    assert result.metadata["status"] == "finished"
    assert result.kpis["device_fallback_steps_bess"] == 9


def test_a_device_on_its_own_clock_is_matched_by_seq(mosquitto, tmp_path, field_device):
    field_device(mosquitto.url, "--own-clock")  # stamps the wall clock, echoes seq
    result = run_scenario(_hil(mosquitto.url, emulate=None), tmp_path / "run")
    stats = result.metadata["mqtt"]["devices"]["bess"]
    assert stats["fallback_steps"] == 0
    assert stats["clock_offset_s"] > 3e8  # years after the simulated 2016


def test_a_device_without_seq_off_the_clock_fails_the_run(
    mosquitto, tmp_path, field_device, caplog
):
    field_device(mosquitto.url, "--clock-skew-s", "120", "--no-echo-seq")
    scenario = _hil(mosquitto.url, emulate=None, timeout_s=1.0)
    started = time.monotonic()
    result = _failing(scenario, tmp_path / "run", "mqtt_device_fallback")
    assert time.monotonic() - started < 60  # unusable answers do not keep it waiting
    stats = result.metadata["mqtt"]["devices"]["bess"]
    assert stats["fallback_steps"] == 96 and stats["off_clock"] == 3 * 96
    assert "off_clock 288" in result.metadata["checks"]["failed"][0]["message"]
    told = [r for r in caplog.records if "echo the setpoint's 'seq'" in r.getMessage()]
    assert len(told) == 1


def test_skew_within_the_tolerance_is_accepted(mosquitto, tmp_path, field_device):
    field_device(mosquitto.url, "--clock-skew-s", "0.8", "--no-echo-seq")
    result = run_scenario(_hil(mosquitto.url, emulate=None), tmp_path / "run")
    assert result.metadata["mqtt"]["devices"]["bess"]["fallback_steps"] == 0
