"""Wiring faults into a world: the schedule, the sensors it corrupts, the modifiers.

The fault schedule (:class:`models.faults.FaultSchedule`) is a simulator of its own whose
modifier elements feed the targeted models' modifier inputs. Sensor faults act on a
:class:`models.sensors.Sensors` simulator per sensed quantity (one each, so a sensor on
a same-step path and one on a time-shifted path never form a cycle); observers (the
controller) then read the sensor's ``value`` instead of the model's true output.
"""

from __future__ import annotations

from typing import Any

import mosaik

from twin.registry import get_model
from twin.scenario import Scenario

__all__ = ["start_faults"]


def start_faults(
    world: mosaik.World,
    scenario: Scenario,
    start: Any,
    children: dict[str, dict[str, Any]],
) -> dict[tuple[str, str], Any]:
    """Start the fault schedule and the faulted sensors; connect every modifier.

    Returns
    -------
    dict
        ``(asset, quantity) -> sensor entity``: what observers read instead of the model.
    """
    units = scenario.fault_units()
    if not units:
        return {}
    kind_of = {u["name"]: k for k in ("pv", "battery", "load", "ev") for u in scenario.units(k)}
    observed: dict[tuple[str, str], Any] = {}
    targets = {u["modifier"].split(":")[0] for u in units}
    sensed = sorted(t for t in targets if "." in t)
    for name in sensed:
        asset, quantity = name.split(".", 1)
        kind = kind_of[asset]
        unit = {"name": name, **sensed_state(kind, asset, quantity, scenario, start)}
        fleet = start("sensors", [unit], sim_id=f"sensor-{asset}-{quantity}")
        (sensor,) = fleet.children
        world.connect(children[kind_of[asset]][asset], sensor, (quantity, "true"))
        observed[(asset, quantity)] = sensor
    schedule = start("faults", units)
    modifiers = {child.eid: child for child in schedule.children if child.type == "modifier"}
    grid = children["grid"]
    for name, element in modifiers.items():
        target, attr = name.split(":")
        if "." in target:
            asset, quantity = target.split(".", 1)
            destination = observed[(asset, quantity)]
        elif target == "poc" or target.startswith("line_"):
            destination = grid[target]
        else:
            destination = children[kind_of[target]][target]
        world.connect(element, destination, ("value", attr))
    return observed


def sensed_state(
    kind: str, asset: str, quantity: str, scenario: Scenario, start: Any
) -> dict[str, Any]:
    """Sensor parameters ``state`` and ``initial`` for a sensed model output.

    A sensor on a state (a SoC) reports a state: its rows are stamped like the model's.
    """
    cls = get_model(kind)
    if not cls.outputs[quantity].state:
        return {"state": False}
    model = cls(scenario.units(kind), start.clock, start.context)
    i = model.elements[cls.outputs[quantity].group or cls.kind].index(asset)
    return {"state": True, "initial": float(model.state()[quantity][i])}
