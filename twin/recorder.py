"""Recording a simulator's series in bounded chunks written while the run goes.

A :class:`ChunkRecorder` holds one block of ``K`` steps for every series of one
simulator (``K`` from a byte budget, :data:`CHUNK_BYTES`), filled with one numpy row
assignment per output and step. When the block is full it is written and **closed** as
``<dir>/<chunk:06d>.parquet`` and the block is reused, so memory does not grow with the
number of steps and a run that dies (an exception, even ``SIGKILL``) keeps every closed
chunk on disk, readable with any Parquet reader.

A chunk has one row per series: its ``asset``, ``kind``, ``quantity``, whether it is a
``state`` and its ``values``, a fixed-size list of ``float64``; the file's metadata (key
``twin``) holds the tags, the chunk's first step, its steps and its time stamps (UTC
nanoseconds of the first row and of a step). Writing one is a few columns whatever the
number of series (a 10,000-bus grid records ~40,000), and its values are laid out series
after series, as the tidy rows are. A chunk of ``s`` steps has ``s + 1`` values per
series, the instants ``start .. start + s``: interval series (means over a step) fill the
first ``s`` and leave the last ``NaN``; state series (values at an instant) fill all of
them, the last being the state at the end of the chunk, which is also the first value of
the next one. :func:`read_chunk` reads one back;
:func:`twin.results.merge_parts` turns chunks into tidy rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "CHUNK_BYTES",
    "MIN_CHUNK_STEPS",
    "METADATA_KEY",
    "Chunk",
    "ChunkRecorder",
    "chunk_dir",
    "chunk_steps_for",
    "read_chunk",
    "read_chunk_meta",
]

#: Bytes of values a recorder holds per simulator: steps per chunk = this / (8 x series).
CHUNK_BYTES = 2 * 2**20
#: Fewest steps per chunk: a simulator with tens of thousands of series (a 10,000-bus
#: grid) would otherwise write a Parquet file every few steps, which then dominates the
#: step; its chunk is larger (96 x 8 B per series) but still does not grow with the run.
MIN_CHUNK_STEPS = 96
#: Key of the chunk description in a chunk file's Parquet metadata.
METADATA_KEY = b"twin"
#: Version of the chunk layout (``format`` in the description): 2 is a row per series;
#: chunks without it (a column per series, a ``time`` column) are still read.
CHUNK_FORMAT = 2


def chunk_dir(part: str | Path) -> Path:
    """The chunk directory of a part path: ``parts/<sid>.parquet`` -> ``parts/<sid>``."""
    part = Path(part)
    return part.parent / part.name.removesuffix(".parquet")


def chunk_steps_for(n_series: int, n_steps: int, budget: int | None = None) -> int:
    """Steps per chunk: ``budget`` bytes of float64, at least 96, at most ``n_steps``.

    The floor is :data:`MIN_CHUNK_STEPS`.
    """
    budget = CHUNK_BYTES if budget is None else budget
    steps = max(MIN_CHUNK_STEPS, budget // (8 * max(n_series, 1)))
    return max(1, min(n_steps, steps))


@dataclass(frozen=True)
class _Output:
    """Where one output's elements live in the block."""

    name: str
    columns: slice
    state: bool


