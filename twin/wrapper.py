"""One generic mosaik simulator for every model class.

A model declares its ports once (``Model.inputs``/``Model.outputs``); this wrapper
derives mosaik's ``meta`` from them, creates one parent entity per model instance with
one child entity per element (a PV plant, a bus, a line...), gathers the children's
inputs into arrays (several sources on one input are summed: power at a bus, site
totals), steps the vectorised model once, and serves its outputs.

Each simulator also records its own outputs (when ``create`` gets a ``record``
parameter) with a :class:`twin.recorder.ChunkRecorder`: a block of a bounded number of
steps (state outputs hold the initial state, then the state at the end of every step,
so each row holds the value at its time stamp), filled with one numpy assignment per
output and step, and written as a closed Parquet chunk under ``parts/<sid>/`` whenever
it is full (the rest at ``finalize``): memory does not grow with the steps and a killed
run keeps its closed chunks. This replaces a mosaik recorder sink, which
cost ~75 us per source simulator per step (a year run's loop went from 46.8 s to
32.7 s without it, see BENCHMARKS.md); the run merges the parts.

Sensors (``create`` parameter ``sensors``, ``{output: imperfection}``) measure outputs a
model declares with ``Port(sensor=...)``: one :class:`models.sensors.SensorBank` over
all of them (one vectorised pass, a random stream per output), right after the model.
Each measured output ``q`` adds attributes to its elements: ``q.measured`` and
``q.value`` (what observers read) and the fault modifier inputs ``q.offset``,
``q.noise_std``, ``q.dropout``, ``q.stuck``; the parent entity serves every measurement
of the step as arrays (``measured``: ``{output: list}``), one connection for a whole
fleet. The measurements are recorded as a part of their own
(``source=measured``).

Fleet exchange: the parent entity also serves every output as its group's whole array
and takes every input as a source group's array (:meth:`twin.plan.WorldPlan.connect_fleet`,
create parameter ``fleet_inputs``: ``{source full id: {group, index}}``), scattered onto
its elements with one ``np.bincount`` per source; per-element inputs add on top. One
connection then carries a fleet, so the per-step cost of mosaik's exchange does not grow
with the number of elements. In-process the array passes as is; a simulator in another
process, or one feeding such a simulator (``fleet_lists``), serves a list (JSON).

Everything it receives at ``init``/``create`` is plain JSON-able data, so the same
simulator can run in-process or as a remote mosaik process. What it measures (its
:attr:`ModelSimulator.timings`, :attr:`~ModelSimulator.steps_done`) stays on the
instance: the run that owns it reads it (:mod:`twin.runstate`), so runs never share it.
"""

from __future__ import annotations

import zlib
from time import perf_counter
from typing import Any

import mosaik_api_v3
import numpy as np

from models.base import Clock, Model, check_input
from models.sensors import MODIFIERS, Imperfection, SensorBank, sensor_attrs
from twin.plan import MEASURED_ATTR, PARENT_EID
from twin.realtime import Paced
from twin.recorder import ChunkRecorder, chunk_dir
from twin.registry import get_model

__all__ = ["MEASURED_ATTR", "PARENT_EID", "ModelSimulator", "build_meta", "fleet_attrs"]


def build_meta(cls: type[Model]) -> dict[str, Any]:
    """The mosaik ``meta`` of a model class: a parent model plus one per element group."""
    groups: dict[str, list[str]] = {cls.kind: []}
    for name, port in [*cls.inputs.items(), *cls.outputs.items()]:
        attrs = groups.setdefault(port.group or cls.kind, [])
        if name not in attrs:
            attrs.append(name)
    for name, port in cls.outputs.items():
        if port.sensor:
            groups[port.group or cls.kind].extend(sensor_attrs(name))
    models: dict[str, Any] = {
        cls.__name__: {
            "public": True,
            "params": [
                "units",
                "context",
                "record",
                "sensors",
                "fleet_inputs",
                "fleet_lists",
                "stream",
            ],
            "attrs": [MEASURED_ATTR, *fleet_attrs(cls)],
        }
    }
    for group, attrs in groups.items():
        models[group] = {"public": False, "params": [], "attrs": attrs}
    return {"type": "time-based", "models": models}


