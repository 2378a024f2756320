"""What a sink (MQTT publisher, InfluxDB) is connected to, and the InfluxDB sink itself."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import mosaik

from adapters.influx.writer import InfluxConfig
from models.base import Clock
from twin.registry import get_model
from twin.scenario import Scenario

__all__ = ["influx_config", "initial_states", "output_plan", "start_influx_sink"]


def initial_states(
    scenario: Scenario, clock: Clock, context: dict[str, Any], fleets: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """The state outputs (``Port.state``) of every element at the run's start.

    ``{child full id: {attribute: value}}``, from each model's own :meth:`state` before
    its first step: what the sinks send with the first time stamp.
    """
    out: dict[str, dict[str, float]] = {}
    for key, fleet in fleets.items():
        cls = get_model(scenario.controller if key == "controller" else key)
        if key == "controller" or not any(port.state for port in cls.outputs.values()):
            continue
        model = cls(scenario.units(key), clock, context)
        state = model.state()
        for child in fleet.children:
            for attr in model.state_outputs():
                group = cls.outputs[attr].group or cls.kind
                if group == child.type and attr in state:
                    i = model.elements[group].index(child.eid)
                    out.setdefault(child.full_id, {})[attr] = float(state[attr][i])
    return out


def influx_config(scenario: Scenario, out_dir: Path) -> InfluxConfig:
    """The writer configuration of ``outputs.influx`` (spool under the run directory)."""
    from twin.influx import config_from_spec

    assert scenario.outputs.influx is not None
    return config_from_spec(scenario.outputs.influx, out_dir)


def output_plan(
    scenario: Scenario,
    fleets: dict[str, Any],
    sources: dict[tuple[str, str], Any],
    patterns: list[str],
) -> tuple[list[tuple[Any, list[str]]], dict[str, dict[str, Any]]]:
    """What the publisher gets: (source entity, attributes) pairs and per-asset metadata.

    An attribute is selected when ``kind/asset/quantity`` matches one of ``patterns``.
    A replaced asset is taken from its bridge (the values the twin used) with its
    ``quality`` flag. Each asset's metadata lists which of its quantities are states
    (``"states"``: values at an instant, see :mod:`adapters.stamping`).
    """
    bus_of = {
        u["name"]: u["bus"] for k in ("pv", "battery", "load", "ev") for u in scenario.units(k)
    }
    plan: list[tuple[Any, list[str]]] = []
    assets: dict[str, dict[str, Any]] = {}
    for key, fleet in fleets.items():
        model = scenario.controller if key == "controller" else key
        cls = get_model(model)
        for child in fleet.children:
            group = child.type
            ports = {n: p for n, p in cls.outputs.items() if (p.group or cls.kind) == group}
            attrs = [
                q
                for q in ports
                if any(fnmatchcase(f"{group}/{child.eid}/{q}", p) for p in patterns)
            ]
            if not attrs:
                continue
            source = sources.get((key, child.eid), child)
            if source is not child:
                attrs = [*attrs, "quality"]
            plan.append((source, attrs))
            meta = assets.setdefault(child.eid, {"kind": group, "units": {}})
            if child.eid in bus_of:
                meta["bus"] = bus_of[child.eid]
            meta["units"].update({q: ports[q].unit for q in attrs if q in ports})
            meta.setdefault("states", []).extend(q for q in attrs if q in ports and ports[q].state)
            if "quality" in attrs:
                meta["units"]["quality"] = "1"
    return plan, assets


def start_influx_sink(
    world: mosaik.World,
    scenario: Scenario,
    clock: Clock,
    fleets: dict[str, Any],
    sources: dict[tuple[str, str], Any],
    tags: dict[str, str],
    out_dir: Path,
    context: dict[str, Any],
) -> None:
    """The InfluxDB sink, fed by every model output and every device bridge.

    It writes what ``results.parquet`` holds: the models' outputs (``source=twin``) and,
    for devices, the measured values and quality (``real``) and residuals (``residual``).
    """
    spec = scenario.outputs.influx
    assert spec is not None
    routes: dict[str, dict[str, Any]] = {}
    links: list[tuple[Any, list[str]]] = []
    states: list[list[str]] = []
    for key, fleet in fleets.items():
        cls = get_model(scenario.controller if key == "controller" else key)
        for child in fleet.children:
            attrs = [n for n, p in cls.outputs.items() if (p.group or cls.kind) == child.type]
            states += [[child.full_id, a] for a in attrs if cls.outputs[a].state]
            routes[child.full_id] = {
                "kind": child.type,
                "asset": child.eid,
                "fields": {a: ["twin", a] for a in attrs},
            }
            links.append((child, attrs))
    devices = {d.asset: d for d in scenario.mqtt.devices} if scenario.mqtt else {}
    for (kind, asset), bridge in sources.items():
        measure = devices[asset].measure
        fields = {q: ["real", q] for q in measure}
        fields["quality"] = ["real", "quality"]
        fields.update({f"{q}_residual": ["residual", q] for q in measure})
        ports = get_model(kind).outputs
        for q in measure:  # a measured state and its residual hold at an instant too
            if q in ports and ports[q].state:
                states += [[bridge.full_id, q], [bridge.full_id, f"{q}_residual"]]
        routes[bridge.full_id] = {
            "kind": kind,
            "asset": asset,
            "fields": fields,
            "measured": measure,
        }
        links.append((bridge, list(fields)))
    config = {
        "influx": vars(influx_config(scenario, out_dir)),
        "tags": {k: v for k, v in tags.items() if k != "source"},
        "routes": routes,
        "states": states,
        "initial_states": initial_states(scenario, clock, context, fleets),
        "stats_path": str(out_dir / "parts" / "influx.json"),
    }
    sim = world.start("InfluxSink", sim_id="influx", clock=clock.to_dict(), config=config)
    (sink,) = sim.Sink.create(1)
    for source, attrs in links:
        world.connect(source, sink, *attrs)
