"""The MQTT bridge in a world plan: device bridges and the telemetry publisher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.plan import Deferred, Entity, Replacement, WorldPlan
from twin.registry import get_model
from twin.sinks import initial_states, output_plan
from twin.units import parse_duration_s

__all__ = ["device_parts", "mqtt_auth", "plan_devices", "plan_publisher"]

DEVICE_SIMULATOR = "adapters.mqtt.bridge:DeviceBridge"
PUBLISHER_SIMULATOR = "adapters.mqtt.publisher:MqttPublisher"

#: Wall seconds a hardware-in-the-loop bridge waits per step for the device's answer.
HIL_TIMEOUT_S = 2.0


def _client_id(scenario: Any, plan: WorldPlan, role: str) -> str:
    """The link's MQTT client id: the scenario's, or one per run.

    Two runs of one scenario at once (threads, processes) must not take over each
    other's broker session, so the default names the run, not the process.
    """
    assert scenario.mqtt is not None
    base = scenario.mqtt.client_id or f"twin-{plan.tags.get('run_id', 'run')}"
    return f"{base}-{role}"


def mqtt_auth(scenario: Any, login: Any = None) -> dict[str, Any]:
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


def plan_devices(scenario: Any, plan: WorldPlan) -> None:
    """One bridge per device; each registered as the source of its asset's values."""
    from adapters.mqtt.payloads import plausible_ranges

    mqtt = scenario.mqtt
    assert mqtt is not None
    auth = Deferred("mqtt login", lambda: mqtt_auth(scenario))
    unit_of = {u["name"]: (k, u) for k in ("battery", "pv", "load") for u in scenario.units(k)}
    clock, out_dir, tags = plan.clock, plan.out_dir, plan.tags
    window_steps = max(1, parse_duration_s(mqtt.residual_window) // clock.step_s)
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
        config = {
            "broker": mqtt.broker,
            "auth": auth,
            "client_id": _client_id(scenario, plan, f"device-{device.asset}"),
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
        bridge = plan.add_adapter(
            f"device-{device.asset}",
            DEVICE_SIMULATOR,
            "Device",
            device.asset,
            init={"clock": clock.to_dict(), "config": config},
            kind="mqtt-device",
            parts=[real, residual],
        )
        ports = cls.outputs
        fields = {q: ["real", q] for q in device.measure}
        fields["quality"] = ["real", "quality"]
        fields.update({f"{q}_residual": ["residual", q] for q in device.measure})
        # a measured state and its residual hold at an instant too
        states = [q for q in device.measure if q in ports and ports[q].state]
        plan.replace(
            kind,
            device.asset,
            Replacement(
                bridge,
                provides=tuple(outputs),
                quality=True,
                fields=fields,
                states=(*states, *(f"{q}_residual" for q in states)),
            ),
        )


def connect_devices(scenario: Any, plan: WorldPlan) -> None:
    """Each bridge is fed by its asset's model (and, for HIL, by the controller)."""
    assert scenario.mqtt is not None
    for (kind, asset), replacement in plan.replacements.items():
        bridge = replacement.entity
        if bridge.sid != f"device-{asset}":
            continue  # replaced by another component
        outputs = plan.simulators[bridge.sid].init["config"]["outputs"]
        plan.connect(plan.children(kind)[asset], bridge, *outputs)
        if plan.simulators[bridge.sid].init["config"]["mode"] == "hil":
            plan.connect(plan.children("controller")[asset], bridge, "p_set_kw")


def plan_publisher(scenario: Any, plan: WorldPlan) -> None:
    """The telemetry sink, connected to every selected value.

    The run's ``run_id`` and ``scenario_hash`` go into every retained birth message, so
    a subscriber can tell which run the telemetry belongs to. Telemetry is bundled
    unless the run is paced in real time (``mqtt.bundle: auto``).
    """
    mqtt = scenario.mqtt
    assert mqtt is not None
    selected, assets = output_plan(scenario, plan, mqtt.publish)
    if not selected:
        return
    run = {k: v for k, v in plan.tags.items() if k in ("run_id", "scenario_hash")}
    assets = {asset: {**meta, **run} for asset, meta in assets.items()}
    kinds = {}
    for source, _ in selected:
        kinds[source.full_id] = (
            assets[source.eid]["kind"] if source.type == "Device" else source.type
        )
    config = {
        "broker": mqtt.broker,
        "auth": Deferred("mqtt login", lambda: mqtt_auth(scenario)),
        "client_id": _client_id(scenario, plan, "publisher"),
        "prefix": mqtt.prefix,
        "site": scenario.name,
        "qos": mqtt.qos,
        "bundle": {"always": True, "never": False, "auto": not plan.realtime}[mqtt.bundle],
        "buffer_max": mqtt.buffer_max,
        "run_id": run.get("run_id", ""),
        "assets": assets,
        "kinds": kinds,
        "states": [
            [source.full_id, q]
            for source, attrs in selected
            for q in attrs
            if q in assets[source.eid].get("states", [])
        ],
        "initial_states": _initial_by_source(plan, selected),
        "stats_path": str(plan.out_dir / "parts" / "mqtt-publisher.json"),
    }
    plan.add_adapter(
        "mqtt",
        PUBLISHER_SIMULATOR,
        "Publisher",
        "publisher",
        init={"clock": plan.clock.to_dict(), "config": config},
        kind="mqtt-publisher",
        feeds=selected,
    )


def _initial_by_source(
    plan: WorldPlan, selected: list[tuple[Entity, list[str]]]
) -> dict[str, dict[str, float]]:
    """Initial states by publisher source: a device bridge starts from its asset's."""
    by_child = initial_states(plan)
    by_eid = {full_id.rsplit(".", 1)[-1]: values for full_id, values in by_child.items()}
    return {
        source.full_id: by_child.get(source.full_id) or by_eid.get(source.eid, {})
        for source, _ in selected
    }
