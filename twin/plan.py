"""A world as data: the simulators, entities and connections of a run, before mosaik.

Building a world first produces a :class:`WorldPlan`: every simulator with its start and
create parameters and the entities it will have, every connection with its attributes
and whether it is time-shifted. The plan can be printed (:meth:`WorldPlan.table`,
:meth:`WorldPlan.mermaid`, :meth:`WorldPlan.dot`; ``twin plan SCENARIO``) and tested
without running anything; :func:`instantiate` then starts it in mosaik and checks that
every simulator created exactly the entities the plan promised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as _replaced
from pathlib import Path
from typing import Any

from models.base import Clock
from models.sensors import sensor_attrs
from twin.errors import TwinError
from twin.registry import get_model

__all__ = [
    "MODEL_SIMULATOR",
    "Connection",
    "Deferred",
    "Entity",
    "PlanError",
    "Replacement",
    "SimulatorPlan",
    "WorldPlan",
    "instantiate",
    "register_created",
    "resolved",
]

#: The generic simulator that runs any registered model (:mod:`twin.wrapper`).
MODEL_SIMULATOR = "twin.wrapper:ModelSimulator"
#: The parent entity of a model simulator (its elements are the children).
PARENT_EID = "fleet"
#: What the parent entity serves: every measurement of the step, ``{output: [values]}``.
MEASURED_ATTR = "measured"


class PlanError(TwinError):
    """A plan that cannot be built or does not match what mosaik created."""


class Deferred:
    """A value a plan names but reads only when the world starts: a login, a token.

    A plan can then be built, printed and compared without the secret (an unset
    ``password_env`` does not stop ``twin plan``), and its ``repr`` never shows it.
    :func:`instantiate` calls ``read`` right before it starts the simulator.
    """

    def __init__(self, label: str, read: Callable[[], Any]) -> None:
        self.label = label
        self.read = read

    def __repr__(self) -> str:
        return f"<{self.label}: read when the world starts>"


def _resolved(value: Any) -> Any:
    """``value`` with every :class:`Deferred` inside (dicts, lists) read."""
    if isinstance(value, Deferred):
        return value.read()
    if isinstance(value, dict):
        return {key: _resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


@dataclass(frozen=True)
class Entity:
    """One entity of the plan: simulator id, entity id and its type (element group)."""

    sid: str
    eid: str
    type: str

    @property
    def full_id(self) -> str:
        """The id mosaik gives it: ``sid.eid``."""
        return f"{self.sid}.{self.eid}"


@dataclass
class SimulatorPlan:
    """One simulator: how mosaik starts it and what it creates.

    ``sim_config`` is mosaik's entry (``{"python": "module:Class"}`` or ``{"cmd": ...}``);
    ``init`` the keyword parameters of ``world.start``; ``model`` and ``params`` the
    ``create(1, **params)`` call; ``entities`` what it will hold (the elements of a
    model, or the one entity of an adapter). ``parts`` are the Parquet parts it records
    to; ``kind`` what it is in the run (``pv``, ``controller``, ``mqtt``...).
    """

    sid: str
    sim_config: dict[str, str]
    init: dict[str, Any]
    model: str
    params: dict[str, Any]
    entities: list[Entity]
    kind: str = ""
    parts: list[Path] = field(default_factory=list)
    registered_model: str = ""

    @property
    def model_name(self) -> str:
        """The registered model a model simulator runs (``""`` for other simulators)."""
        return self.registered_model

    def children(self) -> dict[str, Entity]:
        """Entities by entity id."""
        return {entity.eid: entity for entity in self.entities}


@dataclass(frozen=True)
class Connection:
    """``src`` feeds ``dst``: (source attribute, destination attribute) pairs.

    A fleet connection (:meth:`WorldPlan.connect_fleet`) joins two parent entities and
    carries a whole group's output array: element ``i`` of the source group
    ``src_group`` feeds element ``index[i]`` of the destination group ``dst_group``
    (``-1``: it feeds nothing).
    """

    src: Entity
    dst: Entity
    attrs: tuple[tuple[str, str], ...]
    time_shifted: bool = False
    initial_data: dict[str, Any] | None = None
    index: tuple[int, ...] | None = None
    src_group: str = ""
    dst_group: str = ""

    @property
    def fleet(self) -> bool:
        """Whether it carries a group's array (a fleet connection)."""
        return self.index is not None

    @property
    def elements(self) -> int:
        """How many element-to-element connections it stands for (1 unless a fleet's)."""
        return 1 if self.index is None else sum(1 for j in self.index if j >= 0)


