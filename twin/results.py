"""The results store: tidy time series in Parquet plus run metadata.

Tidy means one row per (time, asset, quantity), tagged like the InfluxDB schema:
``time`` (UTC), ``site``, ``run_id``, ``source``, ``asset``, ``kind``, ``quantity``,
``value``. Simulators record in bounded chunks (:mod:`twin.recorder`) that the run
streams into ``results.parquet`` at its end (row groups of a chunk of steps x a group
of series, :func:`series_per_table`; its metadata indexes which series every row group
holds, :mod:`twin.tidyindex`); :func:`open_results` reads that file lazily (filters,
quantities as time x asset tables, time windows), :func:`load_results` whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.errors import ResultsError
from twin.recorder import chunk_dir, read_chunk, read_chunk_meta
from twin.tidyindex import TAGS, RowIndex, TidyIndex, labels_codes

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
#: Key of the tidy file's index (:class:`twin.tidyindex.TidyIndex`) in its Parquet metadata.
INDEX_KEY = b"twin"


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """How ``results.parquet`` is encoded (the rows are the same whatever it says).

    Dictionaries for the tags (few labels), not for the values; the time stamps
    delta-encoded (a series' stamps are a clock: half the file a dictionary makes, and
    faster); statistics for the time stamps only (what a lazy reader skips row groups by).
    """
    names = set(schema.names)
    options: dict[str, Any] = {
        "compression": "zstd",
        "use_dictionary": [tag for tag in TAGS if tag in names],
        "write_statistics": ["time"] if "time" in names else False,
    }
    if "time" in names:
        options["column_encoding"] = {"time": "DELTA_BINARY_PACKED"}
    return options


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
            self._table(keys[start : start + series_per_table(rows)], rows)
            for keys, rows in groups
            for start in range(0, len(keys), series_per_table(rows))
        )
        return write_tables(path, chunks)


def series_per_table(rows: int) -> int:
    """Series per tidy table of ``rows`` rows each: a row group's worth, at least 64.

    At least :data:`SERIES_PER_ROW_GROUP`; series of few rows (a grid of thousands of
    buses, a chunk of a day at 15 min) fill a row group of :data:`ROWS_PER_ROW_GROUP`.
    """
    return max(SERIES_PER_ROW_GROUP, ROWS_PER_ROW_GROUP // max(rows, 1))


def tidy_table(
    keys: list[tuple[str, str, str]],
    stamps: np.ndarray,
    values: list[np.ndarray] | np.ndarray,
    tags: dict[str, str],
) -> pa.Table:
    """Tidy rows of series ``keys`` (asset, kind, quantity), one after the other.

    ``stamps`` are the UTC nanoseconds of every row of a series; ``values`` one array of
    ``len(stamps)`` values per key (a list, or a key x stamp array). Tags are
    dictionary-encoded.
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
            "value": pa.array(np.concatenate(values) if len(values) else np.empty(0)),
        }
    )


