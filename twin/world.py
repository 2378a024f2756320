"""Building and running the mosaik World of a scenario.

The data flow of one step (all simulators step every ``scenario.step``)::

    tariff
    pv, load ──► controller ──► battery ──► grid
        └──────────────────────────────────► grid
    battery.soc ──(time-shifted: last step's end)──► controller

Assets inject into their bus (``p_kw``, ``q_kvar``); the controller measures the site's
PV + load power and each battery's SoC and sets battery power. Every simulator records
its own outputs into a Parquet part under ``<out>/parts/`` (see :mod:`twin.wrapper`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mosaik

from models.base import Clock
from models.ev import EVCharging
from twin import mqtt_world
from twin.faults_world import start_faults
from twin.registry import get_model
from twin.scenario import ASSET_KINDS, Scenario

__all__ = ["SIM_CONFIG", "WorldPlan", "build_world"]

SIM_CONFIG = {
    "Model": {"python": "twin.wrapper:ModelSimulator"},
    "MqttPublisher": {"python": "adapters.mqtt.publisher:MqttPublisher"},
    "MqttDevice": {"python": "adapters.mqtt.bridge:DeviceBridge"},
    "InfluxSink": {"python": "adapters.influx.sink:InfluxSink"},
}


@dataclass
class WorldPlan:
    """A built world and what the runner needs to know about it."""

    world: mosaik.World
    clock: Clock
    results_path: Path
    entities: dict[str, Any] = field(default_factory=dict)
    parts: list[Path] = field(default_factory=list)


def _children(fleet: Any) -> dict[str, Any]:
    return {child.eid: child for child in fleet.children}


class _Starter:
    """Starts one wrapped model per simulator, each recording to its own part."""

    def __init__(self, world: mosaik.World, clock: Clock, context: dict, tags: dict, parts: Path):
        self.world, self.clock, self.context, self.tags = world, clock, context, tags
        self.parts_dir = parts
        self.parts: list[Path] = []

    def __call__(self, model: str, units: list[dict], sim_id: str | None = None) -> Any:
        sid = sim_id or model
        sim = self.world.start("Model", sim_id=sid, model=model, clock=self.clock.to_dict())
        factory = getattr(sim, get_model(model).__name__)
        part = self.parts_dir / f"{sid}.parquet"
        self.parts.append(part)
        record = {"path": str(part), "tags": self.tags}
        (fleet,) = factory.create(1, units=units, context=self.context, record=record)
        return fleet


def build_world(
    scenario: Scenario,
    out_dir: Path,
    run_id: str,
    *,
    debug: bool = False,
    realtime: bool = False,
    scenario_hash: str = "",
) -> WorldPlan:
    """Create every simulator and connection of ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        A validated, resolved scenario.
    out_dir : Path
        Run directory; simulators record to ``out_dir/parts/``.
    run_id : str
        Tag of the run in the results.
    realtime : bool
        The run is paced in real time (MQTT telemetry is then not bundled by default).
    scenario_hash : str
        Hash of the run's inputs (:mod:`twin.identity`), a tag of its InfluxDB points.
    """
    clock = scenario.clock()
    world = mosaik.World(
        SIM_CONFIG, time_resolution=1.0, skip_greetings=True, configure_logging=False, debug=debug
    )
    try:
        return _populate(world, scenario, clock, out_dir, run_id, realtime, scenario_hash)
    except BaseException:
        world.shutdown()  # stop what was started before the failure
        raise


def _populate(
    world: mosaik.World,
    scenario: Scenario,
    clock: Clock,
    out_dir: Path,
    run_id: str,
    realtime: bool,
    scenario_hash: str = "",
) -> WorldPlan:
    context = {
        "site": scenario.site.model_dump(),
        "weather": scenario.weather,
        "grid": scenario.grid.source,
        "seed": scenario.seed,
    }
    tags = {"site": scenario.name, "run_id": run_id, "source": "twin"}
    if scenario_hash:
        tags["scenario_hash"] = scenario_hash
    start = _Starter(world, clock, context, tags, out_dir / "parts")
    fleets: dict[str, Any] = {}
    for kind in ASSET_KINDS:
        units = scenario.units(kind)
        if units:
            fleets[kind] = start(kind, units)
    fleets["tariff"] = start("tariff", [{"name": "tariff", **scenario.tariff.model_dump()}])
    grid_unit = {"name": "poc", "grid": scenario.grid.source, "solver": scenario.grid.solver}
    fleets["grid"] = start("grid", [grid_unit])
    grid = _children(fleets["grid"])

    if scenario.controller != "none":
        _start_controller(scenario, start, fleets)
    children = {kind: _children(fleet) for kind, fleet in fleets.items()}
    # Where a device replaces an asset, its bridge is the source of the asset's values.
    sources: dict[tuple[str, str], Any] = {}
    if scenario.mqtt is not None:
        sources, parts = mqtt_world.start_devices(world, scenario, clock, children, tags, out_dir)
        start.parts += parts

    observed = start_faults(world, scenario, start, children)

    # Assets inject into their bus (active and, where they have it, reactive power).
    for kind, name, bus in _injectors(scenario):
        child = children[kind][name]
        attrs = [a for a in ("p_kw", "q_kvar") if a in world_attrs(kind, child.type)]
        world.connect(sources.get((kind, name), child), grid[f"bus_{bus}"], *attrs)

    if scenario.controller != "none":
        _connect_controller(world, scenario, fleets, sources, observed)
    if scenario.mqtt is not None:
        run = {k: v for k, v in tags.items() if k in ("run_id", "scenario_hash")}
        mqtt_world.start_publisher(
            world,
            scenario,
            clock,
            fleets,
            sources,
            out_dir,
            bundle=not realtime,
            run=run,
            context=context,
        )
    if scenario.outputs.influx is not None:
        from twin.sinks import start_influx_sink

        start_influx_sink(world, scenario, clock, fleets, sources, tags, out_dir, context)
    return WorldPlan(world, clock, out_dir / "results.parquet", fleets, start.parts)


def world_attrs(model: str, group: str) -> set[str]:
    """Output names of ``group`` of the registered model ``model``."""
    cls = get_model(model)
    return {n for n, port in cls.outputs.items() if (port.group or cls.kind) == group}


def _injectors(scenario: Scenario) -> list[tuple[str, str, int]]:
    """(kind, element name, bus) of every element that injects into a bus."""
    out = []
    for kind in ASSET_KINDS:
        for unit in scenario.units(kind):
            if kind == "ev":
                out += [(kind, name, unit["bus"]) for name in EVCharging.charger_names(unit)]
            else:
                out.append((kind, unit["name"], unit["bus"]))
    return out


def _chargers(scenario: Scenario) -> list[dict[str, Any]]:
    """The EV chargers a controller dispatches (none under battery-only controllers)."""
    chargers = [
        {"name": name, "p_max_kw": park["p_max_kw"], "efficiency": park["efficiency"]}
        for park in scenario.units("ev")
        for name in EVCharging.charger_names(park)
    ]
    controls_ev = "charger" in {p.group for p in get_model(scenario.controller).inputs.values()}
    return chargers if controls_ev else []  # else EVs charge at full power


def _start_controller(scenario: Scenario, start: _Starter, fleets: dict[str, Any]) -> None:
    """The controller simulator, one element per battery (plus site and chargers)."""
    batteries = scenario.units("battery")
    chargers = _chargers(scenario)
    controls_ev = bool(chargers)
    start.context = {
        **start.context,
        "chargers": chargers,
        "p_import_max_kw": scenario.control.p_import_max_kw,
        "control": scenario.control.model_dump(mode="json"),
        "assets": {kind: scenario.units(kind) for kind in ("pv", "load")},
        "tariff": {"name": "tariff", **scenario.tariff.model_dump()},
        "ev_parks": scenario.units("ev") if controls_ev else [],
    }
    fleets["controller"] = start(scenario.controller, batteries)


def _connect_controller(
    world: mosaik.World,
    scenario: Scenario,
    fleets: dict[str, Any],
    sources: dict[tuple[str, str], Any],
    observed: dict[tuple[str, str], Any],
) -> None:
    """Measurements to the controller, setpoints back (state feedback time-shifted).

    The controller reads a sensor's ``value`` where a fault corrupts that measurement,
    a device bridge where a device replaces the asset, else the model's output.
    """
    batteries = scenario.units("battery")
    chargers = _chargers(scenario)
    control = _children(fleets["controller"])
    site_inputs = {n for n, p in get_model(scenario.controller).inputs.items() if p.group == "site"}
    for kind in ("pv", "load"):
        # Controllers measure the site's PV + load as one total or each separately.
        attr = f"p_{kind}_kw" if f"p_{kind}_kw" in site_inputs else "p_kw"
        for child in fleets[kind].children if kind in fleets else []:
            if (child.eid, "p_kw") in observed:
                world.connect(observed[(child.eid, "p_kw")], control["site"], ("value", attr))
                continue
            source = sources.get((kind, child.eid), child)
            world.connect(source, control["site"], ("p_kw", attr))
    measures_soc = "soc" in get_model(scenario.controller).inputs
    if batteries:
        battery = _children(fleets["battery"])
        for unit in batteries:
            name = unit["name"]
            world.connect(control[name], battery[name], "p_set_kw")
            if measures_soc:
                sensor = observed.get((name, "soc"))
                world.connect(
                    sensor or sources.get(("battery", name), battery[name]),
                    control[name],
                    ("value", "soc") if sensor is not None else "soc",
                    time_shifted=True,
                    initial_data={"value" if sensor is not None else "soc": unit["soc_init"]},
                )
    if chargers:
        ev = _children(fleets["ev"])
        state = {"connected": 0.0, "e_needed_kwh": 0.0, "t_departure_h": 0.0}
        for charger in chargers:
            name = charger["name"]
            world.connect(control[name], ev[name], ("p_ev_set_kw", "p_set_kw"))
            world.connect(ev[name], control[name], *state, time_shifted=True, initial_data=state)