def fleet_attrs(cls: type[Model]) -> list[str]:
    """What the parent entity exchanges as whole arrays: every input and output."""
    return list(dict.fromkeys([*cls.inputs, *cls.outputs]))


class ModelSimulator(Paced, mosaik_api_v3.Simulator):
    """mosaik simulator wrapping one instance of any registered model class.

    Attributes
    ----------
    timings : dict of str to float
        Wall seconds spent: ``"model"`` in the model's own ``step``, ``"sensors"`` in
        measuring its reported outputs, ``"wrapper"`` in gathering inputs and serving
        outputs, ``"recording"`` in recording and ``"setup"`` in building the model.
    steps_done : int
        Steps recorded so far (a failed run saves this many).
    direct_stepping : bool
        True: a time-based step of its inputs that needs nothing of mosaik, so the
        direct executor may run it (:mod:`twin.executor`).
    """

    direct_stepping = True

    def __init__(self) -> None:
        super().__init__({"type": "time-based", "models": {}})
        self.model: Model | None = None
        self._index: dict[str, tuple[str, int]] = {}
        self._outputs: dict[str, np.ndarray] = {}
        self.recorder: ChunkRecorder | None = None
        self.steps_done = 0
        self.timings: dict[str, float] = {}
        self._limited: set[str] = set()  # inputs with plausible ranges (Port.limits)
        self._bank: SensorBank | None = None  # every sensor of the simulator, one pass
        self._slices: dict[str, slice] = {}  # measured output -> its part of the bank
        self._modifier_rows: dict[str, np.ndarray] = {}  # neutral modifiers of the bank
        # this step's measurements and values of the whole bank (each output a slice)
        self._sensed: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
        # "q.measured" / "q.value" -> (0: measured, 1: value; where output q starts)
        self._sensed_at: dict[str, tuple[int, int]] = {}
        self._measured_recorder: ChunkRecorder | None = None
        self._state_outputs: set[str] = set()
        # fleet inputs: source full id -> (destination indices, kept source rows, hit mask,
        # whether every source row is kept)
        self._fleet: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}
        self._fleet_lists = False  # serve lists even in-process (a remote destination)
        # every input's default array, read-only: an unconnected input passes as is, a
        # connected one is copied on its first write of a step (:meth:`_inputs`)
        self._defaults: dict[str, np.ndarray] = {}
        self._serve_arrays: bool | None = None  # fleet outputs as arrays (in-process)

    def init(
        self, sid: str, time_resolution: float = 1.0, *, model: str, clock: dict[str, Any]
    ) -> dict[str, Any]:
        """Load the model class ``model`` and declare its meta."""
        if time_resolution != 1.0:
            raise ValueError("twin simulators run with time_resolution=1.0 (integer seconds)")
        self.sid = sid
        self.cls = get_model(model)
        self.clock = Clock.from_dict(clock)
        self.meta.update(build_meta(self.cls))
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """Instantiate the model once; its elements become child entities."""
        if num != 1 or self.model is not None:
            raise ValueError(f"{self.sid}: create exactly one {model} (it is vectorised)")
        started = perf_counter()
        self.model = self.cls(params["units"], self.clock, params.get("context") or {})
        self.timings["setup"] = perf_counter() - started
        sensed = ["sensors"] if params.get("sensors") else []  # the parts a step adds to
        self.timings.update(dict.fromkeys(["model", *sensed, "wrapper", "recording"], 0.0))
        self._limited = {name for name, port in self.cls.inputs.items() if port.limits}
        self._defaults = self.model.default_inputs()
        for default in self._defaults.values():
            default.flags.writeable = False
        self._state_outputs = set(self.model.state_outputs())
        children = []
        for group, names in self.model.elements.items():
            for i, name in enumerate(names):
                if name in self._index:
                    raise ValueError(f"{self.sid}: two elements are named {name!r}")
                self._index[name] = (group, i)
                children.append({"eid": name, "type": group, "rel": []})
        self._fleet_lists = bool(params.get("fleet_lists"))
        for source, spec in (params.get("fleet_inputs") or {}).items():
            self._add_fleet_input(source, spec["group"], spec["index"])
        record = params.get("record")
        if params.get("sensors"):
            self._start_sensing(params["sensors"], params.get("stream") or self.sid)
        if record:
            self._start_recording(record["path"], record["tags"])
            if self._slices and record.get("measured_path"):
                self._record_measured(record["measured_path"], record["tags"])
        return [{"eid": PARENT_EID, "type": model, "rel": [], "children": children}]

    def _add_fleet_input(self, source: str, group: str, index: list[int]) -> None:
        """Element ``i`` of ``source``'s arrays feeds element ``index[i]`` of ``group``."""
        assert self.model is not None
        n = len(self.model.elements.get(group, ()))
        where = np.asarray(index, dtype=np.intp)
        if group not in self.model.elements or ((where < -1) | (where >= n)).any():
            raise ValueError(f"{self.sid}: fleet input from {source} does not fit group {group!r}")
        keep = np.flatnonzero(where >= 0)
        hit = np.zeros(n, dtype=bool)
        hit[where[keep]] = True
        every_row = len(keep) == len(where)  # no source row is left out
        self._fleet[source] = (where[keep], keep, hit, every_row)

    def _scatter(self, arrays: dict[str, np.ndarray], fleet: dict[str, Any]) -> dict[str, Any]:
        """Put the fleet inputs onto the elements; return which elements each one set."""
        hits = {}
        for attr, sources in fleet.items():
            n = len(arrays[attr])
            total: np.ndarray | None = None
            hit: np.ndarray | None = None
            for source, values in sources.items():
                where, keep, got, every_row = self._fleet[source]
                rows = np.asarray(values, dtype=float)
                if not every_row or len(rows) != len(keep):
                    rows = rows[keep]
                # a bin's sum starts at 0.0, as the sum over the sources does
                part = np.bincount(where, weights=rows, minlength=n)
                if total is None or hit is None:
                    total, hit = part, got.copy()
                else:
                    total += part
                    hit |= got
            if total is None or hit is None:  # no source: nothing set
                hits[attr] = np.zeros(n, dtype=bool)
                continue
            if np.count_nonzero(hit) == n:  # the fleets set every element: their sums
                arrays[attr] = total
            else:
                target = arrays[attr] = arrays[attr].copy()  # never the read-only default
                target[hit] = total[hit]
            hits[attr] = hit
        return hits

    def _start_sensing(self, spec: dict[str, dict[str, Any]], stream: str) -> None:
        """One sensor bank over every measured output (seeded by the run's seed and ``stream``).

        ``stream`` is the simulator id, or the id it has in its site's own plan when a
        fleet joins the site into one world (:meth:`twin.plan.WorldPlan.join_site`).
        """
        assert self.model is not None
        seed = int(self.model.context.get("seed", 0))
        initial = self.model.state()
        imperfections: list[Imperfection] = []
        streams: list[tuple[int, np.random.Generator]] = []
        starts: list[np.ndarray] = []
        state_rows: list[np.ndarray] = []
        for attr, imperfection in spec.items():
            port = self.cls.outputs.get(attr)
            if port is None or not port.sensor:
                raise ValueError(f"{self.sid}: {attr!r} is not an output a sensor measures")
            n = len(self.model.elements[port.group or self.cls.kind])
            at = len(imperfections)
            self._slices[attr] = slice(at, at + n)
            imperfections += [Imperfection(**imperfection)] * n
            key = zlib.crc32(f"{stream}:{attr}".encode())  # a stream per output
            streams.append((n, np.random.default_rng([seed, 7919, key])))
            is_state = attr in self._state_outputs
            start = np.asarray(initial.get(attr, np.full(n, np.nan)), float) if is_state else None
            starts.append(np.full(n, np.nan) if start is None else start)
            state_rows.append(np.full(n, is_state))
        first = np.concatenate(starts)
        self._state_row = np.concatenate(state_rows)
        # a state output is measured at the step's end, an interval's at its start
        self._state_offset = self._state_row.astype(np.int64) * self.clock.step_s
        n = len(imperfections)
        self._bank = SensorBank(n, imperfections, streams, first, self._state_offset)
        self._modifier_rows = {m: np.full(n, v) for m, v in MODIFIERS.items()}
        self._sensed = (first.copy(), first.copy())
        for attr, part in self._slices.items():
            self._sensed_at[f"{attr}.measured"] = (0, part.start)
            self._sensed_at[f"{attr}.value"] = (1, part.start)

    def _recorder(self, path: str, tags: dict[str, str]) -> ChunkRecorder:
        """A chunk recorder into the chunk directory of the part ``path``."""
        clock = self.clock
        start_ns = clock.start.tz_convert("UTC").as_unit("ns").value
        return ChunkRecorder(chunk_dir(path), start_ns, clock.step_s, clock.n_steps, tags)

    def _record_measured(self, path: str, tags: dict[str, str]) -> None:
        """Record the measurements like the outputs, tagged ``source=measured``."""
        assert self.model is not None
        self.measured_path = path
        recorder = self._recorder(path, {**tags, "source": "measured"})
        for attr in self._slices:
            port = self.cls.outputs[attr]
            group = port.group or self.cls.kind
            state = attr in self._state_outputs
            first = self._sensed[0][self._slices[attr]] if state else None
            recorder.add(attr, group, self.model.elements[group], state=state, initial=first)
        self._measured_recorder = recorder

    def _start_recording(self, path: str, tags: dict[str, str]) -> None:
        """Declare every output's series (its elements) to a chunk recorder."""
        assert self.model is not None
        self.part_path = path
        recorder = self.recorder = self._recorder(path, tags)
        initial = self.model.state()
        for attr, port in self.cls.outputs.items():
            group = port.group or self.cls.kind
            state = attr in self._state_outputs
            first = initial.get(attr) if state else None
            recorder.add(attr, group, self.model.elements[group], state=state, initial=first)

    @property
    def recording(self) -> bool:
        """Whether recorded steps wait to be saved (:meth:`save`)."""
        return self.recorder is not None

    def save(self, n_steps: int | None = None) -> int:
        """Write the open chunks (at most up to step ``n_steps``); return the steps saved."""
        if self.recorder is None:
            return 0
        steps = self.steps_done if n_steps is None else min(n_steps, self.steps_done)
        self.recorder.close(steps)
        self.recorder = None
        if self._measured_recorder is not None:
            self._measured_recorder.close(steps)
            self._measured_recorder = None
        return steps

    def finalize(self) -> None:
        """Write the recorded outputs at the end of the simulation."""
        self.save()

    def step(self, time: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Gather inputs into arrays, step the model over one clock step."""
        assert self.model is not None
        self.step_started(time)
        started = perf_counter()
        arrays, modifiers = self._inputs(inputs)
        dt_s = self.clock.step_s
        gathered = perf_counter()
        self._outputs = self.model.step(self.clock.time_at(time), dt_s, arrays)
        stepped = perf_counter()
        if self._bank is not None:
            self._measure(time, dt_s, modifiers)
        done = perf_counter()
        if self.recorder is not None:
            k = time // dt_s
            self.recorder.record(k, self._outputs)
            if self._measured_recorder is not None:
                measured = self._sensed[0]
                parts = {attr: measured[part] for attr, part in self._slices.items()}
                self._measured_recorder.record(k, parts)
            self.steps_done = k + 1
        recorded = perf_counter()
        timings = self.timings
        timings["model"] += stepped - gathered
        if self._bank is not None:
            timings["sensors"] += done - stepped
        timings["wrapper"] += gathered - started
        timings["recording"] += recorded - done
        return time + dt_s

    def _inputs(
        self, inputs: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The model's input arrays and the sensors' fault modifiers of mosaik's ``inputs``.

        An input nothing sent this step is its read-only default (the same array every
        step; a model never writes into its inputs); one that was sent is a copy of the
        default with the sums of its sources written in.
        """
        assert self.model is not None
        defaults = self._defaults
        arrays = dict(defaults)
        modifiers: dict[str, np.ndarray] = {}
        fleet = inputs.get(PARENT_EID)
        hits = self._scatter(arrays, fleet) if fleet else {}
        received = set(hits)
        index = self._index
        for eid, attrs in inputs.items():
            if eid == PARENT_EID:
                continue
            i = index[eid][1]
            for attr, sources in attrs.items():
                if "." in attr:  # a fault modifier of a sensor: "<output>.<modifier>"
                    quantity, name = attr.split(".", 1)
                    if name not in modifiers:
                        modifiers[name] = self._modifier_rows[name].copy()
                    modifiers[name][self._slices[quantity].start + i] = sum(sources.values())
                    continue
                total = sum(sources.values())
                target = arrays[attr]
                if target is defaults[attr]:  # its first write this step: a copy
                    target = arrays[attr] = target.copy()
                hit = hits.get(attr)
                if hit is not None and hit[i]:  # on top of what the fleet inputs set
                    target[i] += total
                else:
                    target[i] = total
                received.add(attr)
        for attr in received & self._limited:  # bounded before they touch the physics
            port = self.cls.inputs[attr]
            check_input(attr, port, arrays[attr], self.model.elements[port.group or self.cls.kind])
        return arrays, modifiers

    def _measure(self, time: int, dt_s: int, modifiers: dict[str, np.ndarray]) -> None:
        """Measure every sensed output: an interval's at its start, a state's at its end."""
        assert self._bank is not None
        outputs = self._outputs
        true = np.concatenate([outputs[attr] for attr in self._slices])
        # a state's at the step's end (the bank's offsets: the clock's step, dt_s)
        self._sensed = self._bank.measure(true, time, modifiers)

    @property
    def in_process(self) -> bool:
        """Whether this simulator runs in the run's process (values pass as objects).

        In mosaik's process, or stepped by the direct executor (:mod:`twin.executor`).
        """
        remote = getattr(self, "mosaik", None)
        if getattr(type(remote), "in_process", False):
            return True
        return type(remote).__module__.startswith("mosaik.")

    def _fleet_output(self, attr: str) -> Any:
        """What the parent serves: the measurements, or an output's whole array."""
        if attr == MEASURED_ATTR:
            measured = self._sensed[0]
            return {q: measured[part].tolist() for q, part in self._slices.items()}
        values = np.asarray(self._outputs[attr], dtype=float)
        if self._serve_arrays is None:  # known once the simulator runs
            self._serve_arrays = self.in_process and not self._fleet_lists
        if self._serve_arrays:
            return values.copy()
        return values.tolist()

    def get_data(self, outputs: dict[str, list[str]]) -> dict[str, Any]:
        """Serve the latest outputs of the requested children."""
        started = perf_counter()
        data: dict[str, Any] = {}
        index, sensed, sensed_at = self._index, self._sensed, self._sensed_at
        model_outputs = self._outputs
        for eid, attrs in outputs.items():
            if eid == PARENT_EID:  # whole arrays: measurements, fleet outputs
                data[eid] = {attr: self._fleet_output(attr) for attr in attrs}
                continue
            i = index[eid][1]
            row = data[eid] = {}
            for attr in attrs:
                at = sensed_at.get(attr)  # "q.measured" / "q.value", else an output
                if at is None:
                    row[attr] = float(model_outputs[attr][i])
                else:
                    row[attr] = float(sensed[at[0]][at[1] + i])
        self.timings["wrapper"] += perf_counter() - started
        return data
