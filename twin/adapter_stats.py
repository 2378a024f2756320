"""Adapter side-effects of a run: emulated devices, adapter counters, residual KPIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from twin.scenario import Scenario

__all__ = [
    "adapter_kpis",
    "adapter_stats",
    "mqtt_link_losses",
    "start_emulators",
    "stop_emulators",
]


def start_emulators(scenario: Scenario, out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Launch ``twin device`` for every device with an ``emulate`` section.

    Each emulator is a separate process; it is connected (or has failed, with its
    error in ``<out>/device-<asset>.log``) when this returns.
    """
    if scenario.mqtt is None:
        return []
    processes = []
    for device in scenario.mqtt.devices:
        if device.emulate is None:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        log_path = out_dir / f"device-{device.asset}.log"
        command = [
            sys.executable,
            "-m",
            "twin.cli",
            "device",
            "--broker",
            scenario.mqtt.broker,
            "--site",
            scenario.name,
            "--asset",
            device.asset,
            "--topic",
            device.topic,
            "--setpoint-topic",
            device.setpoint_topic,
            "--ready-file",
            str(out_dir / f"device-{device.asset}.ready"),
        ]
        for key, value in device.emulate.items():
            command += ["--param", f"{key}={value}"]
        command, env = _login_arguments(command, scenario, device)
        ready = out_dir / f"device-{device.asset}.ready"
        ready.unlink(missing_ok=True)
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        processes.append(process)
        try:
            _wait_ready(process, ready, log_path)
        except Exception:
            stop_emulators(processes)  # the ones started before it too
            raise
    return processes


#: Environment variable through which an emulated device gets its password (never argv).
DEVICE_PASSWORD_ENV = "TWIN_DEVICE_PASSWORD"


def _login_arguments(
    command: list[str], scenario: Scenario, device: Any
) -> tuple[list[str], dict[str, str]]:
    """The device's login and TLS files as options; its password in the environment."""
    from twin.mqtt_world import mqtt_auth

    auth = mqtt_auth(scenario, device.credentials)
    env = dict(os.environ)
    if auth["username"]:
        command = [*command, "--username", auth["username"]]
    if auth["password"] is not None:
        env[DEVICE_PASSWORD_ENV] = auth["password"]
        command = [*command, "--password-env", DEVICE_PASSWORD_ENV]
    for name in ("ca_file", "cert_file", "key_file"):
        if auth[name]:
            command = [*command, f"--{name.replace('_', '-')}", auth[name]]
    return command, env


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log_path: Path) -> None:
    import time

    deadline = time.monotonic() + 30.0
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(
                f"emulated device exited ({process.returncode}): {log_path.read_text()[-500:]}"
            )
        if time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError(f"emulated device did not connect within 30 s (see {log_path})")
        time.sleep(0.05)
    ready.unlink()


def stop_emulators(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the emulated devices (SIGTERM, then SIGKILL after 5 s)."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


def adapter_stats(parts_dir: Path) -> dict[str, Any]:
    """The counters the MQTT and InfluxDB simulators left in ``parts_dir`` (``run.json``)."""
    found: dict[str, Any] = {}
    influx = parts_dir / "influx.json"
    if influx.exists():
        found["influx"] = json.loads(influx.read_text())
    publisher = parts_dir / "mqtt-publisher.json"
    devices = sorted(parts_dir.glob("mqtt-device-*.json"))
    if not publisher.exists() and not devices:
        return found
    out: dict[str, Any] = {}
    if publisher.exists():
        out["publisher"] = json.loads(publisher.read_text())
    out["devices"] = {d["asset"]: d for d in (json.loads(p.read_text()) for p in devices)}
    found["mqtt"] = out
    return found


def adapter_kpis(metadata: dict[str, Any]) -> dict[str, float]:
    """Residual KPIs per device quantity, malformed payloads and fallback steps."""
    kpis: dict[str, float] = {}
    mqtt = metadata.get("mqtt")
    if not mqtt:
        return kpis
    for asset, device in mqtt.get("devices", {}).items():
        for quantity, stats in device["residuals"].items():
            for name in ("rmse", "bias", "max_abs"):
                kpis[f"residual_{name}_{asset}_{quantity}"] = float(stats[name])
        kpis[f"device_fallback_steps_{asset}"] = float(device["fallback_steps"])
        steps = device.get("steps") or 0
        kpis[f"device_fallback_share_{asset}"] = (
            device["fallback_steps"] / steps if steps else float("nan")
        )
        kpis[f"mqtt_malformed_{asset}"] = float(device["malformed_total"])
    publisher = mqtt.get("publisher")
    if publisher:
        kpis["mqtt_published"] = float(publisher["published"])
    # every link (publisher and device bridges): dropped and never acknowledged
    kpis["mqtt_dropped"] = float(sum(mqtt_link_losses(mqtt).values()))
    return kpis


def mqtt_link_losses(mqtt: dict[str, Any]) -> dict[str, int]:
    """Messages lost per MQTT link of a run: dropped plus never acknowledged.

    ``mqtt`` is the run metadata's ``mqtt`` section; keys are ``publisher`` and
    ``device <asset>``. The ``mqtt_dropped`` KPI and the ``mqtt_delivery`` check both
    count with it.
    """
    links = {"publisher": mqtt.get("publisher") or {}}
    for asset, device in mqtt.get("devices", {}).items():
        links[f"device {asset}"] = device.get("link") or {}
    return {
        name: int(link.get("dropped", 0)) + int(link.get("undelivered", 0))
        for name, link in links.items()
    }