class ChunkRecorder:
    """Record one simulator's outputs into closed Parquet chunks of ``chunk_steps`` steps.

    Parameters
    ----------
    directory : str or Path
        Where the chunk files go (created on the first write).
    start_ns : int
        UTC start of step 0, nanoseconds since the epoch.
    step_s : int
        Step length in seconds.
    n_steps : int
        Steps of the run.
    tags : dict of str to str
        Constant tags of every row (``site``, ``run_id``, ``source``).
    chunk_steps : int, optional
        Steps per chunk; default from :data:`CHUNK_BYTES` once the series are known.
    """

    def __init__(
        self,
        directory: str | Path,
        start_ns: int,
        step_s: int,
        n_steps: int,
        tags: Mapping[str, str],
        chunk_steps: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.start_ns = int(start_ns)
        self.step_ns = int(step_s) * 1_000_000_000
        self.n_steps = int(n_steps)
        self.tags = dict(tags)
        self.chunk_steps = chunk_steps
        self.keys: list[tuple[str, str, str]] = []
        self.states: list[bool] = []
        self._outputs: list[_Output] = []
        self._initial: list[np.ndarray] = []
        self._block: np.ndarray | None = None
        self._intervals: list[tuple[str, slice]] = []
        self._state_outputs: list[tuple[str, slice]] = []
        self._key_columns: dict[str, pa.Array] | None = None
        #: Steps recorded so far.
        self.steps_done = 0
        #: Chunk files written so far.
        self.chunks_written = 0
        self._chunk_start = 0  # first step of the open chunk
        self._closed = False

    def add(
        self,
        name: str,
        kind: str,
        elements: Iterable[str],
        *,
        state: bool = False,
        initial: Any = None,
    ) -> None:
        """Declare output ``name``: one series per element, tagged ``kind``.

        A state output's row ``k`` is its value at the start of step ``k``; ``initial``
        is its value at the start of the run (``NaN`` if not given).
        """
        if self._block is not None:
            raise RuntimeError(f"{self.directory}: outputs are declared before the first step")
        elements = list(elements)
        at = len(self.keys)
        self.keys += [(element, kind, name) for element in elements]
        self.states += [state] * len(elements)
        columns = slice(at, at + len(elements))
        self._outputs.append(_Output(name, columns, state))
        first = np.full(len(elements), np.nan)
        if state and initial is not None:
            first[:] = initial
        self._initial.append(first)

    def _start(self) -> np.ndarray:
        """Allocate the block (``K + 1`` rows) once every output is declared."""
        if self.chunk_steps is None:
            self.chunk_steps = chunk_steps_for(len(self.keys), self.n_steps)
        block = np.full((self.chunk_steps + 1, len(self.keys)), np.nan)
        for output, first in zip(self._outputs, self._initial, strict=True):
            if output.state:
                block[0, output.columns] = first
                self._state_outputs.append((output.name, output.columns))
            else:
                self._intervals.append((output.name, output.columns))
        self._block = block
        return block

    def record(self, k: int, outputs: Mapping[str, Any]) -> None:
        """Record step ``k``'s outputs (interval ones at row ``k``, states at ``k + 1``)."""
        block = self._block if self._block is not None else self._start()
        row = k - self._chunk_start
        if row >= self.chunk_steps:  # type: ignore[operator]
            self._flush(self.chunk_steps)  # type: ignore[arg-type]
            row = k - self._chunk_start
        here = block[row]
        for name, columns in self._intervals:
            here[columns] = outputs[name]
        after = block[row + 1]
        for name, columns in self._state_outputs:
            after[columns] = outputs[name]
        self.steps_done = k + 1

    def _flush(self, steps: int) -> None:
        """Write the open chunk's first ``steps`` steps and close it; start the next."""
        block = self._block
        assert block is not None
        if steps > 0:
            self._write(block, steps)
        self._chunk_start += steps
        carried = block[steps].copy()  # states at the start of the next chunk
        block.fill(np.nan)
        block[0] = carried
        for _, columns in self._intervals:
            block[0, columns] = np.nan

    def _write(self, block: np.ndarray, steps: int) -> None:
        """Write ``steps`` steps of the block (``steps + 1`` rows) as the next chunk file.

        One row per series, its values a fixed-size list: the block transposed, so the
        cost is a few columns, not one per series.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._key_columns is None:
            self._key_columns = _key_columns(self.keys, self.states)
        series = np.ascontiguousarray(block[: steps + 1].T)  # series after series
        values = pa.FixedSizeListArray.from_arrays(pa.array(series.reshape(-1)), steps + 1)
        meta = {
            "format": CHUNK_FORMAT,
            "tags": self.tags,
            "start": self._chunk_start,
            "steps": steps,
            "start_ns": self.start_ns + self.step_ns * self._chunk_start,
            "step_ns": self.step_ns,
        }
        table = pa.table({**self._key_columns, "values": values})
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
        path = self.directory / f"{self.chunks_written:06d}.parquet"
        partial = path.with_suffix(".parquet.part")
        pq.write_table(
            table,
            partial,
            compression="lz4",  # a chunk is read once, at the finish: speed over size
            use_dictionary=["kind", "quantity"],
            write_statistics=False,
        )
        partial.replace(path)  # a chunk file is complete or absent, never half written
        self.chunks_written += 1

    def close(self, n_steps: int | None = None) -> int:
        """Write the open chunk, at most up to step ``n_steps``; return the steps on disk.

        Closed chunks are never rewritten: a chunk beyond ``n_steps`` stays on disk and
        :func:`twin.results.merge_parts` cuts it (``n_steps``).
        """
        if self._closed:
            return min(self.steps_done, self.n_steps if n_steps is None else n_steps)
        self._closed = True
        end = self.steps_done if n_steps is None else min(n_steps, self.steps_done)
        if self._block is None:
            self._start()
        if end > self._chunk_start or self.chunks_written == 0:
            self._write(self._block, max(end - self._chunk_start, 0))  # type: ignore[arg-type]
        self._block = None
        return end


def _key_columns(keys: list[tuple[str, str, str]], states: list[bool]) -> dict[str, pa.Array]:
    """A chunk's key columns: asset, kind, quantity and state of every series."""
    return {
        "asset": pa.array([key[0] for key in keys], pa.string()),
        "kind": pa.array([key[1] for key in keys], pa.string()),
        "quantity": pa.array([key[2] for key in keys], pa.string()),
        "state": pa.array(states, pa.bool_()),
    }


def read_chunk_meta(schema: pa.Schema) -> dict[str, Any]:
    """The description a :class:`ChunkRecorder` stored in a chunk file's schema."""
    meta = (schema.metadata or {}).get(METADATA_KEY)
    if meta is None:
        raise ValueError("not a twin chunk file (no 'twin' metadata)")
    return json.loads(meta)


@dataclass(frozen=True)
class Chunk:
    """One chunk file read back (:func:`read_chunk`).

    ``values`` holds a row of ``steps + 1`` values per series, ``stamps`` their instants
    (UTC nanoseconds); ``keys`` are the series' ``(asset, kind, quantity)``, ``states``
    which of them are states.
    """

    tags: dict[str, str]
    start: int
    steps: int
    stamps: np.ndarray
    keys: list[tuple[str, str, str]]
    states: list[bool]
    values: np.ndarray


def read_chunk(path: str | Path) -> Chunk:
    """Read a chunk file a :class:`ChunkRecorder` wrote (either layout)."""
    table = pq.read_table(path)
    meta = read_chunk_meta(table.schema)
    start, steps = int(meta["start"]), int(meta["steps"])
    if "format" not in meta:  # a column per series and a time column (before format 2)
        keys = [(str(a), str(k), str(q)) for a, k, q in meta["keys"]]
        stamps = table.column("time").cast(pa.int64()).to_numpy()
        values = np.empty((len(keys), steps + 1))
        for j in range(len(keys)):
            values[j] = table.column(str(j)).to_numpy()
        return Chunk(meta["tags"], start, steps, stamps, keys, list(meta["states"]), values)
    stamps = int(meta["start_ns"]) + int(meta["step_ns"]) * np.arange(steps + 1, dtype=np.int64)
    column = table.column("values").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    keys = list(
        zip(
            table.column("asset").to_pylist(),
            table.column("kind").to_pylist(),
            table.column("quantity").to_pylist(),
            strict=True,
        )
    )
    states = table.column("state").to_pylist()
    return Chunk(
        meta["tags"], start, steps, stamps, keys, states, flat.reshape(len(keys), steps + 1)
    )