def write_tables(path: str | Path, tables: Iterable[pa.Table]) -> int:
    """Write tables of one schema as row groups of one Parquet file; return its rows.

    Row groups hold at most :data:`ROWS_PER_ROW_GROUP` rows, so a reader decodes little
    at a time; a tidy file gets its index in the metadata (:class:`Results` uses it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer = None
    index = TidyIndex()
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, **_write_options(table.schema))
            for group in _row_groups(table):
                writer.write_table(group, row_group_size=ROWS_PER_ROW_GROUP)
                index.add(group)
            rows += table.num_rows
        if writer is not None:
            text = json.dumps(index.as_dict())
            writer.add_key_value_metadata({INDEX_KEY: text.encode()})
    finally:
        if writer is not None:
            writer.close()
    return rows


def _row_groups(table: pa.Table) -> list[pa.Table]:
    """``table`` as the row groups the writer makes of it (an empty table makes one)."""
    if table.num_rows == 0:
        return [table]
    return [
        table.slice(at, ROWS_PER_ROW_GROUP) for at in range(0, table.num_rows, ROWS_PER_ROW_GROUP)
    ]


def chunk_tables(directory: str | Path, n_steps: int | None = None) -> Iterator[pa.Table]:
    """Tidy tables of a simulator's chunk files (:mod:`twin.recorder`), in step order.

    One table per chunk and group of series (:func:`series_per_table`), so memory is
    bounded by a chunk. ``n_steps`` cuts the run after that many steps (a failed run's
    common completed step); the state series get their value at the end of the last step
    kept. A run that fits one chunk gives the rows :meth:`ResultBuffer.write_parquet` does.
    """
    files = sorted(Path(directory).glob("[0-9]*.parquet"))
    end = n_steps if n_steps is not None else chunked_steps(directory)
    for path in files:
        chunk = read_chunk(path)
        start, steps = chunk.start, chunk.steps
        if start > end or (start == end and start > 0):
            continue
        m = min(steps, end - start)
        last = start + m == end
        columns = {key: j for j, key in enumerate(chunk.keys)}
        states = {key for key, state in zip(chunk.keys, chunk.states, strict=True) if state}
        groups = [
            (sorted(k for k in chunk.keys if k not in states), m),
            (sorted(states), m + 1 if last else m),
        ]
        for group, rows in groups:
            size = series_per_table(rows)
            for at in range(0, len(group), size):
                part = group[at : at + size]
                values = chunk.values[[columns[k] for k in part], :rows]
                yield tidy_table(part, chunk.stamps[:rows], values, chunk.tags)


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
    window (``start``, ``end`` excluded; row groups outside it are skipped) finds the
    matching rows in the file's index (:mod:`twin.tidyindex`; a file without one: in
    the filter's columns), then reads the wanted columns of the row groups that hold
    them. Memory holds the rows selected and one row group, not the file. :func:`wide`
    and :func:`as_operated` accept it in place of a frame (as
    :func:`twin.kpi.compute_kpis` does), with equal results; :meth:`wides` gives several
    quantities for one read of the file.

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
        #: The file's index (:func:`write_tables`): ``assets`` in order, ``sources`` and
        #: the row groups' runs (``rows``, :class:`twin.tidyindex.TidyIndex`).
        self.index: dict[str, Any] | None = (
            json.loads(meta[INDEX_KEY]) if INDEX_KEY in meta else None
        )
        self._window: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}  # shared with the views (between)

    def between(self, start: Any = None, end: Any = None) -> Results:
        """A view of the rows from ``start`` to ``end`` (excluded; ``None``: open).

        Every read of the view (:meth:`wide`, :meth:`frame`...) skips the row groups
        outside the window: computing on a window holds that window, not the run.
        """
        view = copy.copy(self)
        view._window = {"start": start, "end": end}
        return view

    def _row_index(self) -> RowIndex | None:
        """The runs of the file's row groups (``None``: a file without an index).

        From the index; a file indexed before the runs were gets them once from its tag
        columns.
        """
        if "rows" not in self._cache:
            rows = None
            if self.index is not None:
                with pq.ParquetFile(self.path) as file:
                    groups = file.num_row_groups
                    if "rows" in self.index:
                        rows = RowIndex(self.index["rows"])
                    if rows is None or rows.n_groups != groups:
                        rows = _scanned_rows(file)
            self._cache["rows"] = rows
        return self._cache["rows"]

    def _bounds(self, where: dict[str, Any]) -> tuple[int | None, int | None]:
        """The time window of ``where`` and the view, in UTC nanoseconds (``None``: open)."""
        where = {**self._window, **where}
        start, end = (
            None if where.get(edge) is None else pd.Timestamp(where[edge]).as_unit("ns").value
            for edge in ("start", "end")
        )
        return start, end

    def _selected(
        self, columns: list[str] | None, where: dict[str, Any]
    ) -> Iterator[tuple[pa.Table, int]]:
        """Per row group: the wanted columns of its matching rows, and how many match."""
        start, end = self._bounds(where)
        tags = {
            k: v
            for k, v in {**self._window, **where}.items()
            if k not in ("start", "end") and v is not None
        }
        wanted = list(self.schema.names) if columns is None else columns
        rows = self._row_index() if tags and set(tags) <= set(TAGS) else None
        hit = rows.matching(tags) if rows is not None else None
        with pq.ParquetFile(self.path, pre_buffer=False) as file:
            time_at = file.schema_arrow.get_field_index("time")
            for i in range(file.num_row_groups):
                group = file.metadata.row_group(i)
                if not _overlaps(group.column(time_at).statistics, start, end):
                    continue
                if rows is not None:
                    tagged = rows.mask(i, hit)
                    if not tagged.any():
                        continue
                    mask = self._mask(file, i, {}, start, end)
                    mask = tagged if mask is None else mask & tagged
                else:
                    mask = self._mask(file, i, tags, start, end)
                matched = group.num_rows if mask is None else int(mask.sum())
                if matched == 0:
                    continue
                read = file.read_row_group(i, columns=wanted)
                yield (read if mask is None else read.filter(mask)), matched

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

        Reads the time and value of the row groups that hold it into one array: memory
        holds the table, not tidy rows.
        """
        return self.wides([(kind, quantity, source)])[kind, quantity, source]

    def wides(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], pd.DataFrame]:
        """:meth:`wide` of every ``(kind, quantity, source)`` of ``keys``, one read of the file."""
        keys = list(dict.fromkeys(keys))
        if self.index is None:  # a file written before the index: through tidy frames
            return {key: self._wide_without_index(*key) for key in keys}
        return self._indexed_wides(keys)

    def _wide_without_index(self, kind: str, quantity: str, source: str) -> pd.DataFrame:
        """:meth:`wide` of a file without the row-group index, through a tidy frame."""
        rows = self.frame(kind=kind, quantity=quantity, source=source)
        return wide(rows, kind, quantity, source)

    def _indexed_wides(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], pd.DataFrame]:
        """:meth:`wides` through the row-group index."""
        return {key: t.dropna(axis=1, how="all") for key, t in self._wides(keys).items()}

    def _wides(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], pd.DataFrame]:
        """:meth:`wides` before their all-NaN columns are dropped (needs the index).

        One pass over the row groups that hold any of them: their runs
        (:mod:`twin.tidyindex`) say which rows are whose, so only ``time`` and ``value``
        are read. A value in a later row is kept over an earlier one unless it is NaN.
        """
        rows = self._row_index()
        if rows is None:
            raise ResultsError(f"{self.path}: not a tidy results file (no tag columns)")
        order = self.index["assets"]  # type: ignore[index]
        position = {name: j for j, name in enumerate(order)}
        asset_at = np.array([position[a] for a in rows.labels["asset"]], np.int64)
        series_asset = asset_at[rows.series[:, TAGS.index("asset")]]
        series_key = np.full(len(rows.series), -1, np.int64)
        for k, (kind, quantity, source) in enumerate(keys):
            series_key[rows.matching({"kind": kind, "quantity": quantity, "source": source})] = k
        start, end = self._bounds({})
        blocks: list[list[_Block]] = [[] for _ in keys]
        with pq.ParquetFile(self.path, pre_buffer=False) as file:
            time_at = file.schema_arrow.get_field_index("time")
            for i in range(file.num_row_groups):
                series, first, ends = rows.runs(i)
                run_key = series_key[series]
                if not (run_key >= 0).any() or not _overlaps(
                    file.metadata.row_group(i).column(time_at).statistics, start, end
                ):
                    continue
                read = file.read_row_group(i, columns=["time", "value"])
                stamps = read.column("time").cast(pa.int64()).to_numpy()
                values = read.column("value").to_numpy()
                row_key = np.repeat(run_key, ends - first)
                row_asset = np.repeat(series_asset[series], ends - first)
                keep = row_key >= 0
                if start is not None:
                    keep &= stamps >= start
                if end is not None:
                    keep &= stamps < end
                for k in np.unique(run_key[run_key >= 0]):
                    at = keep & (row_key == k)
                    blocks[k].append(_Block.of(row_asset[at], stamps[at], values[at], len(order)))
        return {key: self._placed(key, blocks[k], order) for k, key in enumerate(keys)}

    def _placed(
        self, key: tuple[str, str, str], blocks: list[_Block], order: list[str]
    ) -> pd.DataFrame:
        """One quantity's time x asset table from its blocks, in file order."""
        if not blocks:  # nothing matches: what the tidy path gives for no rows
            return wide(self.schema.empty_table().to_pandas(), *key)
        times, _ = _instants(np.concatenate([b.times for b in blocks]))
        present = np.unique(np.concatenate([b.assets for b in blocks]))
        if len(blocks) == 1:
            table = blocks[0].values
        else:
            table = np.full((len(times), len(present)), np.nan)
            while blocks:
                block = blocks.pop(0)
                cells = np.ix_(
                    np.searchsorted(times, block.times), np.searchsorted(present, block.assets)
                )
                into = table[cells]
                np.copyto(into, block.values, where=~np.isnan(block.values))
                table[cells] = into
        return pd.DataFrame(
            table,
            index=pd.DatetimeIndex(pd.to_datetime(times, unit="ns", utc=True), name="time"),
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

    def _wide_without_index(self, kind: str, quantity: str, source: str) -> pd.DataFrame:
        """As :func:`wide` of :func:`as_operated` of the whole results."""
        rows = self.frame(kind=kind, quantity=quantity, source=["twin", "real"])
        return wide(_as_operated_frame(rows, any_real=True), kind, quantity, source)

    def _indexed_wides(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], pd.DataFrame]:
        """The twin's and the real tables in one read, real values put in."""
        pairs = [(kind, quantity) for kind, quantity, source in keys if source == "twin"]
        fetched = self._wides([(k, q, s) for k, q in pairs for s in ("twin", "real")])
        out = {}
        for kind, quantity, source in keys:
            if source != "twin":  # the operated view holds the twin's rows only
                out[kind, quantity, source] = wide(
                    self.schema.empty_table().to_pandas(), kind, quantity, source
                )
                continue
            twin = fetched[kind, quantity, "twin"]
            real = fetched[kind, quantity, "real"].reindex(index=twin.index, columns=twin.columns)
            out[kind, quantity, source] = twin.mask(real.notna(), real).dropna(axis=1, how="all")
        return out

    def as_operated(self) -> Results:
        """Itself: real values are in already."""
        return self


