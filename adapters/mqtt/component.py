"""The MQTT bridge component (section ``mqtt``): telemetry out, devices in.

It declares the section's schema (:mod:`adapters.mqtt.schema`), checks the devices
against the scenario's assets, adds the device bridges (each the source of its asset's
values downstream) and the telemetry publisher to the world plan, starts the emulated
devices around the run, and contributes the MQTT counters, KPIs and run checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.mqtt.checks import delivery_failures, fallback_failures
from adapters.mqtt.schema import DEVICE_KINDS, MqttSpec
from adapters.mqtt.stats import mqtt_kpis, mqtt_stats
from adapters.mqtt.world import connect_devices, plan_devices, plan_publisher
from twin.assets.schema import ASSET_KINDS
from twin.checks import RunCheck
from twin.component import Component, Resolution, Section
from twin.errors import Problem, did_you_mean
from twin.plan import WorldPlan
from twin.registry import get_model

__all__ = ["MqttComponent", "device_problems"]


class MqttComponent(Component):
    """Telemetry to a broker and real or emulated devices in the loop."""

    name = "mqtt"
    sections = (Section("mqtt", MqttSpec | None, None, keep_validated=True),)
    order = 50

    def resolve(self, resolution: Resolution) -> list[Problem]:
        """Devices must name assets they can replace and outputs of their models."""
        return device_problems(resolution.scenario, resolution.data["assets"])

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """One bridge per device (the source of its asset's values downstream)."""
        if scenario.mqtt is not None:
            plan_devices(scenario, plan)

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """Models (and, for HIL, the controller) into the bridges; the publisher."""
        if scenario.mqtt is not None:
            connect_devices(scenario, plan)
            plan_publisher(scenario, plan)

    @contextlib.contextmanager
    def services(self, scenario: Any, out_dir: Path) -> Iterator[None]:
        """The emulated devices, for the length of the run."""
        from adapters.mqtt.emulators import start_emulators, stop_emulators

        processes = start_emulators(scenario, out_dir) if scenario.mqtt is not None else []
        try:
            yield
        finally:
            stop_emulators(processes)

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """The publisher's and the bridges' counters."""
        return mqtt_stats(parts_dir)

    def kpis(self, scenario: Any, results: Any, metadata: dict[str, Any]) -> dict[str, float]:
        """Residuals, fallback shares, malformed payloads, published and dropped messages."""
        return mqtt_kpis(metadata)

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """A what-if neither publishes on the run's topics nor drives its devices."""
        return {"mqtt": None}

    def checks(self) -> dict[str, RunCheck]:
        """Devices answered often enough; telemetry was delivered."""
        return {"mqtt_device_fallback": fallback_failures, "mqtt_delivery": delivery_failures}


def device_problems(scenario: Any, assets: dict[str, list[dict]]) -> list[Problem]:
    """Devices must name an asset of a kind they can replace, and outputs of its model."""
    if scenario.mqtt is None:
        return []
    problems = []
    kind_of = {unit["name"]: kind for kind in ASSET_KINDS for unit in assets[kind]}
    seen: set[str] = set()
    for i, device in enumerate(scenario.mqtt.devices):
        where = f"mqtt.devices[{i}]"
        kind = kind_of.get(device.asset)
        if kind is None:
            hint = did_you_mean(device.asset, list(kind_of))
            problems.append(Problem(f"{where}.asset", f"no asset named {device.asset!r}{hint}"))
            continue
        if device.asset in seen:
            problems.append(Problem(f"{where}.asset", f"{device.asset!r} has two devices"))
        seen.add(device.asset)
        if kind not in DEVICE_KINDS:
            problems.append(
                Problem(
                    f"{where}.asset",
                    f"{device.asset!r} is a {kind}; devices replace {', '.join(DEVICE_KINDS)}",
                )
            )
            continue
        outputs = get_model(kind).outputs
        for j, quantity in enumerate(device.measure):
            if quantity not in outputs:
                problems.append(
                    Problem(
                        f"{where}.measure[{j}]",
                        f"{kind} has no output {quantity!r}; expected one of {', '.join(outputs)}",
                    )
                )
        if device.mode == "hil":
            if kind != "battery":
                problems.append(Problem(f"{where}.mode", "hil needs a battery (setpoints)"))
            elif scenario.controller == "none":
                problems.append(
                    Problem(f"{where}.mode", "hil needs a controller to send setpoints")
                )
        if device.credentials is not None and device.emulate is None:
            problems.append(
                Problem(f"{where}.credentials", "the emulated device's login: needs emulate")
            )
        if device.emulate is not None:
            from adapters.mqtt.emulator import battery_parameters, field_battery_unit

            known = battery_parameters()

            if kind != "battery":
                problems.append(Problem(f"{where}.emulate", "only batteries can be emulated"))
            unknown = sorted(set(device.emulate) - set(known))
            for key in unknown:
                problems.append(
                    Problem(
                        f"{where}.emulate.{key}",
                        f"unknown battery parameter; known: {', '.join(known)}",
                    )
                )
            if not unknown:
                try:  # the bounds of the battery schema, as `twin device` applies them
                    field_battery_unit(device.asset, device.emulate)
                except ValueError as exc:
                    problems.append(Problem(f"{where}.emulate", str(exc)))
    return problems