@dataclass(frozen=True)
class Replacement:
    """An entity that provides an asset's values downstream instead of its model.

    ``provides``: the attributes it serves (the model's outputs it stands in for);
    ``quality``: it also serves a ``quality`` flag (1 measured, 0 model fallback);
    ``fields``: what a database sink stores of it, ``{field: [source tag, quantity]}``;
    ``states``: which of those fields hold at an instant (stamped like states).
    """

    entity: Entity
    provides: tuple[str, ...]
    quality: bool = False
    fields: dict[str, list[str]] = field(default_factory=dict)
    states: tuple[str, ...] = ()


@dataclass
class WorldPlan:
    """Simulators and connections of one run, plus what components share while planning.

    ``fleets`` maps a role (an asset kind, ``tariff``, ``grid``, ``controller``) to its
    simulator; ``replacements`` maps ``(kind, asset)`` to what provides the asset's
    values downstream when it is not the model (a device bridge, :meth:`replace`);
    ``observed`` maps ``(element, quantity)`` to what observers read instead of the
    model's true output: ``(entity, "<quantity>.value")``, the sensor's last valid
    measurement (:meth:`measure`, :meth:`observe`).
    ``context`` and ``tags`` are what every model simulator gets. ``fleet_exchange``:
    components connect whole fleets (:meth:`connect_fleet`) where they can; false
    builds one connection per element instead (the same results, for comparisons).
    """

    clock: Clock
    out_dir: Path
    context: dict[str, Any]
    tags: dict[str, str]
    realtime: bool = False
    fleet_exchange: bool = True
    simulators: dict[str, SimulatorPlan] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    fleets: dict[str, SimulatorPlan] = field(default_factory=dict)
    replacements: dict[tuple[str, str], Replacement] = field(default_factory=dict)
    observed: dict[tuple[str, str], tuple[Entity, str]] = field(default_factory=dict)

    @property
    def results_path(self) -> Path:
        """Where the run's merged results go."""
        return self.out_dir / "results.parquet"

    @property
    def parts(self) -> list[Path]:
        """Every Parquet part a simulator records to, in start order."""
        return [part for sim in self.simulators.values() for part in sim.parts]

    # --- building -----------------------------------------------------------------------

    def add_simulator(self, sim: SimulatorPlan) -> SimulatorPlan:
        """Add a simulator (its id must be new)."""
        if sim.sid in self.simulators:
            raise PlanError(f"two simulators are named {sim.sid!r}")
        self.simulators[sim.sid] = sim
        return sim

    def add_model(
        self,
        model: str,
        units: list[dict[str, Any]],
        *,
        sid: str | None = None,
        role: str | None = None,
        context: dict[str, Any] | None = None,
        record: bool = True,
        fleet: bool = True,
    ) -> SimulatorPlan:
        """A simulator running the registered ``model`` over ``units``.

        Its entities are the model's elements (:meth:`models.base.Model.element_names`).
        It records its outputs to ``parts/<sid>.parquet`` unless ``record`` is false.
        ``fleet``: register it in :attr:`fleets` under ``role`` (default: ``model``),
        where sinks (telemetry, database) find what to mirror.
        """
        sid = sid or model
        context = self.context if context is None else context
        cls = get_model(model)
        groups = cls.element_names(units, context)
        entities = [Entity(sid, name, group) for group, names in groups.items() for name in names]
        params: dict[str, Any] = {"units": units, "context": context}
        parts = []
        if record:
            part = self.out_dir / "parts" / f"{sid}.parquet"
            params["record"] = {"path": str(part), "tags": self.tags}
            parts.append(part)
        sim = SimulatorPlan(
            sid=sid,
            sim_config={"python": MODEL_SIMULATOR},
            init={"model": model, "clock": self.clock.to_dict()},
            model=cls.__name__,
            params=params,
            entities=entities,
            kind=role or model,
            parts=parts,
            registered_model=model,
        )
        self.add_simulator(sim)
        if fleet:
            self.fleets[role or model] = sim
        return sim

    def add_adapter(
        self,
        sid: str,
        target: str,
        model: str,
        eid: str,
        *,
        init: dict[str, Any],
        kind: str,
        parts: list[Path] | None = None,
        feeds: list[tuple[Entity, list[str]]] | None = None,
    ) -> Entity:
        """A simulator of one entity (a bridge, a sink) run by the class ``target``.

        ``target`` is ``"module:Class"``; the simulator is started with ``init`` and
        creates one entity of ``model`` whose id is ``eid``, which this returns.
        ``feeds``: (source, attributes) connected into it (what a sink mirrors).
        """
        entity = Entity(sid, eid, model)
        self.add_simulator(
            SimulatorPlan(
                sid=sid,
                sim_config={"python": target},
                init=init,
                model=model,
                params={},
                entities=[entity],
                kind=kind,
                parts=list(parts or []),
            )
        )
        for source, attrs in feeds or []:
            self.connect(source, entity, *attrs)
        return entity

    def connect(
        self,
        src: Entity,
        dst: Entity,
        *attrs: str | tuple[str, str],
        time_shifted: bool = False,
        initial_data: dict[str, Any] | None = None,
    ) -> None:
        """Connect ``src`` to ``dst`` (attributes as names or (source, destination) pairs)."""
        pairs = tuple((a, a) if isinstance(a, str) else (a[0], a[1]) for a in attrs)
        if not pairs:
            raise PlanError(f"connection {src.full_id} -> {dst.full_id} names no attribute")
        self.connections.append(Connection(src, dst, pairs, time_shifted, initial_data))

    def connect_fleet(
        self,
        src: SimulatorPlan,
        dst: SimulatorPlan,
        *attrs: str | tuple[str, str],
        index: list[int] | tuple[int, ...],
    ) -> Connection:
        """One connection carrying a group's whole output array from ``src`` to ``dst``.

        Element ``i`` of the source group (the group of the source attributes) feeds
        element ``index[i]`` of the destination group (that of the destination
        attributes); ``-1`` skips it (an element replaced by a device keeps its own
        connection from the device). Several sources on one element are summed, as on
        per-element connections. The destination simulator gets the map as its
        ``fleet_inputs`` create parameter; a source feeding a simulator in another process
        gets ``fleet_lists`` (it serves lists, not arrays).

        Raises
        ------
        PlanError
            If either simulator is not a model simulator, an attribute is not a port
            of it, the attributes span several groups, ``index`` does not have one
            entry per source element or points outside the destination group.
        """
        pairs = tuple((a, a) if isinstance(a, str) else (a[0], a[1]) for a in attrs)
        where = f"fleet connection {src.sid} -> {dst.sid}"
        if not pairs:
            raise PlanError(f"{where} names no attribute")
        src_group = _port_group(src, "outputs", [a for a, _ in pairs], where)
        dst_group = _port_group(dst, "inputs", [b for _, b in pairs], where)
        n_src = sum(1 for e in src.entities if e.type == src_group)
        n_dst = sum(1 for e in dst.entities if e.type == dst_group)
        index = tuple(int(j) for j in index)
        if len(index) != n_src:
            raise PlanError(
                f"{where}: index has {len(index)} entries, expected one per {src_group} "
                f"element ({n_src})"
            )
        bad = [j for j in index if not -1 <= j < n_dst]
        if bad:
            raise PlanError(
                f"{where}: index {bad[0]} is not an element of {dst_group} (0..{n_dst - 1}) or -1"
            )
        source = f"{src.sid}.{PARENT_EID}"
        fleet_inputs = dst.params.setdefault("fleet_inputs", {})
        if source in fleet_inputs:
            raise PlanError(f"{where}: connected twice")
        fleet_inputs[source] = {"group": dst_group, "index": list(index)}
        if "python" not in dst.sim_config:  # a remote destination reads JSON: lists
            src.params["fleet_lists"] = True
        edge = Connection(
            Entity(src.sid, PARENT_EID, src.model),
            Entity(dst.sid, PARENT_EID, dst.model),
            pairs,
            index=index,
            src_group=src_group,
            dst_group=dst_group,
        )
        self.connections.append(edge)
        return edge

    def join_site(self, site: str, plan: WorldPlan) -> None:
        """Add the simulators and connections of a site's own ``plan``, sids prefixed.

        A fleet runs several sites in one world (:mod:`twin.fleet`): each site is planned
        alone, as a run of its own (:func:`twin.world.plan_world`), and joined here under
        ``<site>-<sid>`` (mosaik ids are ``sid.eid``: a site name holds no dot). The
        site's model simulators keep their unprefixed id as their random ``stream``
        (sensor noise), so a site draws the same numbers as alone.

        Raises
        ------
        PlanError
            If the site plans a simulator that is not a model simulator (a bridge, a
            sink: its configuration names simulators this cannot rename), or a joined
            id is taken.
        """
        if not site or "." in site:
            raise PlanError(f"site {site!r}: expected a name without dots")
        adapters = sorted(s.sid for s in plan.simulators.values() if not s.model_name)
        if adapters:
            raise PlanError(
                f"site {site!r}: {', '.join(adapters)} cannot share a world with other sites "
                "(only model simulators are joined); run the fleet with mode: split"
            )

        def renamed(entity: Entity) -> Entity:
            return Entity(f"{site}-{entity.sid}", entity.eid, entity.type)

        for sim in plan.simulators.values():
            params = dict(sim.params)
            params["stream"] = sim.sid
            if "fleet_inputs" in params:
                params["fleet_inputs"] = {
                    f"{site}-{source}": spec for source, spec in params["fleet_inputs"].items()
                }
            self.add_simulator(
                SimulatorPlan(
                    sid=f"{site}-{sim.sid}",
                    sim_config=sim.sim_config,
                    init=sim.init,
                    model=sim.model,
                    params=params,
                    entities=[renamed(e) for e in sim.entities],
                    kind=sim.kind,
                    parts=sim.parts,
                    registered_model=sim.registered_model,
                )
            )
        for edge in plan.connections:
            self.connections.append(_replaced(edge, src=renamed(edge.src), dst=renamed(edge.dst)))

    def element_edges(self) -> list[tuple[Entity, Entity, tuple[tuple[str, str], ...]]]:
        """Every connection as element-to-element edges (a fleet connection expanded)."""
        return [(s, d, edge.attrs) for edge in self.connections for s, d in self.pairs(edge)]

    def pairs(self, edge: Connection) -> list[tuple[Entity, Entity]]:
        """The (source, destination) elements a connection joins (one unless a fleet's)."""
        if edge.index is None:
            return [(edge.src, edge.dst)]
        src = [e for e in self.simulators[edge.src.sid].entities if e.type == edge.src_group]
        dst = [e for e in self.simulators[edge.dst.sid].entities if e.type == edge.dst_group]
        return [(s, dst[j]) for s, j in zip(src, edge.index, strict=True) if j >= 0]

    def measure(self, sim: SimulatorPlan, quantity: str, imperfection: dict[str, Any]) -> None:
        """Sensors on ``quantity`` of every element of the model simulator ``sim``.

        The simulator measures the output with ``imperfection`` (fields of
        :class:`models.sensors.Imperfection`), records the measurements as
        ``source=measured`` rows (a part of its own) and serves ``<quantity>.value``,
        which observers read from now on (:attr:`observed`). Measuring an output twice
        keeps the first imperfection.
        """
        cls = get_model(sim.model_name)
        port = cls.outputs.get(quantity)
        if port is None or not port.sensor:
            sensed = [n for n, p in cls.outputs.items() if p.sensor]
            raise PlanError(
                f"{sim.sid}: {sim.model_name} reports no {quantity!r}; measured outputs: "
                f"{', '.join(sensed) or 'none'}"
            )
        sensors = sim.params.setdefault("sensors", {})
        if quantity in sensors:
            return
        sensors[quantity] = dict(imperfection)
        record = sim.params.get("record")
        if record is not None and "measured_path" not in record:
            part = self.out_dir / "parts" / f"{sim.sid}.measured.parquet"
            sim.params["record"] = {**record, "measured_path": str(part)}
            sim.parts.append(part)
        group = port.group or cls.kind
        for entity in sim.entities:
            if entity.type == group:
                self.observed.setdefault((entity.eid, quantity), (entity, f"{quantity}.value"))

    def observe(self, kind: str, entity: Entity, quantity: str) -> tuple[Entity, str]:
        """What an observer (a controller) reads for ``quantity`` of ``entity``.

        A device that replaces the asset and provides the quantity (its measurement), else
        the sensor's last valid measurement where the quantity is measured, else the
        model's true output. Returns ``(entity, attribute)``.
        """
        replacement = self.replacements.get((kind, entity.eid))
        if replacement is not None and quantity in replacement.provides:
            return replacement.entity, quantity
        return self.observed.get((entity.eid, quantity), (entity, quantity))

    def children(self, role: str) -> dict[str, Entity]:
        """Entities of the fleet ``role`` by name (empty if there is none)."""
        sim = self.fleets.get(role)
        return sim.children() if sim is not None else {}

    def replace(self, kind: str, asset: str, replacement: Replacement) -> None:
        """From now on ``replacement`` provides the values of ``asset`` (of ``kind``)."""
        if (kind, asset) in self.replacements:
            raise PlanError(f"{kind} {asset!r} is replaced twice")
        self.replacements[(kind, asset)] = replacement

    @property
    def sources(self) -> dict[tuple[str, str], Entity]:
        """``(kind, asset)`` -> the entity that replaces the asset's model downstream."""
        return {key: r.entity for key, r in self.replacements.items()}

    def source_of(self, kind: str, entity: Entity) -> Entity:
        """What provides ``entity``'s values downstream (a replacement, or itself)."""
        replacement = self.replacements.get((kind, entity.eid))
        return replacement.entity if replacement is not None else entity

    def check_ports(self) -> None:
        """Every connection joins planned entities; between models, an output to an input.

        Raises
        ------
        PlanError
            Listing every attribute a model does not have (with what it has), so a
            wrong wiring is found in the plan, not inside mosaik.
        """
        problems = []
        planned = {e.full_id for sim in self.simulators.values() for e in sim.entities}
        # a model simulator's parent entity serves its measurements as arrays
        parents = {f"{s.sid}.{PARENT_EID}" for s in self.simulators.values() if s.model_name}
        planned |= parents
        for edge in self.connections:
            missing = [e.full_id for e in (edge.src, edge.dst) if e.full_id not in planned]
            if missing:
                problems.append(
                    f"{edge.src.full_id} -> {edge.dst.full_id}: no planned entity "
                    f"{' or '.join(missing)}"
                )
                continue
            for src_attr, dst_attr in edge.attrs:
                for entity, attr, side in (
                    (edge.src, src_attr, "outputs"),
                    (edge.dst, dst_attr, "inputs"),
                ):
                    model = self.simulators[entity.sid].model_name
                    if not model:
                        continue  # an adapter takes what it is configured for
                    if entity.full_id in parents:
                        if (side, attr) == ("outputs", MEASURED_ATTR):
                            continue
                        if not edge.fleet:
                            problems.append(
                                f"{edge.src.full_id} -> {edge.dst.full_id}: the parent "
                                f"{entity.full_id} serves {MEASURED_ATTR!r} and fleet "
                                "connections only"
                            )
                        elif attr not in getattr(get_model(model), side):
                            problems.append(
                                f"{edge.src.full_id} -> {edge.dst.full_id}: {model} has no "
                                f"{side[:-1]} {attr!r}"
                            )
                        continue
                    cls = get_model(model)
                    ports = [
                        n
                        for n, p in getattr(cls, side).items()
                        if (p.group or cls.kind) == entity.type
                    ]
                    measured = self.simulators[entity.sid].params.get("sensors", {})
                    sensed = [
                        a
                        for q in measured
                        if (cls.outputs[q].group or cls.kind) == entity.type
                        for a in sensor_attrs(q)
                        if a.endswith((".measured", ".value")) == (side == "outputs")
                    ]
                    if attr not in ports + sensed:
                        problems.append(
                            f"{edge.src.full_id} -> {edge.dst.full_id}: {entity.full_id} "
                            f"({model} {entity.type}) has no {side[:-1]} {attr!r}; "
                            f"{side}: {', '.join(ports) or 'none'}"
                        )
        if problems:
            raise PlanError("the plan connects what does not exist:\n  " + "\n  ".join(problems))

    # --- reading ------------------------------------------------------------------------

    def table(self) -> str:
        """The plan as two plain-text tables: simulators, then connections.

        A fleet connection shows as one row per element it carries, ``carried by`` the
        connection of the two parent entities.
        """
        rows = [("simulator", "runs", "entities", "records")]
        for sim in self.simulators.values():
            runs = sim.model_name or next(iter(sim.sim_config.values()))
            types: dict[str, int] = {}
            for entity in sim.entities:
                types[entity.type] = types.get(entity.type, 0) + 1
            entities = ", ".join(f"{n} {t}" for t, n in types.items())
            rows.append((sim.sid, runs, entities, "yes" if sim.parts else "no"))
        out = _format(rows)
        rows = [("from", "to", "attributes", "time-shifted", "carried by")]
        for edge in self.connections:
            attrs = ", ".join(a if a == b else f"{a}->{b}" for a, b in edge.attrs)
            shifted = "yes" if edge.time_shifted else ""
            via = f"{edge.src.full_id} -> {edge.dst.full_id}" if edge.fleet else ""
            for src, dst in self.pairs(edge):  # a fleet's: a row per element it carries
                rows.append((src.full_id, dst.full_id, attrs, shifted, via))
        return f"{out}\n\n{_format(rows)}\n"

    def simulator_edges(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Connections folded per pair of simulators: attributes, count, time-shifted.

        ``count`` counts elements: a fleet connection counts each element it carries.
        """
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        for edge in self.connections:
            key = (edge.src.sid, edge.dst.sid)
            entry = edges.setdefault(key, {"attrs": set(), "count": 0, "time_shifted": False})
            entry["attrs"].update(b for _, b in edge.attrs)
            entry["count"] += edge.elements
            entry["time_shifted"] |= edge.time_shifted
        return edges

    def mermaid(self) -> str:
        """A mermaid flowchart of simulators (one node each, edges folded per pair)."""
        lines = ["flowchart LR"]
        for sim in self.simulators.values():
            lines.append(f'    {_node(sim.sid)}["{sim.sid}<br/>{_count(sim)}"]')
        for (src, dst), edge in self.simulator_edges().items():
            label = _edge_label(edge)
            arrow = "-.->" if edge["time_shifted"] else "-->"
            lines.append(f'    {_node(src)} {arrow}|"{label}"| {_node(dst)}')
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        """A Graphviz digraph of simulators (time-shifted edges dashed)."""
        lines = ["digraph world {", "    rankdir=LR;", "    node [shape=box];"]
        for sim in self.simulators.values():
            lines.append(f'    "{sim.sid}" [label="{sim.sid}\\n{_count(sim)}"];')
        for (src, dst), edge in self.simulator_edges().items():
            label = _edge_label(edge)
            style = ' style="dashed"' if edge["time_shifted"] else ""
            lines.append(f'    "{src}" -> "{dst}" [label="{label}"{style}];')
        return "\n".join([*lines, "}"]) + "\n"


def _port_group(sim: SimulatorPlan, side: str, attrs: list[str], where: str) -> str:
    """The one element group the ports ``attrs`` (``side``: inputs/outputs) of ``sim`` share."""
    if not sim.model_name:
        raise PlanError(f"{where}: {sim.sid} is not a model simulator")
    cls = get_model(sim.model_name)
    ports = getattr(cls, side)
    unknown = [a for a in attrs if a not in ports]
    if unknown:
        raise PlanError(
            f"{where}: {sim.sid} ({sim.model_name}) has no {side[:-1]} {unknown[0]!r}; "
            f"{side}: {', '.join(ports) or 'none'}"
        )
    groups = {ports[a].group or cls.kind for a in attrs}
    if len(groups) != 1:
        raise PlanError(f"{where}: {', '.join(attrs)} belong to several groups {sorted(groups)}")
    return groups.pop()


def _edge_label(edge: dict[str, Any]) -> str:
    """The attributes a pair of simulators exchanges and how many connections carry them."""
    return f"{', '.join(sorted(edge['attrs']))} ({edge['count']})"


def _count(sim: SimulatorPlan) -> str:
    n = len(sim.entities)
    return f"{n} entity" if n == 1 else f"{n} entities"


def _node(sid: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in sid)


def _format(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _check_order(sim: SimulatorPlan, plan: WorldPlan, created: list[dict[str, Any]]) -> None:
    """A group a fleet connection carries lists its elements in the planned order."""
    groups = {e.src_group for e in plan.connections if e.fleet and e.src.sid == sim.sid}
    groups |= {e.dst_group for e in plan.connections if e.fleet and e.dst.sid == sim.sid}
    for group in groups:
        made = [c.eid for p in created for c in p.children or [] if c.type == group]
        if made != [e.eid for e in sim.entities if e.type == group]:
            raise PlanError(
                f"simulator {sim.sid!r} lists its {group} elements in another order than "
                "planned (a fleet connection maps them by position)"
            )


def register_created(
    plan: WorldPlan, sim: SimulatorPlan, created: list[Any], entities: dict[str, Any]
) -> None:
    """Add what ``sim`` created to ``entities`` (by full id) after checking it against the plan.

    ``created`` are entities as mosaik shows them (``full_id``, ``eid``, ``type``,
    ``children``); a model simulator's parent is kept too (it serves arrays).

    Raises
    ------
    PlanError
        If the simulator created other entities than planned, or lists a group a fleet
        connection carries in another order.
    """
    found = {}
    for entity in created:
        if entity.children and sim.model_name:
            entities[entity.full_id] = entity  # the parent: measurements as arrays
        for child in entity.children or [entity]:
            found[child.full_id] = child
    wanted = {e.full_id for e in sim.entities}
    if set(found) != wanted:
        missing, extra = sorted(wanted - set(found)), sorted(set(found) - wanted)
        raise PlanError(
            f"simulator {sim.sid!r} created other entities than planned "
            f"(missing: {missing[:5]}, unplanned: {extra[:5]})"
        )
    entities.update(found)
    _check_order(sim, plan, created)


def resolved(value: Any) -> Any:
    """``value`` with every :class:`Deferred` inside (dicts, lists) read."""
    return _resolved(value)


def instantiate(plan: WorldPlan, *, debug: bool = False) -> tuple[Any, dict[str, Any]]:
    """Start every simulator of ``plan`` in a new mosaik world and connect it.

    Returns
    -------
    world : mosaik.World
        The world, ready to run (shut down here if anything fails).
    entities : dict
        mosaik entities by full id (``sid.eid``).

    Raises
    ------
    PlanError
        If a simulator creates other entities than the plan lists.
    """
    import mosaik

    sim_config = {sim.sid: sim.sim_config for sim in plan.simulators.values()}
    world = mosaik.World(
        sim_config, time_resolution=1.0, skip_greetings=True, configure_logging=False, debug=debug
    )
    try:
        entities: dict[str, Any] = {}
        for sim in plan.simulators.values():
            proxy = world.start(sim.sid, sim_id=sim.sid, **_resolved(sim.init))
            created = getattr(proxy, sim.model).create(1, **_resolved(sim.params))
            register_created(plan, sim, created, entities)
        for edge in plan.connections:
            world.connect(
                entities[edge.src.full_id],
                entities[edge.dst.full_id],
                *edge.attrs,
                time_shifted=edge.time_shifted,
                initial_data=edge.initial_data or {},
            )
    except BaseException:
        world.shutdown()  # stop what was started before the failure
        raise
    return world, entities
