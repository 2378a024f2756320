"""A toy third-party package: a meter model and the component that puts it in a world.

It is installed for a test the way a plugin is (a ``*.dist-info`` with entry points in
the ``twin.models`` and ``twin.components`` groups on ``sys.path``); nothing of the
twin's core names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.base import Model, Port
from twin.checks import CheckFailure
from twin.component import Component, Resolution, Section
from twin.errors import Problem


class Meter(Model):
    """A meter that reads an asset's power with a gain (a mis-scaled CT, say)."""

    kind = "meter"
    inputs = {"p_in_kw": Port("kW", "the metered power")}
    outputs = {"p_kw": Port("kW", "the meter's reading: gain x metered power")}

    def step(self, now: Any, dt_s: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"p_kw": self.param("gain") * inputs["p_in_kw"]}


class MeterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: str
    gain: float = 1.0
    max_gain: float = 10.0


class MeterComponent(Component):
    name = "meter"
    sections = (Section("meter", MeterSpec | None, None),)
    order = 70

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        if scenario.meter is None:
            return []
        names = [u["name"] for u in scenario.units("pv")]
        if scenario.meter.asset not in names:
            return [Problem("meter.asset", f"no PV plant {scenario.meter.asset!r}")]
        return []

    def add_entities(self, scenario: Any, plan: Any) -> None:
        if scenario.meter is not None:
            unit = {"name": f"meter_{scenario.meter.asset}", "gain": scenario.meter.gain}
            plan.add_model("toy_meter", [unit], sid="meter", fleet=False)

    def add_connections(self, scenario: Any, plan: Any) -> None:
        if scenario.meter is not None:
            pv = plan.children("pv")[scenario.meter.asset]
            (meter,) = plan.simulators["meter"].entities
            plan.connect(pv, meter, ("p_kw", "p_in_kw"))

    def run_metadata(self, scenario: Any, parts_dir: Any) -> dict[str, Any]:
        return {"meter": {"asset": scenario.meter.asset}} if scenario.meter else {}

    def kpis(self, scenario: Any, results: Any, metadata: dict[str, Any]) -> dict[str, float]:
        if scenario.meter is None:
            return {}
        rows = results[(results["kind"] == "meter") & (results["quantity"] == "p_kw")]
        dt_h = scenario.clock().dt_h
        return {"meter_energy_kwh": float(rows["value"].sum() * dt_h)}

    def checks(self) -> dict[str, Any]:
        return {"meter_gain": _gain_check}


def _gain_check(scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]) -> list:
    meter = getattr(scenario, "meter", None)
    if meter is not None and meter.gain > meter.max_gain:
        return [CheckFailure("meter_gain", f"gain {meter.gain} above {meter.max_gain}")]
    return []


class Generator(Model):
    """A constant generator (a diesel set at a fixed output): power into its bus."""

    kind = "gen"
    outputs = {"p_kw": Port("kW", "output (> 0 into the bus)")}

    def step(self, now: Any, dt_s: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"p_kw": self.param("p_kw")}


class GenSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bus: int
    p_kw: float


class GeneratorComponent(Component):
    """An asset-like component: it injects into the grid like the built-in assets."""

    name = "gen"
    sections = (Section("gen", GenSpec | None, None),)
    order = 15

    def add_entities(self, scenario: Any, plan: Any) -> None:
        plan.add_model("toy_gen", [{"name": "diesel", "p_kw": scenario.gen.p_kw}], role="gen")

    def add_connections(self, scenario: Any, plan: Any) -> None:
        bus = plan.children("grid")[f"bus_{scenario.gen.bus}"]
        plan.connect(plan.children("gen")["diesel"], bus, "p_kw")
