"""The results store: tidy time series in Parquet plus run metadata.

Tidy means one row per (time, asset, quantity), tagged like the InfluxDB schema:
``time`` (UTC), ``site``, ``run_id``, ``source``, ``asset``, ``kind``, ``quantity``,
``value``. Simulators record in bounded chunks (:mod:`twin.recorder`) that the run
streams into ``results.parquet`` at its end (row groups of a chunk of steps x a group
of series); :func:`open_results` reads that file lazily (filters, one quantity as a
time x asset table, time windows), :func:`load_results` whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.errors import ResultsError
from twin.recorder import chunk_dir, read_chunk_meta

__all__ = [
    "RESULT_COLUMNS",
    "Operated",
    "ResultBuffer",
    "Results",
    "as_operated",
    "chunk_tables",
    "chunked_steps",
    "load_results",
    "merge_parts",
    "open_results",
    "read_run",
    "recover",
    "tidy_table",
    "wide",
    "write_tables",
]

RESULT_COLUMNS = ("time", "site", "run_id", "source", "asset", "kind", "quantity", "value")
SERIES_PER_ROW_GROUP = 64
#: Most rows of a row group of ``results.parquet`` (what a lazy reader decodes at once).
ROWS_PER_ROW_GROUP = 1 << 18
#: Key of the tidy file's index (assets in order, sources) in its Parquet metadata.
INDEX_KEY = b"twin"


class ResultBuffer:
    """Preallocated per-series arrays for a run of ``n_steps`` steps.

    Interval series (means over a step) have one value per step, stamped with the
    step's start. State series (values at an instant, see ``Port.state``) have one
    more: value ``i`` is the state at ``times[i]``, the last one the state at the end
    of the run.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        UTC start time of every step.
    tags : dict
        Constant tags of the run (``site``, ``run_id``, ``source``).
    end : pandas.Timestamp, optional
        End of the last step (needed only for state series).
    """

    def __init__(
        self, times: pd.DatetimeIndex, tags: dict[str, str], end: pd.Timestamp | None = None
    ) -> None:
        self.times = times.tz_convert("UTC")
        self.tags = tags
        self.series: dict[tuple[str, str, str], np.ndarray] = {}
        #: Keys of the state series (``len(times) + 1`` values each).
        self.states: set[tuple[str, str, str]] = set()
        self.instants = self.times
        if end is not None:
            self.instants = self.times.append(pd.DatetimeIndex([end]).tz_convert("UTC"))

    def column(self, asset: str, kind: str, quantity: str) -> np.ndarray:
        """The array of one series (created filled with NaN on first use)."""
        key = (asset, kind, quantity)
        values = self.series.get(key)
        if values is None:
            values = self.series[key] = np.full(len(self.times), np.nan)
        return values

    def state_column(self, asset: str, kind: str, quantity: str) -> np.ndarray:
        """The array of one state series: ``len(times) + 1`` values, start to end."""
        key = (asset, kind, quantity)
        values = self.series.get(key)
        if values is None:
            values = self.series[key] = np.full(len(self.instants), np.nan)
            self.states.add(key)
        return values

    def _table(self, keys: list[tuple[str, str, str]], n: int) -> pa.Table:
        stamps = self.instants[:n].as_unit("ns").asi8
        return tidy_table(keys, stamps, [self.series[k][:n] for k in keys], self.tags)

    def write_parquet(self, path: str | Path, n_steps: int | None = None) -> int:
        """Write every series to ``path`` in row groups; return the number of rows.

        ``n_steps`` limits the output to the first steps (a run that stopped early);
        state series get the state at the end of the last step written as well.
        """
        n = len(self.times) if n_steps is None else n_steps
        groups = [
            (sorted(k for k in self.series if k not in self.states), n),
            (sorted(self.states), min(n + 1, len(self.instants))),
        ]
        chunks = (
            self._table(keys[start : start + SERIES_PER_ROW_GROUP], rows)
            for keys, rows in groups
            for start in range(0, len(keys), SERIES_PER_ROW_GROUP)
        )
        return write_tables(path, chunks)


def tidy_table(
    keys: list[tuple[str, str, str]],
    stamps: np.ndarray,
    values: list[np.ndarray],
    tags: dict[str, str],
) -> pa.Table:
    """Tidy rows of series ``keys`` (asset, kind, quantity), one after the other.

    ``stamps`` are the UTC nanoseconds of every row of a series; ``values`` one array of
    ``len(stamps)`` values per key. Tags are dictionary-encoded.
    """
    n, count = len(stamps), len(keys)

    def tag(labels_of: list[str]) -> pa.Array:
        labels, codes = np.unique(np.array(labels_of, dtype=object), return_inverse=True)
        return pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(codes.astype(np.int32), n)), pa.array(labels.tolist())
        )

    def const(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n * count, dtype=np.int32)), pa.array([value])
        )

    time = pa.array(np.tile(stamps, count), pa.timestamp("ns", "UTC"))
    return pa.table(
        {
            "time": time,
            "site": const(tags.get("site", "")),
            "run_id": const(tags.get("run_id", "")),
            "source": const(tags.get("source", "twin")),
            "asset": tag([k[0] for k in keys]),
            "kind": tag([k[1] for k in keys]),
            "quantity": tag([k[2] for k in keys]),
            "value": pa.array(np.concatenate(values) if values else np.empty(0)),
        }
    )


class _TidyIndex:
    """What a tidy file holds, gathered while it is written.

    Its assets in order of first occurrence (the order of :func:`load_results`'
    categories, so of :func:`wide`'s columns) and its sources; stored in the file's
    metadata (key :data:`INDEX_KEY`).
    """

    def __init__(self) -> None:
        self.assets: dict[str, None] = {}
        self.sources: set[str] = set()

    def add(self, table: pa.Table) -> None:
        if "asset" not in table.column_names or "source" not in table.column_names:
            return
        for chunk in table.column("asset").chunks:
            self.assets.update(dict.fromkeys(_first_occurrence(chunk)))
        for chunk in table.column("source").chunks:
            self.sources.update(_first_occurrence(chunk))

    def metadata(self) -> dict[bytes, bytes]:
        text = json.dumps({"assets": list(self.assets), "sources": sorted(self.sources)})
        return {INDEX_KEY: text.encode()}


def _first_occurrence(chunk: pa.Array) -> list[str]:
    """The distinct labels of a tag column's chunk, in order of first occurrence."""
    labels, codes = _labels_codes(chunk)
    used, first = np.unique(codes, return_index=True)
    return [labels[c] for c in used[np.argsort(first, kind="stable")]]


def _labels_codes(chunk: pa.Array) -> tuple[list[str], np.ndarray]:
    """Labels and per-row codes of a tag column's chunk (dictionary-encoded or not)."""
    if pa.types.is_dictionary(chunk.type):
        codes = chunk.indices.to_numpy(zero_copy_only=False)
        return chunk.dictionary.to_pylist(), codes
    labels, codes = np.unique(np.asarray(chunk.to_pylist(), dtype=object), return_inverse=True)
    return labels.tolist(), codes


def write_tables(path: str | Path, tables: Iterable[pa.Table]) -> int:
    """Write tables of one schema as row groups of one Parquet file; return its rows.

    Row groups hold at most :data:`ROWS_PER_ROW_GROUP` rows, so a reader decodes little
    at a time; a tidy file gets its index in the metadata (:class:`Results` uses it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer = None
    index = _TidyIndex()
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=ROWS_PER_ROW_GROUP)
            index.add(table)
            rows += table.num_rows
        if writer is not None:
            writer.add_key_value_metadata(index.metadata())
    finally:
        if writer is not None:
            writer.close()
    return rows


def chunk_tables(directory: str | Path, n_steps: int | None = None) -> Iterator[pa.Table]:
    """Tidy tables of a simulator's chunk files (:mod:`twin.recorder`), in step order.

    One table per chunk and group of :data:`SERIES_PER_ROW_GROUP` series, so memory is
    bounded by a chunk. ``n_steps`` cuts the run after that many steps (a failed run's
    common completed step); the state series get their value at the end of the last step
    kept. A run that fits one chunk gives the rows :meth:`ResultBuffer.write_parquet` does.
    """
    files = sorted(Path(directory).glob("[0-9]*.parquet"))
    end = n_steps if n_steps is not None else chunked_steps(directory)
    for path in files:
        chunk = pq.read_table(path)
        meta = read_chunk_meta(chunk.schema)
        start, steps = int(meta["start"]), int(meta["steps"])
        if start > end or (start == end and start > 0):
            continue
        m = min(steps, end - start)
        last = start + m == end
        stamps = chunk.column("time").cast(pa.int64()).to_numpy()
        keys = [tuple(key) for key in meta["keys"]]
        columns = {key: j for j, key in enumerate(keys)}
        states = {key for key, state in zip(keys, meta["states"], strict=True) if state}
        groups = [
            (sorted(k for k in keys if k not in states), m),
            (sorted(states), m + 1 if last else m),
        ]
        for group, rows in groups:
            for at in range(0, len(group), SERIES_PER_ROW_GROUP):
                part = group[at : at + SERIES_PER_ROW_GROUP]
                values = [chunk.column(str(columns[k])).to_numpy()[:rows] for k in part]
                yield tidy_table(part, stamps[:rows], values, meta["tags"])


def chunked_steps(directory: str | Path) -> int:
    """Steps a simulator's closed chunks hold (0 if none)."""
    steps = 0
    for path in Path(directory).glob("[0-9]*.parquet"):
        meta = read_chunk_meta(pq.read_schema(path))
        steps = max(steps, int(meta["start"]) + int(meta["steps"]))
    return steps


def _part_tables(part: Path, n_steps: int | None) -> Iterator[pa.Table]:
    """A part's tidy tables: a chunk directory's, or a Parquet file's row groups."""
    if part.is_file():
        with pq.ParquetFile(part) as file:
            for i in range(file.num_row_groups):
                yield file.read_row_group(i)
    chunks = chunk_dir(part)
    if chunks.is_dir():
        yield from chunk_tables(chunks, n_steps)


def merge_parts(parts: list[Path], path: str | Path, n_steps: int | None = None) -> int:
    """Stream the parts (one per simulator) into one tidy file; return its rows.

    A part is a Parquet file of tidy rows or the chunk directory of a
    :class:`twin.recorder.ChunkRecorder` (:func:`twin.recorder.chunk_dir` of the part's
    path); memory stays within a chunk. ``n_steps`` cuts chunked parts after that step.
    """
    return write_tables(path, (t for part in parts for t in _part_tables(Path(part), n_steps)))


def recover(run_dir: str | Path) -> int:
    """Write ``results.parquet`` from the chunks a killed run left in ``parts/``.

    Every simulator's closed chunks are cut to the fewest steps any of them holds, so the
    results are a consistent, shorter run. Returns those steps.

    Raises
    ------
    ResultsError
        If the run directory holds no chunks.
    """
    parts = Path(run_dir) / "parts"
    dirs = sorted(d for d in parts.glob("*") if d.is_dir() and any(d.glob("[0-9]*.parquet")))
    if not dirs:
        raise ResultsError(f"{parts}: no recorded chunks to recover")
    steps = min(chunked_steps(d) for d in dirs)
    merge_parts(
        [d.parent / f"{d.name}.parquet" for d in dirs], Path(run_dir) / "results.parquet", steps
    )
    return steps


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """The tidy results of a run directory (``results.parquet``); tags are categorical."""
    return pd.read_parquet(Path(run_dir) / "results.parquet")


class Results:
    """The tidy results of a run, read lazily (:func:`open_results`).

    Only what is asked for is read, a row group at a time (a row group holds one
    recorded chunk of steps of a group of series): a filter on ``kind``, ``quantity``,
    ``source``, ``asset``, ``site``, ``run_id`` (a value or a list of values) and a time
    window (``start``, ``end`` excluded; row groups outside it are skipped) reads the
    filter's columns, then the wanted columns of the matching rows. Memory holds the
    rows selected and one row group, not the file. :func:`wide` and :func:`as_operated`
    accept it in place of a frame (as :func:`twin.kpi.compute_kpis` does), with equal
    results.

    Parameters
    ----------
    path : str or Path
        A ``results.parquet`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ResultsError(f"{self.path}: no results file")
        self.schema = pq.read_schema(self.path)
        meta = pq.read_metadata(self.path).metadata or {}
        #: The file's index (:func:`write_tables`): ``assets`` in order, ``sources``.
        self.index: dict[str, Any] | None = (
            json.loads(meta[INDEX_KEY]) if INDEX_KEY in meta else None
        )
        self._window: dict[str, Any] = {}

    def between(self, start: Any = None, end: Any = None) -> Results:
        """A view of the rows from ``start`` to ``end`` (excluded; ``None``: open).

        Every read of the view (:meth:`wide`, :meth:`frame`...) skips the row groups
        outside the window: computing on a window holds that window, not the run.
        """
        view = copy.copy(self)
        view._window = {"start": start, "end": end}
        return view

    def _selected(
        self, columns: list[str] | None, where: dict[str, Any]
    ) -> Iterator[tuple[pa.Table, int]]:
        """Per row group: the wanted columns of its matching rows, and how many match."""
        where = {**self._window, **where}
        tags = {k: v for k, v in where.items() if k not in ("start", "end") and v is not None}
        window = [
            None if where.get(edge) is None else pd.Timestamp(where[edge]).as_unit("ns").value
            for edge in ("start", "end")
        ]
        start, end = window
        wanted = list(self.schema.names) if columns is None else columns
        with pq.ParquetFile(self.path, pre_buffer=False) as file:
            time_at = file.schema_arrow.get_field_index("time")
            for i in range(file.num_row_groups):
                group = file.metadata.row_group(i)
                if not _overlaps(group.column(time_at).statistics, start, end):
                    continue
                mask = self._mask(file, i, tags, start, end)
                matched = group.num_rows if mask is None else int(mask.sum())
                if matched == 0:
                    continue
                rows = file.read_row_group(i, columns=wanted)
                yield (rows if mask is None else rows.filter(mask)), matched

    @staticmethod
    def _mask(
        file: pq.ParquetFile, i: int, tags: dict[str, Any], start: int | None, end: int | None
    ) -> np.ndarray | None:
        """Rows of row group ``i`` that pass the filter (``None``: all of them)."""
        names = [*tags, *(["time"] if (start, end) != (None, None) else [])]
        if not names:
            return None
        read = file.read_row_group(i, columns=names)
        mask = np.ones(read.num_rows, bool)
        for name, value in tags.items():
            values = [value] if isinstance(value, str) else list(value)
            hit = np.zeros(read.num_rows, bool)
            for one in values:
                hit |= _equal(read.column(name), one)
            mask &= hit
        if "time" in names:
            stamps = read.column("time").cast(pa.int64()).to_numpy()
            if start is not None:
                mask &= stamps >= start
            if end is not None:
                mask &= stamps < end
        return mask

    def table(self, columns: list[str] | None = None, **where: Any) -> pa.Table:
        """The rows matching ``where`` (see the class) as an Arrow table."""
        tables = [rows for rows, _ in self._selected(columns, where)]
        if not tables:
            empty = self.schema.empty_table()
            return empty if columns is None else empty.select(columns)
        return pa.concat_tables(tables)

    def frame(self, columns: list[str] | None = None, **where: Any) -> pd.DataFrame:
        """The rows matching ``where`` as a tidy frame (categorical tags, as loaded)."""
        return self.table(columns, **where).to_pandas()

    def count(self, **where: Any) -> int:
        """Rows matching ``where`` (reads only the filter's columns)."""
        return sum(matched for _, matched in self._selected(["time"], where))

    def batches(self, rows: int = 1 << 18, **where: Any) -> Iterator[pd.DataFrame]:
        """The rows matching ``where`` as tidy frames of at most ``rows`` rows, in file order."""
        for table, _ in self._selected(None, where):
            for at in range(0, table.num_rows, rows):
                yield table.slice(at, rows).to_pandas()

    def chunks(self, freq: str = "1D", **where: Any) -> Iterator[pd.DataFrame]:
        """The rows matching ``where`` per time window of ``freq`` (a day by default).

        Each window reads only the row groups that overlap it, so memory holds one window.
        """
        meta = pq.read_metadata(self.path)
        time_at = self.schema.get_field_index("time")
        bounds = [
            (stats.min, stats.max)
            for i in range(meta.num_row_groups)
            if (stats := meta.row_group(i).column(time_at).statistics) is not None
            and stats.has_min_max
        ]
        if not bounds:
            return
        first = pd.Timestamp(min(low for low, _ in bounds))
        last = pd.Timestamp(max(high for _, high in bounds))
        width = pd.tseries.frequencies.to_offset(freq)
        for start in pd.date_range(first.floor(freq), last, freq=freq):
            frame = self.frame(start=start, end=start + width, **where)
            if len(frame):
                yield frame

    def wide(self, kind: str, quantity: str, source: str = "twin") -> pd.DataFrame:
        """One quantity of one kind and source as a time x asset table (as :func:`wide`).

        Reads the matching rows' time, asset and value into one array: memory holds
        the table, not tidy rows.
        """
        if self.index is None:  # a file written before the index: through a tidy frame
            rows = self.frame(kind=kind, quantity=quantity, source=source)
            return wide(rows, kind, quantity, source)
        return self._wide(kind, quantity, source).dropna(axis=1, how="all")

    def _wide(self, kind: str, quantity: str, source: str) -> pd.DataFrame:
        """:meth:`wide` before its all-NaN columns are dropped (needs the index).

        Each row group becomes a small time x asset block at once (its rows are not
        kept); the blocks are placed in the table at the end.
        """
        order = self.index["assets"]  # type: ignore[index]
        position = {name: j for j, name in enumerate(order)}
        blocks = []
        where = {"kind": kind, "quantity": quantity, "source": source}
        for rows, _ in self._selected(["time", "asset", "value"], where):
            assets = np.concatenate(
                [
                    np.array([position[label] for label in labels], dtype=np.int64)[codes]
                    for labels, codes in map(_labels_codes, rows.column("asset").chunks)
                ]
            )
            stamps, at_row = np.unique(
                rows.column("time").cast(pa.int64()).to_numpy(), return_inverse=True
            )
            present, at_column = np.unique(assets, return_inverse=True)
            block = np.full((len(stamps), len(present)), np.nan)
            block[at_row, at_column] = rows.column("value").to_numpy()
            blocks.append((stamps, present, block))
        if not blocks:  # nothing matches: what the tidy path gives for no rows
            empty = self.schema.empty_table().to_pandas()
            return wide(empty, kind, quantity, source)
        stamps = np.unique(np.concatenate([b[0] for b in blocks]))
        present = np.unique(np.concatenate([b[1] for b in blocks]))
        table = np.full((len(stamps), len(present)), np.nan)
        while blocks:
            at, assets, block = blocks.pop(0)
            cells = np.ix_(np.searchsorted(stamps, at), np.searchsorted(present, assets))
            into = table[cells]
            np.copyto(into, block, where=~np.isnan(block))  # a block's gaps are not values
            table[cells] = into
        return pd.DataFrame(
            table,
            index=pd.DatetimeIndex(pd.to_datetime(stamps, unit="ns", utc=True), name="time"),
            columns=pd.Index([order[j] for j in present], dtype=object, name="asset"),
        )

    def has_source(self, source: str) -> bool:
        """Whether any row has the source tag ``source``."""
        if self.index is not None:
            return source in self.index["sources"]
        return self.count(source=source) > 0

    def as_operated(self) -> Results:
        """The lazy form of :func:`as_operated`: this, or a view that puts real values in."""
        return Operated(self.path) if self.has_source("real") else self


class Operated(Results):
    """Lazy :func:`as_operated` results: one quantity at a time, real values put in."""

    def wide(self, kind: str, quantity: str, source: str = "twin") -> pd.DataFrame:
        """As :func:`wide` of :func:`as_operated` of the whole results."""
        if self.index is None:
            rows = self.frame(kind=kind, quantity=quantity, source=["twin", "real"])
            return wide(_as_operated_frame(rows, any_real=True), kind, quantity, source)
        if source != "twin":  # the operated view holds the twin's rows only
            return wide(self.schema.empty_table().to_pandas(), kind, quantity, source)
        twin = self._wide(kind, quantity, "twin")
        real = self._wide(kind, quantity, "real").reindex(index=twin.index, columns=twin.columns)
        return twin.mask(real.notna(), real).dropna(axis=1, how="all")

    def as_operated(self) -> Results:
        """Itself: real values are in already."""
        return self


def _overlaps(stats: Any, start: int | None, end: int | None) -> bool:
    """Whether a row group whose time statistics are ``stats`` may hold ``[start, end)``."""
    if stats is None or not stats.has_min_max or (start, end) == (None, None):
        return True
    low, high = (pd.Timestamp(t).as_unit("ns").value for t in (stats.min, stats.max))
    return not ((end is not None and low >= end) or (start is not None and high < start))


def _equal(column: pa.ChunkedArray, value: str) -> np.ndarray:
    """Rows of a tag column equal to ``value`` (compares dictionary codes)."""
    parts = []
    for chunk in column.chunks:
        labels, codes = _labels_codes(chunk)
        code = labels.index(value) if value in labels else -1
        parts.append(codes == code)
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def open_results(run_dir: str | Path) -> Results:
    """The results of a run directory, read lazily (see :class:`Results`)."""
    return Results(Path(run_dir) / "results.parquet")


def wide(
    results: pd.DataFrame | Results, kind: str, quantity: str, source: str = "twin"
) -> pd.DataFrame:
    """One quantity of one kind and source (twin, real, residual) as a time x asset table.

    ``results``: a tidy frame or lazy :class:`Results` (which read only that quantity).
    """
    if isinstance(results, Results):
        return results.wide(kind, quantity, source)
    mask = (results["kind"] == kind) & (results["quantity"] == quantity)
    if "source" in results:
        mask &= results["source"] == source
    sel = results[mask]
    table = sel.pivot(index="time", columns="asset", values="value").sort_index()
    table.columns = table.columns.astype(str)
    return table.dropna(axis=1, how="all")


def as_operated(results: pd.DataFrame | Results) -> pd.DataFrame | Results:
    """The twin's rows with measured values (``source=real``) put in where they exist.

    In hybrid and hardware-in-the-loop runs the grid and the controller saw a device's
    measured value when it was fresh and the model's otherwise; this view holds exactly
    those values under ``source=twin``. Residual rows and the quality flag are dropped.
    Lazy :class:`Results` give a lazy view.
    """
    if isinstance(results, Results):
        return results.as_operated()
    any_real = "source" in results and bool((results["source"] == "real").any())
    return _as_operated_frame(results, any_real)


def _as_operated_frame(results: pd.DataFrame, any_real: bool) -> pd.DataFrame:
    if not any_real:
        return results
    twin = results[results["source"] == "twin"].copy()
    real = results[(results["source"] == "real") & results["value"].notna()]
    keys = ["time", "asset", "kind", "quantity"]
    merged = twin.merge(real[[*keys, "value"]], on=keys, how="left", suffixes=("", "_real"))
    measured = merged["value_real"].notna()
    merged.loc[measured, "value"] = merged.loc[measured, "value_real"]
    return merged.drop(columns="value_real")


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The run metadata (``run.json``)."""
    return json.loads((Path(run_dir) / "run.json").read_text())
