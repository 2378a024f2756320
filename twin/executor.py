"""The direct executor: run a world's in-process simulators without mosaik's scheduler.

mosaik 3.6 spends most of a step of a small world in its scheduler: after every step
of every simulator it recomputes the progress of all of them, so one world of N sites
costs ~N^1.85 per step (BENCHMARKS.md). A world whose simulators are all in-process,
time-based and step-driven (:class:`twin.wrapper.ModelSimulator`, or a class that
declares ``direct_stepping = True``) needs none of it. :class:`DirectWorld` starts the
plan's simulators itself and calls the same methods mosaik would, with the same
arguments:

- ``init(sid, time_resolution=1.0, **init)``, ``create(1, model, **params)`` in plan
  order, then ``setup_done()`` for each, and ``finalize()`` at the end;
- at every time a simulator is due (time 0, then the time its ``step`` returned, while
  before ``until``), in a topological order of the same-step connections:
  ``step(time, inputs, max_advance)`` with mosaik's input format
  ``{eid: {attr: {"sid.eid": value}}}`` (sources in mosaik's order, so sums are the
  same to the bit), then ``get_data`` of what its successors read;
- a same-step connection reads the source's latest output at or before ``time``, a
  time-shifted one its latest before ``time`` (the connection's initial data until the
  source has stepped), as mosaik's output cache does; ``max_advance`` is ``until``, what
  mosaik gives a time-based simulator with no triggering ancestors.

``auto`` (the default of a run) uses it when :func:`why_not_direct` finds nothing, else
mosaik; ``direct`` on a world that cannot run so is an :class:`ExecutorError` naming the
simulator that prevents it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from types import MappingProxyType
from typing import Any

from twin.errors import TwinError
from twin.plan import PlanError, WorldPlan, register_created, resolved

__all__ = [
    "EXECUTORS",
    "EXECUTOR_ENV",
    "DirectWorld",
    "ExecutorError",
    "choose_executor",
    "requested_executor",
    "why_not_direct",
]

#: What runs a world's steps: ``auto`` picks ``direct`` where the world allows it.
EXECUTORS = ("auto", "mosaik", "direct")
#: ``TWIN_EXECUTOR=mosaik|direct|auto``: the executor of runs that do not name one.
EXECUTOR_ENV = "TWIN_EXECUTOR"


class ExecutorError(TwinError):
    """The direct executor was asked for a world it cannot run, or a simulator broke its rules."""


def requested_executor(value: str | None = None) -> str:
    """``value``, else ``$TWIN_EXECUTOR``, else ``auto``; checked against :data:`EXECUTORS`.

    Raises
    ------
    ExecutorError
        If it is not one of :data:`EXECUTORS`.
    """
    chosen = value or os.environ.get(EXECUTOR_ENV) or "auto"
    if chosen not in EXECUTORS:
        where = "executor" if value else EXECUTOR_ENV
        raise ExecutorError(f"{where}: expected one of {', '.join(EXECUTORS)}, got {chosen!r}")
    return chosen


def simulator_class(target: str) -> type:
    """The class named ``"module:Class"`` (what mosaik's python starter imports)."""
    module, _, name = target.partition(":")
    try:
        return getattr(import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ExecutorError(f"simulator class {target!r} cannot be imported: {exc}") from exc


def why_not_direct(plan: WorldPlan, *, realtime: bool = False) -> str | None:
    """Why ``plan`` cannot run on the direct executor (None: it can).

    It can when the run is not paced in real time and every simulator runs in this
    process (a ``python`` entry) as a class that declares ``direct_stepping``: a
    time-based simulator that needs nothing of mosaik during its steps (no calls back,
    no real-time pacing, no event-based or hybrid inputs).
    """
    if realtime:
        return "the run is paced in real time (mosaik's rt_factor)"
    for sim in plan.simulators.values():
        target = sim.sim_config.get("python")
        if target is None:
            how = ", ".join(sorted(sim.sim_config)) or "no python entry"
            return f"simulator {sim.sid!r} runs in another process ({how})"
        if not getattr(simulator_class(target), "direct_stepping", False):
            return (
                f"simulator {sim.sid!r} ({target}) is not a direct-stepping simulator "
                "(it may call back into mosaik or pace itself)"
            )
    return None


def choose_executor(plan: WorldPlan, requested: str, *, realtime: bool = False) -> tuple[str, str]:
    """The executor that runs ``plan`` and, when ``auto`` fell back to mosaik, why.

    Raises
    ------
    ExecutorError
        If ``direct`` was requested for a world that cannot run on it.
    """
    if requested == "mosaik":
        return "mosaik", ""
    reason = why_not_direct(plan, realtime=realtime)
    if reason is None:
        return "direct", ""
    if requested == "direct":
        raise ExecutorError(f"executor: direct cannot run this world: {reason}")
    return "mosaik", reason


class _NoMosaik:
    """What a directly stepped simulator sees as ``self.mosaik``: in-process, no calls back."""

    in_process = True

    def __init__(self, sid: str) -> None:
        self.sid = sid

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe these
            raise AttributeError(name)
        raise ExecutorError(
            f"simulator {self.sid!r} called mosaik.{name} during a direct run; "
            "a simulator that calls back into mosaik must not declare direct_stepping"
        )


@dataclass
class _Made:
    """An entity a simulator's ``create`` returned, as mosaik's ``Entity`` shows it."""

    sid: str
    eid: str
    type: str
    children: list[_Made] | None

    @property
    def full_id(self) -> str:
        return f"{self.sid}.{self.eid}"

    @classmethod
    def of(cls, sid: str, raw: dict[str, Any]) -> _Made:
        kids = raw.get("children")
        children = [cls.of(sid, kid) for kid in kids] if kids is not None else None
        return cls(sid, raw["eid"], raw["type"], children)


@dataclass
class _Pull:
    """One (source attribute -> destination attribute) entry of a connection."""

    src_eid: str
    src_attr: str
    dst_eid: str
    dst_attr: str
    src_full: str


class DirectWorld:
    """A plan's simulators started in this process and stepped without mosaik.

    It offers what the runner uses of a mosaik world: :meth:`run`, :meth:`shutdown`,
    and :attr:`direct_simulators` (the instances, :func:`twin.runstate.local_simulators`).

    Raises
    ------
    PlanError
        If a simulator creates other entities than the plan lists, or the same-step
        connections form a cycle (as mosaik refuses it).
    """

    def __init__(self, plan: WorldPlan) -> None:
        self.plan = plan
        self.direct_simulators: dict[str, Any] = {}
        self._done = False
        self.entities: dict[str, Any] = {}
        try:
            for sim in plan.simulators.values():
                instance = simulator_class(sim.sim_config["python"])()
                instance.mosaik = _NoMosaik(sim.sid)
                self.direct_simulators[sim.sid] = instance
                instance.init(sim.sid, time_resolution=1.0, **resolved(sim.init))
                created = instance.create(1, sim.model, **resolved(sim.params))
                register_created(plan, sim, [_Made.of(sim.sid, c) for c in created], self.entities)
            self._wire()
        except BaseException:
            self.shutdown(quiet=True)
            raise

    def _wire(self) -> None:
        """Inputs per simulator in mosaik's order, output requests, initial data, order."""
        plan = self.plan
        # per destination: (source sid, shifted) -> pulls, in first-connection order
        self._pulls: dict[str, dict[tuple[str, bool], list[_Pull]]] = {
            sid: {} for sid in plan.simulators
        }
        self._requests: dict[str, dict[str, list[str]]] = {sid: {} for sid in plan.simulators}
        # per source: [(time, outputs)], the newest two (all a read ever needs)
        self._cache: dict[str, list[tuple[int, dict[str, Any]]]] = {
            sid: [] for sid in plan.simulators
        }
        initial: dict[str, dict[str, dict[str, Any]]] = {}
        after: dict[str, set[str]] = {sid: set() for sid in plan.simulators}
        for edge in plan.connections:
            src, dst = edge.src, edge.dst
            if src.sid == dst.sid:
                raise PlanError(f"{src.full_id} -> {dst.full_id}: a simulator feeds itself")
            group = self._pulls[dst.sid].setdefault((src.sid, edge.time_shifted), [])
            for src_attr, dst_attr in edge.attrs:
                self._requests[src.sid].setdefault(src.eid, []).append(src_attr)
                group.append(_Pull(src.eid, src_attr, dst.eid, dst_attr, src.full_id))
                data = (edge.initial_data or {}).get(src_attr, _MISSING)
                if data is not _MISSING:
                    initial.setdefault(src.sid, {}).setdefault(src.eid, {})[src_attr] = data
            if not edge.time_shifted:
                after[dst.sid].add(src.sid)
        for sid, data in initial.items():
            self._cache[sid].append((-1, data))  # mosaik seeds time -shift
        self._order = _topological(list(plan.simulators), after)
        # what _inputs walks every step: each source's cache and its pulls as plain tuples
        self._feeds: dict[str, list[_Feed]] = {
            sid: [
                (
                    self._cache[src_sid],
                    shifted,
                    [(p.src_eid, p.src_attr, p.dst_eid, p.dst_attr, p.src_full) for p in pulls],
                )
                for (src_sid, shifted), pulls in groups.items()
            ]
            for sid, groups in self._pulls.items()
        }

    def _inputs(self, sid: str, time: int) -> dict[str, Any]:
        """The simulator's input dict at ``time``, built as mosaik's ``get_input_data``."""
        inputs: dict[str, Any] = {}
        for cache, shifted, pulls in self._feeds[sid]:
            outputs = _latest(cache, time - 1 if shifted else time)
            for src_eid, src_attr, dst_eid, dst_attr, src_full in pulls:
                value = outputs.get(src_eid, _NOTHING).get(src_attr)
                attrs = inputs.get(dst_eid)
                if attrs is None:
                    attrs = inputs[dst_eid] = {}
                sources = attrs.get(dst_attr)
                if sources is None:
                    sources = attrs[dst_attr] = {}
                sources[src_full] = value
        return inputs

    def run(
        self,
        until: int,
        *,
        print_progress: bool = False,
        rt_factor: float | None = None,
        rt_strict: bool = False,
    ) -> None:
        """Step every simulator to ``until`` (seconds), then finalize them (mosaik's ``run``).

        Raises
        ------
        ExecutorError
            With a real-time factor (mosaik paces those), or when a simulator returns
            no later next step or outputs for another time than its step's.
        """
        if rt_factor is not None:
            raise ExecutorError("the direct executor does not pace runs in real time")
        from tqdm import tqdm

        sims = self.direct_simulators
        for sid in self._order:
            sims[sid].setup_done()
        # ``step`` is looked up at every call (mosaik does the same): a simulator's step
        # may be replaced during the run (the run's first-step watch unwraps itself)
        steppers: list[tuple[str, Any, Callable[..., Any], dict[str, list[str]], list[Any]]] = [
            (sid, sims[sid], sims[sid].get_data, self._requests[sid], self._cache[sid])
            for sid in self._order
        ]
        due = dict.fromkeys(self._order, 0)
        inputs_of = self._inputs
        bar = tqdm(total=until, disable=not print_progress, colour="green", unit="steps")
        try:
            now = 0
            while now < until:
                for sid, sim, get_data, request, cache in steppers:
                    if due[sid] != now:
                        continue
                    nxt = sim.step(now, inputs_of(sid, now), until)
                    if not isinstance(nxt, int) or nxt <= now:
                        raise ExecutorError(
                            f"simulator {sid!r} returned next step {nxt!r} at time {now}: "
                            "a time-based simulator returns a later integer time"
                        )
                    due[sid] = nxt if nxt < until else None
                    if request:
                        data = get_data(request)
                        if data.pop("time", now) != now:
                            raise ExecutorError(
                                f"simulator {sid!r} returned outputs for another time than "
                                f"its step at {now} (mosaik's scheduler handles that)"
                            )
                        cache.append((now, data))
                        if len(cache) > 2:
                            del cache[0]
                pending = [t for t in due.values() if t is not None]
                later = min(pending) if pending else until
                if print_progress:
                    bar.update(min(later, until) - bar.n)
                now = later
        finally:
            bar.close()
        self.shutdown()

    def shutdown(self, *, quiet: bool = False) -> None:
        """Finalize every started simulator once (all of them, then the first error).

        Raises
        ------
        Exception
            The first error a ``finalize`` raised (unless ``quiet``).
        """
        if self._done:
            return
        self._done = True
        first: Exception | None = None
        for sim in self.direct_simulators.values():
            try:
                sim.finalize()
            except Exception as exc:  # noqa: BLE001 - every simulator gets to finalize
                first = first or exc
        if first is not None and not quiet:
            raise first


_MISSING = object()
#: The outputs of an entity that served none (read-only, shared by every run).
_NOTHING: Mapping[str, Any] = MappingProxyType({})
#: One source's part of a simulator's inputs: its output cache, whether the connection
#: is time-shifted, and its pulls ``(src_eid, src_attr, dst_eid, dst_attr, src_full)``.
_Feed = tuple[list[tuple[int, dict[str, Any]]], bool, list[tuple[str, str, str, str, str]]]


def _latest(cache: list[tuple[int, dict[str, Any]]], time: int) -> dict[str, Any]:
    """The newest outputs at or before ``time`` (mosaik's ``get_output_for``)."""
    for at, data in reversed(cache):
        if at <= time:
            return data
    return {}


def _topological(sids: list[str], after: dict[str, set[str]]) -> list[str]:
    """``sids`` with every simulator after its same-step sources (ties: plan order).

    Raises
    ------
    PlanError
        If the same-step connections form a cycle.
    """
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(sids):
        ready = [s for s in sids if s not in placed and after[s] <= placed]
        if not ready:
            stuck = sorted(s for s in sids if s not in placed)
            raise PlanError(
                f"the same-step connections between {', '.join(stuck)} form a cycle "
                "(close it with a time-shifted connection)"
            )
        order.append(ready[0])
        placed.add(ready[0])
    return order
