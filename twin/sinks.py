"""What a sink (the MQTT publisher, the InfluxDB sink) mirrors of a world plan.

Sinks mirror the plan's fleets (:attr:`twin.plan.WorldPlan.fleets`: the assets, the
tariff, the grid and the controller), each element from whatever provides its values
downstream (:meth:`twin.plan.WorldPlan.source_of`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from twin.plan import Entity, WorldPlan
from twin.registry import get_model

__all__ = ["initial_states", "output_plan"]


def initial_states(plan: WorldPlan) -> dict[str, dict[str, float]]:
    """The state outputs (``Port.state``) of every element at the run's start.

    ``{child full id: {attribute: value}}``, from each model's own :meth:`state` before
    its first step: what the sinks send with the first time stamp. A measured state's
    sensor (``<attribute>.measured``) starts from the same value.
    """
    out: dict[str, dict[str, float]] = {}
    for key, sim in plan.fleets.items():
        cls = get_model(sim.model_name)
        if key == "controller" or not any(port.state for port in cls.outputs.values()):
            continue
        model = cls(sim.params["units"], plan.clock, sim.params["context"])
        state = model.state()
        position = {g: {n: i for i, n in enumerate(names)} for g, names in model.elements.items()}
        for child in sim.entities:
            for attr in model.state_outputs():
                group = cls.outputs[attr].group or cls.kind
                if group == child.type and attr in state:
                    i = position[group][child.eid]
                    values = out.setdefault(child.full_id, {})
                    values[attr] = float(state[attr][i])
                    if attr in sim.params.get("sensors", {}):  # its sensor starts from it
                        values[f"{attr}.measured"] = values[attr]
    return out


def output_plan(
    scenario: Any, plan: WorldPlan, patterns: list[str]
) -> tuple[list[tuple[Entity, list[str]]], dict[str, dict[str, Any]]]:
    """What the publisher gets: (source entity, attributes) pairs and per-asset metadata.

    An attribute is selected when ``kind/asset/quantity`` matches one of ``patterns``.
    A replaced asset is taken from its bridge (the values the twin used) with its
    ``quality`` flag. Each asset's metadata lists which of its quantities are states
    (``"states"``: values at an instant, see :mod:`adapters.stamping`).
    """
    bus_of = {
        u["name"]: u["bus"] for k in ("pv", "battery", "load", "ev") for u in scenario.units(k)
    }
    selected: list[tuple[Entity, list[str]]] = []
    assets: dict[str, dict[str, Any]] = {}
    for key, sim in plan.fleets.items():
        cls = get_model(sim.model_name)
        for child in sim.entities:
            group = child.type
            ports = {n: p for n, p in cls.outputs.items() if (p.group or cls.kind) == group}
            attrs = [
                q
                for q in ports
                if any(fnmatchcase(f"{group}/{child.eid}/{q}", p) for p in patterns)
            ]
            if not attrs:
                continue
            replacement = plan.replacements.get((key, child.eid))
            source = child
            if replacement is not None:  # only what it serves, and its quality flag
                source = replacement.entity
                attrs = [q for q in attrs if q in replacement.provides]
                attrs += ["quality"] if replacement.quality else []
            if not attrs:
                continue
            selected.append((source, attrs))
            meta = assets.setdefault(child.eid, {"kind": group, "units": {}})
            if child.eid in bus_of:
                meta["bus"] = bus_of[child.eid]
            meta["units"].update({q: ports[q].unit for q in attrs if q in ports})
            meta.setdefault("states", []).extend(q for q in attrs if q in ports and ports[q].state)
            if "quality" in attrs:
                meta["units"]["quality"] = "1"
    return selected, assets
