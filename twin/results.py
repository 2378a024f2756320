"""The results store: tidy time series in Parquet plus run metadata.

Tidy means one row per (time, asset, quantity), tagged like the InfluxDB schema:
``time`` (UTC), ``site``, ``run_id``, ``source``, ``asset``, ``kind``, ``quantity``,
``value``. Simulators record in bounded chunks (:mod:`twin.recorder`) that the run
streams into ``results.parquet`` at its end (row groups of a chunk of steps x a group
of series); :func:`open_results` reads that file lazily (filters, one quantity as a
time x asset table, time windows), :func:`load_results` whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
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


def write_tables(path: str | Path, tables: Iterable[pa.Table]) -> int:
    """Write tables of one schema as row groups of one Parquet file; return its rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            rows += table.num_rows
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

    Only what is asked for is read: a filter on ``kind``, ``quantity``, ``source``,
    ``asset`` and a time window become Parquet predicates, so memory holds the rows
    selected, not the file. :func:`wide` and :func:`as_operated` accept it in place of a
    frame (as :func:`twin.kpi.compute_kpis` does), with equal results.

    Parameters
    ----------
    path : str or Path
        A ``results.parquet`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ResultsError(f"{self.path}: no results file")
        self.dataset = ds.dataset(self.path, format="parquet")

    def _filter(self, **where: Any) -> ds.Expression | None:
        expression = None
        for column, value in where.items():
            if value is None:
                continue
            if column == "start":
                term = ds.field("time") >= pa.scalar(pd.Timestamp(value), pa.timestamp("ns", "UTC"))
            elif column == "end":
                term = ds.field("time") < pa.scalar(pd.Timestamp(value), pa.timestamp("ns", "UTC"))
            elif isinstance(value, str):
                term = ds.field(column) == value
            else:
                term = ds.field(column).isin(list(value))
            expression = term if expression is None else expression & term
        return expression

    def table(self, columns: list[str] | None = None, **where: Any) -> pa.Table:
        """The rows matching ``where`` as an Arrow table.

        ``where``: ``kind``, ``quantity``, ``source``, ``asset``, ``site``, ``run_id`` (a
        value or a list of values), ``start``/``end`` (a time window, end excluded).
        """
        return self.dataset.to_table(columns=columns, filter=self._filter(**where))

    def frame(self, columns: list[str] | None = None, **where: Any) -> pd.DataFrame:
        """The rows matching ``where`` as a tidy frame (categorical tags, as loaded)."""
        return self.table(columns, **where).to_pandas()

    def count(self, **where: Any) -> int:
        """Rows matching ``where`` (reads only the filtered columns)."""
        return self.dataset.count_rows(filter=self._filter(**where))

    def wide(self, kind: str, quantity: str, source: str = "twin") -> pd.DataFrame:
        """One quantity of one kind and source as a time x asset table (as :func:`wide`)."""
        return wide(self.frame(kind=kind, quantity=quantity, source=source), kind, quantity, source)

    def batches(self, rows: int = 1 << 20, **where: Any) -> Iterator[pd.DataFrame]:
        """The rows matching ``where`` as tidy frames of at most ``rows`` rows, in file order."""
        scanner = self.dataset.scanner(filter=self._filter(**where), batch_size=rows)
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield batch.to_pandas()

    def chunks(self, freq: str = "1D", **where: Any) -> Iterator[pd.DataFrame]:
        """The rows matching ``where`` per time window of ``freq`` (a day by default).

        Each window reads only the row groups that overlap it (a row group holds one
        recorded chunk of steps), so memory holds one window.
        """
        times = self.dataset.to_table(columns=["time"]).column("time")
        if len(times) == 0:
            return
        first = pd.Timestamp(pc.min(times).as_py())
        last = pd.Timestamp(pc.max(times).as_py())
        del times
        edges = pd.date_range(first.floor(freq), last, freq=freq)
        for start in edges:
            frame = self.frame(
                start=start, end=start + pd.tseries.frequencies.to_offset(freq), **where
            )
            if len(frame):
                yield frame

    def has_source(self, source: str) -> bool:
        """Whether any row has the source tag ``source``."""
        return self.count(source=source) > 0

    def as_operated(self) -> Results:
        """The lazy form of :func:`as_operated`: this, or a view that puts real values in."""
        return Operated(self.path) if self.has_source("real") else self


class Operated(Results):
    """Lazy :func:`as_operated` results: one quantity at a time, real values put in."""

    def wide(self, kind: str, quantity: str, source: str = "twin") -> pd.DataFrame:
        """As :func:`wide` of :func:`as_operated` of the whole results."""
        rows = self.frame(kind=kind, quantity=quantity, source=["twin", "real"])
        return wide(_as_operated_frame(rows, any_real=True), kind, quantity, source)

    def as_operated(self) -> Results:
        """Itself: real values are in already."""
        return self


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
