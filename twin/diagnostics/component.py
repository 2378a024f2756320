"""The ``diagnostics`` component: the engine in the loop, beside the plant.

It adds one simulator (:class:`twin.diagnostics.online.DiagnosticsSimulator`) that gets,
every step, what the plant's sensors report (each fleet's measurements as arrays, one
connection per simulator) and the EMS's setpoints, steps the same
:class:`~twin.diagnostics.engine.Engine` as ``twin diagnose`` and writes the same
``health.parquet`` and ``alerts.parquet``/``.json`` into the run directory. Health
indices and alerts go to MQTT (``<prefix>/<site>/<asset>/health/<index>``, one
retained message per open alert under ``<prefix>/<site>/alerts/<alert_id>``) and
InfluxDB (measurements ``health`` and ``alert``) through the run's own publisher and
sink.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin.component import Component, Resolution, Section
from twin.diagnostics.schema import DiagnosticsSpec
from twin.errors import Problem
from twin.plan import PARENT_EID, Entity, WorldPlan

__all__ = ["DiagnosticsComponent", "ONLINE_SIMULATOR"]

#: The simulator that runs the engine in the world.
ONLINE_SIMULATOR = "twin.diagnostics.online:DiagnosticsSimulator"
STATS_FILE = "diagnostics.json"


class DiagnosticsComponent(Component):
    """Health indices, fault detection and alerts in the loop (section ``diagnostics``)."""

    name = "diagnostics"
    sections = (Section("diagnostics", DiagnosticsSpec | None, None),)
    order = 70  # last: its connections go to the sinks, which plan themselves in theirs

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """The engine sees only measurements: it needs the sensors; a model must exist."""
        spec = scenario.diagnostics
        if spec is None:
            return []
        problems = []
        if not scenario.sensors.enabled:
            problems.append(
                Problem(
                    "diagnostics",
                    "the diagnostics see only what sensors report: set sensors.enabled: true",
                )
            )
        mqtt = getattr(scenario, "mqtt", None)
        if spec.publish and mqtt is not None and not mqtt.publish:
            problems.append(
                Problem(
                    "diagnostics.publish",
                    "mqtt.publish selects nothing, so no publisher runs and health and alerts "
                    "would not reach MQTT: publish a quantity or set diagnostics.publish: false",
                )
            )
        if spec.model is not None and not (Path(spec.model) / "model.json").is_file():
            problems.append(
                Problem(
                    "diagnostics.model",
                    f"expected a trained model directory (twin diagnostics train), "
                    f"{spec.model!r} has no model.json",
                )
            )
        return problems

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """The what-if beside a run needs no diagnostics of its own."""
        return {"diagnostics": None}

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """The trained model's files count in the scenario hash."""
        spec = scenario.diagnostics
        if spec is None or spec.model is None or not Path(spec.model).is_dir():
            return {}
        files = sorted(p for p in Path(spec.model).iterdir() if p.is_file())
        return {f"diagnostics.model/{p.name}": str(p) for p in files}

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """The engine's simulator; what it reads is laid out per fleet and quantity."""
        spec = scenario.diagnostics
        layout: dict[str, dict[str, list[list[str]]]] = {}
        for sim in plan.simulators.values():
            measured = sim.params.get("sensors") or {}
            if not sim.model_name or not measured:
                continue
            layout[f"{sim.sid}.{PARENT_EID}"] = {
                quantity: _elements(plan, sim, quantity) for quantity in measured
            }
        config = {
            "scenario": scenario.model_dump(mode="json"),
            "layout": layout,
            "model": spec.model,
            "mode": spec.mode,
            "out_dir": str(plan.out_dir),
            "tags": {k: v for k, v in plan.tags.items() if k in ("site", "run_id")},
            "stats_path": str(plan.out_dir / "parts" / STATS_FILE),
            "publish": spec.publish,
        }
        plan.add_adapter(
            "diagnostics",
            ONLINE_SIMULATOR,
            "Diagnostics",
            "engine",
            init={"clock": plan.clock.to_dict(), "config": config},
            kind="diagnostics",
        )

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """Measurements and setpoints in; health and alerts out to the sinks."""
        engine = plan.simulators["diagnostics"].entities[0]
        for full_id in plan.simulators["diagnostics"].init["config"]["layout"]:
            sid = full_id.split(".", 1)[0]
            sim = plan.simulators[sid]
            plan.connect(Entity(sid, PARENT_EID, sim.model), engine, "measured")
        for entity in plan.children("controller").values():
            if entity.type == "controller" and "p_set_kw" in _outputs(plan, "controller"):
                plan.connect(entity, engine, "p_set_kw")
        # a device that replaced an asset is the plant: its readings, where fresh
        devices = plan.simulators["diagnostics"].init["config"].setdefault("devices", {})
        for (kind, asset), replacement in plan.replacements.items():
            read = [f for f, (tag, _) in replacement.fields.items() if tag == "real"]
            if replacement.quality and read:
                devices[replacement.entity.full_id] = [asset, kind]
                plan.connect(replacement.entity, engine, *read)
        if not scenario.diagnostics.publish:
            return
        config = plan.simulators["diagnostics"].init["config"]
        for sid, eid, attr in (("influx", "sink", "lines"), ("mqtt", "publisher", "messages")):
            sink = plan.simulators.get(sid)
            config[attr] = sink is not None  # formatted only for a sink that takes them
            if sink is not None:
                plan.connect(engine, Entity(sid, eid, sink.model), attr)
        publisher = plan.simulators.get("mqtt")
        if publisher is not None:  # an earlier run's open alerts are not this run's
            publisher.init["config"].setdefault("clear_retained", []).append("alerts/#")

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """What the engine did: steps, its loop time, the alerts it raised."""
        path = parts_dir / STATS_FILE
        if not path.is_file():
            return {}
        return {"diagnostics": json.loads(path.read_text())}


def _elements(plan: WorldPlan, sim: Any, quantity: str) -> list[list[str]]:
    """``[element, kind]`` in the order the simulator serves a quantity's array."""
    from twin.registry import get_model

    cls = get_model(sim.model_name)
    group = cls.outputs[quantity].group or cls.kind
    names = cls.element_names(sim.params["units"], sim.params["context"])[group]
    return [[name, group] for name in names]


def _outputs(plan: WorldPlan, role: str) -> set[str]:
    from twin.registry import get_model

    sim = plan.fleets.get(role)
    return set(get_model(sim.model_name).outputs) if sim is not None else set()
