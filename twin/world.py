"""Planning and building the mosaik world of a scenario.

:func:`plan_world` produces the world as data (:class:`twin.plan.WorldPlan`): the core
adds the grid, then every component the scenario uses (:mod:`twin.component`) adds its
simulators and entities, then every such component its connections. :func:`build_world`
instantiates the plan in mosaik. The data flow of one step of the built-in components::

    tariff
    pv, load ──► controller ──► battery ──► grid
        └──────────────────────────────────► grid
    battery.soc ──(time-shifted: last step's end)──► controller

Assets inject into their bus (``p_kw``, ``q_kvar``: one connection per asset kind
carries the whole fleet's array, :meth:`twin.plan.WorldPlan.connect_fleet`); the
controller measures the site's PV + load power and each battery's SoC and sets battery
power. Every model simulator
records its own outputs into a Parquet part under ``<out>/parts/`` (see
:mod:`twin.wrapper`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.base import Clock
from twin.component import Component, components
from twin.plan import WorldPlan, instantiate
from twin.scenario import ScenarioBase

__all__ = [
    "EXCHANGE_ENV",
    "BuiltWorld",
    "build_world",
    "grid_injections",
    "plan_world",
    "start_world",
]

#: ``TWIN_EXCHANGE=element`` plans one connection per element instead of one per fleet
#: (:attr:`twin.plan.WorldPlan.fleet_exchange`): the same results, for comparisons and
#: benchmarks.
EXCHANGE_ENV = "TWIN_EXCHANGE"


@dataclass
class BuiltWorld:
    """A world started in mosaik from its plan, and what the runner needs of it."""

    world: Any
    plan: WorldPlan
    entities: dict[str, Any] = field(default_factory=dict)
    #: What runs the steps: ``mosaik`` or ``direct`` (:mod:`twin.executor`).
    executor: str = "mosaik"
    #: Why ``auto`` fell back to mosaik (empty when it did not).
    fallback: str = ""

    @property
    def clock(self) -> Clock:
        """The run's clock."""
        return self.plan.clock

    @property
    def results_path(self) -> Path:
        """Where the merged results go."""
        return self.plan.results_path

    @property
    def parts(self) -> list[Path]:
        """The Parquet parts the simulators record to."""
        return self.plan.parts


def plan_world(
    scenario: ScenarioBase,
    out_dir: Path,
    run_id: str,
    *,
    realtime: bool = False,
    scenario_hash: str = "",
    active: list[Component] | None = None,
) -> WorldPlan:
    """Every simulator and connection of ``scenario``, as data.

    Parameters
    ----------
    scenario : ScenarioBase
        A validated, resolved scenario.
    out_dir : Path
        Run directory; simulators record to ``out_dir/parts/``.
    run_id : str
        Tag of the run in the results.
    realtime : bool
        The run is paced in real time (MQTT telemetry is then not bundled by default).
    scenario_hash : str
        Hash of the run's inputs (:mod:`twin.identity`), a tag of its results.
    active : list of Component, optional
        The run's own component instances (default: every one the scenario uses), so
        that what a component's services started is known to its plan.
    """
    context = {
        "site": scenario.site.model_dump(),
        "weather": scenario.weather,
        "grid": scenario.grid.source,
        "seed": scenario.seed,
    }
    tags = {"site": scenario.name, "run_id": run_id, "source": "twin"}
    if scenario_hash:
        tags["scenario_hash"] = scenario_hash
    exchange = os.environ.get(EXCHANGE_ENV, "fleet")
    if exchange not in ("fleet", "element"):
        raise ValueError(f"{EXCHANGE_ENV}={exchange!r}: expected fleet or element")
    plan = WorldPlan(
        scenario.clock(),
        Path(out_dir),
        context,
        tags,
        realtime=realtime,
        fleet_exchange=exchange == "fleet",
    )
    grid_unit = {"name": "poc", "grid": scenario.grid.source, "solver": scenario.grid.solver}
    plan.add_model("grid", [grid_unit])
    if active is None:
        active = [component for component in components() if component.wanted(scenario)]
    for component in active:
        component.add_entities(scenario, plan)
    for component in active:
        component.add_connections(scenario, plan)
    plan.check_ports()
    return plan


def build_world(
    scenario: ScenarioBase,
    out_dir: Path,
    run_id: str,
    *,
    debug: bool = False,
    realtime: bool = False,
    scenario_hash: str = "",
    active: list[Component] | None = None,
    executor: str = "mosaik",
) -> BuiltWorld:
    """Plan the world of ``scenario`` and start it (see :func:`plan_world`).

    ``executor``: ``mosaik`` starts it in a mosaik world; ``direct`` in a
    :class:`twin.executor.DirectWorld`; ``auto`` directly where the world allows it
    (:func:`twin.executor.choose_executor`; the built world says which and why not).

    Raises
    ------
    twin.executor.ExecutorError
        If ``direct`` was asked for a world that cannot run without mosaik.
    """
    plan = plan_world(
        scenario,
        out_dir,
        run_id,
        realtime=realtime,
        scenario_hash=scenario_hash,
        active=active,
    )
    return start_world(plan, executor, realtime=realtime, debug=debug)


def start_world(
    plan: WorldPlan, executor: str = "mosaik", *, realtime: bool = False, debug: bool = False
) -> BuiltWorld:
    """Start ``plan`` on ``executor``: mosaik, direct or auto (see :func:`build_world`)."""
    from twin.executor import DirectWorld, choose_executor

    chosen, fallback = choose_executor(plan, executor, realtime=realtime)
    if chosen == "direct":
        direct = DirectWorld(plan)
        return BuiltWorld(direct, plan, direct.entities, executor=chosen)
    world, entities = instantiate(plan, debug=debug)
    return BuiltWorld(world, plan, entities, executor=chosen, fallback=fallback)


def grid_injections(plan: WorldPlan) -> dict[str, list[str]]:
    """The elements whose ``p_kw`` the plan connects into the grid's buses, by kind.

    A source that replaces an asset (a device bridge) counts as the asset: its values
    are in the results under the asset's kind and name (``source=real``). A fleet
    connection counts every element it carries; names are in their fleet's order.
    """
    replaced = {r.entity.full_id: key for key, r in plan.replacements.items()}
    grid = plan.fleets["grid"].sid
    found: dict[str, set[str]] = {}
    for src, dst, attrs in plan.element_edges():
        if dst.sid != grid or dst.type != "bus" or ("p_kw", "p_kw") not in attrs:
            continue
        kind, name = replaced.get(src.full_id, (src.type, src.eid))
        found.setdefault(kind, set()).add(name)
    return {kind: _in_fleet_order(plan, kind, names) for kind, names in found.items()}


def _in_fleet_order(plan: WorldPlan, kind: str, names: set[str]) -> list[str]:
    """``names`` in the order of ``kind``'s fleet (the rest sorted after them)."""
    order = [e.eid for e in plan.fleets[kind].entities] if kind in plan.fleets else []
    listed = [n for n in order if n in names]
    return listed + sorted(names - set(listed))
