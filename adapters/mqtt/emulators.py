"""Emulated devices of a run: one ``twin device`` process per device with ``emulate``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["DEVICE_PASSWORD_ENV", "start_emulators", "stop_emulators"]


def start_emulators(scenario: Any, out_dir: Path) -> list[subprocess.Popen[bytes]]:
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
    command: list[str], scenario: Any, device: Any
) -> tuple[list[str], dict[str, str]]:
    """The device's login and TLS files as options; its password in the environment."""
    from adapters.mqtt.world import mqtt_auth

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
