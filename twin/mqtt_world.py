"""Wiring the MQTT bridge into a world: device bridges and the telemetry publisher.

Kept apart from :mod:`twin.world` so a world without ``mqtt`` imports no MQTT code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mosaik

from models.base import Clock
from twin.registry import get_model
from twin.scenario import Scenario
from twin.sinks import initial_states, output_plan
from twin.units import parse_duration_s

__all__ = ["device_parts", "mqtt_auth", "start_devices", "start_publisher"]

#: Wall seconds a hardware-in-the-loop bridge waits per step for the device's answer.
HIL_TIMEOUT_S = 2.0


def _client_id(scenario: Scenario, role: str) -> str:
    assert scenario.mqtt is not None
    base = scenario.mqtt.client_id or f"twin-{scenario.name}-{os.getpid()}"
    return f"{base}-{role}"


def mqtt_auth(scenario: Scenario, login: Any = None) -> dict[str, Any]:
    """The link's credentials and TLS files (``login``: another login than the twin's).

    The password is read now (from the scenario, an environment variable or a file)
    and handed only to in-process simulators, never written anywhere.
    """
    from adapters.mqtt.auth import MqttAuth

    mqtt = scenario.mqtt
    assert mqtt is not None
    return MqttAuth.from_spec(login or mqtt, mqtt.tls).as_dict()


def device_parts(out_dir: Path, asset: str) -> tuple[Path, Path]:
    """The Parquet parts a device bridge records to: measured values, residuals."""
    return tuple(out_dir / "parts" / f"device-{asset}-{s}.parquet" for s in ("real", "residual"))


def start_devices(
    world: mosaik.World,
    scenario: Scenario,
    clock: Clock,
    children: dict[str, dict[str, Any]],
    tags: dict[str, str],
    out_dir: Path,
) -> tuple[dict[tuple[str, str], Any], list[Path]]:
    """One bridge per device, fed by its asset's model (and, for HIL, the controller).

    Returns
    -------
    dict
        ``(kind, asset) -> bridge entity``: the source of that asset's values downstream.
    list of Path
        The Parquet parts the bridges record to.
    """
    from adapters.mqtt.payloads import plausible_ranges

    mqtt = scenario.mqtt
    assert mqtt is not None
    auth = mqtt_auth(scenario) if mqtt.devices else {}
    unit_of = {u["name"]: (k, u) for k in ("battery", "pv", "load") for u in scenario.units(k)}
    window_steps = max(1, parse_duration_s(mqtt.residual_window) // clock.step_s)
    sources = {}
    parts: list[Path] = []
    for device in mqtt.devices:
        kind, unit = unit_of[device.asset]
        cls = get_model(kind)
        outputs = [n for n, p in cls.outputs.items() if (p.group or cls.kind) == kind]
        hil = device.mode == "hil"
        timeout = (
            device.timeout_s if device.timeout_s is not None else (HIL_TIMEOUT_S if hil else 0.0)
        )
        if device.stale_after:
            stale = parse_duration_s(device.stale_after)
        else:  # HIL: only the answer to this step's setpoint; hybrid: up to a step old
            stale = 0 if hil else clock.step_s
        real, residual = device_parts(out_dir, device.asset)
        parts += [real, residual]
        config = {
            "broker": mqtt.broker,
            "auth": auth,
            "client_id": _client_id(scenario, f"device-{device.asset}"),
            "prefix": mqtt.prefix,
            "site": scenario.name,
            "asset": device.asset,
            "kind": kind,
            "mode": device.mode,
            "measure": device.measure,
            "setpoints": ["p_set_kw"] if hil else [],
            "outputs": outputs,
            "units": {n: p.unit for n, p in cls.outputs.items()},
            "states": [n for n, p in cls.outputs.items() if p.state],
            "topic": device.topic,
            "setpoint_topic": device.setpoint_topic,
            "timeout_s": timeout,
            "stale_after_s": stale,
            "clock_tolerance_s": device.clock_tolerance_s,
            "ranges": plausible_ranges(kind, unit),
            "max_payload_bytes": device.max_payload_bytes,
            "window_steps": window_steps,
            "record": {"real": str(real), "residual": str(residual), "tags": tags},
            "stats_path": str(out_dir / "parts" / f"mqtt-device-{device.asset}.json"),
        }
        sim = world.start(
            "MqttDevice", sim_id=f"device-{device.asset}", clock=clock.to_dict(), config=config
        )
        (bridge,) = sim.Device.create(1)
        world.connect(children[kind][device.asset], bridge, *outputs)
        if hil:
            world.connect(children["controller"][device.asset], bridge, "p_set_kw")
        sources[(kind, device.asset)] = bridge
    return sources, parts


def start_publisher(
    world: mosaik.World,
    scenario: Scenario,
    clock: Clock,
    fleets: dict[str, Any],
    sources: dict[tuple[str, str], Any],
    out_dir: Path,
    *,
    bundle: bool,
    run: dict[str, str] | None = None,
    context: dict[str, Any],
) -> None:
    """The telemetry sink, connected to every selected value.

    ``run`` (``run_id``, ``scenario_hash``) goes into every retained birth message, so a
    subscriber can tell which run the telemetry belongs to.
    """
    mqtt = scenario.mqtt
    assert mqtt is not None
    plan, assets = output_plan(scenario, fleets, sources, scenario.mqtt.publish)
    if not plan:
        return
    assets = {asset: {**meta, **(run or {})} for asset, meta in assets.items()}
    kinds = {}
    for source, _ in plan:
        kinds[source.full_id] = (
            assets[source.eid]["kind"] if source.type == "Device" else source.type
        )
    config = {
        "broker": mqtt.broker,
        "auth": mqtt_auth(scenario),
        "client_id": _client_id(scenario, "publisher"),
        "prefix": mqtt.prefix,
        "site": scenario.name,
        "qos": mqtt.qos,
        "bundle": {"always": True, "never": False, "auto": bundle}[mqtt.bundle],
        "buffer_max": mqtt.buffer_max,
        "run_id": (run or {}).get("run_id", ""),
        "assets": assets,
        "kinds": kinds,
        "states": [
            [source.full_id, q]
            for source, attrs in plan
            for q in attrs
            if q in assets[source.eid].get("states", [])
        ],
        "initial_states": _initial_by_source(scenario, clock, context, fleets, plan),
        "stats_path": str(out_dir / "parts" / "mqtt-publisher.json"),
    }
    sim = world.start("MqttPublisher", sim_id="mqtt", clock=clock.to_dict(), config=config)
    (publisher,) = sim.Publisher.create(1)
    for source, attrs in plan:
        world.connect(source, publisher, *attrs)


def _initial_by_source(
    scenario: Scenario,
    clock: Clock,
    context: dict[str, Any],
    fleets: dict[str, Any],
    plan: list[tuple[Any, list[str]]],
) -> dict[str, dict[str, float]]:
    """Initial states by publisher source: a device bridge starts from its asset's."""
    by_child = initial_states(scenario, clock, context, fleets)
    by_eid = {full_id.rsplit(".", 1)[-1]: values for full_id, values in by_child.items()}
    return {
        source.full_id: by_child.get(source.full_id) or by_eid.get(source.eid, {})
        for source, _ in plan
    }
