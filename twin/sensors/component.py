"""The ``sensors`` component: a sensor on every quantity a model reports.

Every model output declared with ``Port(sensor=<class>)`` (AC power, voltage, line
loading, SoC, SoH, temperature, frequency) is measured by the simulator that computes it
(:mod:`twin.wrapper`) with its class's imperfection (:data:`models.sensors.
SENSOR_CLASSES`, overridden by the section). Results then hold both views
(``source=twin``: the truth; ``source=measured``: what the plant reports), and observers
(the controller, diagnostics) read the measurements (:meth:`twin.plan.WorldPlan.observe`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twin.component import Component, Section
from twin.errors import Problem, did_you_mean
from twin.plan import WorldPlan
from twin.registry import get_model
from twin.sensors.schema import SensorsSpec

__all__ = ["SensorsComponent", "imperfection_of", "measured_quantities"]


def imperfection_of(spec: SensorsSpec, sensor_class: str) -> dict[str, Any]:
    """The imperfection of ``sensor_class`` with the section's overrides, as plain data."""
    from models.sensors import SENSOR_CLASSES

    base = SENSOR_CLASSES[sensor_class]
    override = spec.classes.get(sensor_class)
    if override is not None:
        base = replace(base, **override.model_dump(exclude_none=True))
    return base.as_dict()


def measured_quantities(model: str) -> dict[str, tuple[str, str]]:
    """``{output: (group, sensor class)}`` of the outputs the model reports."""
    cls = get_model(model)
    return {
        name: (port.group or cls.kind, port.sensor)
        for name, port in cls.outputs.items()
        if port.sensor
    }


class SensorsComponent(Component):
    """Sensors on every reported quantity (section ``sensors``, on by default)."""

    name = "sensors"
    sections = (Section("sensors", SensorsSpec, SensorsSpec()),)
    order = 22  # after the plant's models, before faults and observers

    def wanted(self, scenario: Any) -> bool:
        """Unless ``sensors.enabled`` is false."""
        return bool(scenario.sensors.enabled)

    def problems(self, scenario: Any, resolution: Any) -> list[Problem]:
        """Every excluded quantity must be one a model of the scenario reports."""
        known = {
            f"{group}.{name}"
            for model in _models(scenario)
            for name, (group, _) in measured_quantities(model).items()
        }
        return [
            Problem(
                f"sensors.exclude[{i}]",
                f"no measured quantity {item!r}{did_you_mean(item, sorted(known))}; "
                f"expected <kind>.<quantity> of: {', '.join(sorted(known))}",
            )
            for i, item in enumerate(scenario.sensors.exclude)
            if item not in known
        ]

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """Measure every reported output of every model simulator of the plan."""
        spec = scenario.sensors
        for sim in list(plan.simulators.values()):
            if not sim.model_name:
                continue
            for name, (group, sensor_class) in measured_quantities(sim.model_name).items():
                if f"{group}.{name}" not in spec.exclude:
                    plan.measure(sim, name, imperfection_of(spec, sensor_class))


def _models(scenario: Any) -> list[str]:
    """The registered models a scenario's plant uses (grid and asset kinds)."""
    from twin.assets.schema import ASSET_KINDS

    return ["grid", *(k for k in ASSET_KINDS if scenario.units(k))]