@dataclass(frozen=True)
class _Block:
    """One row group's rows of a quantity as a small time x asset table."""

    times: np.ndarray
    assets: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, assets: np.ndarray, stamps: np.ndarray, values: np.ndarray, n: int) -> _Block:
        """The block of rows (asset positions among ``n``, stamps, values).

        A later row's value is kept over an earlier one's of the same cell, unless NaN.
        """
        times, at_row = _instants(stamps)
        used = np.zeros(n, bool)
        used[assets] = True
        present = np.flatnonzero(used)
        at_column = np.cumsum(used)[assets] - 1
        table = np.full((len(times), len(present)), np.nan)
        real = ~np.isnan(values)  # a gap is not a value: it never hides an earlier one
        table[at_row[real], at_column[real]] = values[real]
        return cls(times, present, table)


def _instants(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``stamps`` in order, and where each stamp is among them.

    Stamps on one clock (multiples of a step from the first) are counted, not sorted;
    others are hashed and the distinct ones sorted.
    """
    if len(stamps):
        low, high = stamps.min(), stamps.max()
        gaps = np.diff(stamps[:4096])
        gaps = gaps[gaps > 0]
        step = gaps.min() if len(gaps) else max(high - low, 1)
        offsets = stamps - low
        if (high - low) // step < 4 * len(stamps) and not (offsets % step).any():
            at = offsets // step
            used = np.zeros(int((high - low) // step) + 1, bool)
            used[at] = True
            return low + step * np.flatnonzero(used), (np.cumsum(used) - 1)[at]
    times = np.sort(pd.unique(stamps))
    return times, np.searchsorted(times, stamps)


def _scanned_rows(file: pq.ParquetFile) -> RowIndex | None:
    """The runs of a file indexed before they were, from its tag columns (``None``: not tidy)."""
    if not set(TAGS) <= set(file.schema_arrow.names):
        return None
    index = TidyIndex()
    for i in range(file.num_row_groups):
        index.add(file.read_row_group(i, columns=list(TAGS)))
    return RowIndex(index.as_dict()["rows"])


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
        labels, codes = labels_codes(chunk)
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
