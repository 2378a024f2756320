"""Building and running the mosaik World of a scenario.

The data flow of one step (all simulators step every ``scenario.step``)::

    tariff ───────────────────────────────────────────────┐
    pv, load ──► controller ──► battery ──► grid ──────────┤──► recorder
        └──────────────────────────────────────► grid      │
    battery.soc ──(time-shifted: last step's end)──► controller

Assets inject into their bus (``p_kw``, ``q_kvar``); the controller measures the site's
PV + load power and each battery's SoC and sets battery power.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mosaik

from models.base import Clock
from twin.registry import get_model
from twin.scenario import Scenario

__all__ = ["SIM_CONFIG", "WorldPlan", "build_world"]

SIM_CONFIG = {
    "Model": {"python": "twin.wrapper:ModelSimulator"},
    "Recorder": {"python": "adapters.parquet:Recorder"},
}


@dataclass
class WorldPlan:
    """A built world and what the runner needs to know about it."""

    world: mosaik.World
    clock: Clock
    results_path: Path
    entities: dict[str, Any] = field(default_factory=dict)


def _children(fleet: Any) -> dict[str, Any]:
    return {child.eid: child for child in fleet.children}


def _start(world: mosaik.World, model: str, units: list[dict], clock: Clock, context: dict) -> Any:
    sim = world.start("Model", sim_id=model, model=model, clock=clock.to_dict())
    factory = getattr(sim, get_model(model).__name__)
    (fleet,) = factory.create(1, units=units, context=context)
    return fleet


def build_world(
    scenario: Scenario, out_dir: Path, run_id: str, *, debug: bool = False
) -> WorldPlan:
    """Create every simulator and connection of ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        A validated, resolved scenario.
    out_dir : Path
        Run directory; the recorder writes ``results.parquet`` there.
    run_id : str
        Tag of the run in the results.
    """
    clock = scenario.clock()
    world = mosaik.World(
        SIM_CONFIG, time_resolution=1.0, skip_greetings=True, configure_logging=False, debug=debug
    )
    context = {
        "site": scenario.site.model_dump(),
        "weather": scenario.weather,
        "grid": scenario.grid.source,
        "seed": scenario.seed,
    }
    fleets: dict[str, Any] = {}
    for kind in ("pv", "load", "battery"):
        units = scenario.units(kind)
        if units:
            fleets[kind] = _start(world, kind, units, clock, context)
    tariff = scenario.tariff.model_dump()
    fleets["tariff"] = _start(world, "tariff", [{"name": "tariff", **tariff}], clock, context)
    grid_unit = {"name": "poc", "grid": scenario.grid.source, "solver": scenario.grid.solver}
    fleets["grid"] = _start(world, "grid", [grid_unit], clock, context)
    grid = _children(fleets["grid"])

    # Assets inject into their bus.
    for kind in ("pv", "load", "battery"):
        if kind not in fleets:
            continue
        children = _children(fleets[kind])
        for unit in scenario.units(kind):
            attrs = ["p_kw", "q_kvar"] if kind == "load" else ["p_kw"]
            world.connect(children[unit["name"]], grid[f"bus_{unit['bus']}"], *attrs)

    if scenario.controller != "none":
        batteries = scenario.units("battery")
        fleets["controller"] = _start(world, scenario.controller, batteries, clock, context)
        control = _children(fleets["controller"])
        for kind in ("pv", "load"):
            for child in fleets.get(kind, _Empty).children:
                world.connect(child, control["site"], "p_kw")
        battery = _children(fleets["battery"])
        for unit in batteries:
            name = unit["name"]
            world.connect(control[name], battery[name], "p_set_kw")
            world.connect(
                battery[name],
                control[name],
                "soc",
                time_shifted=True,
                initial_data={"soc": unit["soc_init"]},
            )

    results_path = out_dir / "results.parquet"
    recorder_sim = world.start("Recorder", sim_id="recorder", clock=clock.to_dict())
    sources: dict[str, list[str]] = {}
    recorded: list[tuple[Any, list[str]]] = []
    for name, fleet in fleets.items():
        cls = get_model(scenario.controller if name == "controller" else name)
        for child in fleet.children:
            sources[child.full_id] = [child.eid, child.type]
            attrs = [n for n, port in cls.outputs.items() if (port.group or cls.kind) == child.type]
            recorded.append((child, attrs))
    (recorder,) = recorder_sim.Recorder.create(
        1,
        sources=sources,
        path=str(results_path),
        tags={"site": scenario.name, "run_id": run_id, "source": "twin"},
    )
    for child, attrs in recorded:
        if attrs:
            world.connect(child, recorder, *attrs)
    return WorldPlan(world, clock, results_path, fleets)


class _Empty:
    children: list[Any] = []
