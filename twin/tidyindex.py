"""The index of a tidy results file: which series each row group holds, row by row.

A tidy file (:mod:`twin.results`) holds series one after the other: in a row group,
runs of rows of one series (one ``site``, ``run_id``, ``source``, ``asset``, ``kind``,
``quantity``). :class:`TidyIndex` gathers, while the file is written, the distinct
series in order of first occurrence and every row group's runs (series, rows); it is
stored in the file's metadata with the assets in order and the sources. A reader
(:class:`RowIndex`) then finds the rows of a selection without reading a tag column:
a quantity's table reads only the row groups that hold it, and only their ``time`` and
``value``.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["TAGS", "RowIndex", "TidyIndex", "labels_codes"]

#: The tag columns of a tidy file: a series is one combination of them.
TAGS = ("site", "run_id", "source", "asset", "kind", "quantity")


def labels_codes(chunk: pa.Array) -> tuple[list[str], np.ndarray]:
    """Labels and per-row codes of a tag column's chunk (dictionary-encoded or not)."""
    if pa.types.is_dictionary(chunk.type):
        codes = chunk.indices.to_numpy(zero_copy_only=False)
        return chunk.dictionary.to_pylist(), codes
    labels, codes = np.unique(np.asarray(chunk.to_pylist(), dtype=object), return_inverse=True)
    return labels.tolist(), codes


def _encode(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<i8").tobytes()).decode()


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i8")


class TidyIndex:
    """What a tidy file holds, gathered a row group at a time (:meth:`add`).

    Series get numbers in order of first occurrence; each row group its runs. A table
    without every tag column leaves the file without runs (``rows`` is then omitted)
    but still counts its assets and sources.
    """

    def __init__(self) -> None:
        self._labels: list[dict[str, int]] = [{} for _ in TAGS]  # per tag: label -> code
        self._series: dict[tuple[int, ...], int] = {}  # label codes -> series number
        self._runs: list[np.ndarray] = []  # per row group: (series, rows) pairs
        self._partial = _Partial()

    def add(self, table: pa.Table) -> None:
        """Index ``table``, the next row group of the file."""
        if not all(tag in table.column_names for tag in TAGS):
            self._partial.add(table)
            return
        n = table.num_rows
        change = np.zeros(max(n - 1, 0), bool)
        columns = []
        for t, tag in enumerate(TAGS):
            codes, labels = _unified_codes(table.column(tag))
            if len(labels) > 1:  # a tag of one label never changes
                change |= codes[1:] != codes[:-1]
            known = self._labels[t]
            lut = np.array([known.setdefault(label, len(known)) for label in labels], np.int64)
            columns.append((codes, lut))
        starts = np.concatenate([[0], np.flatnonzero(change) + 1]) if n else np.zeros(0, int)
        codes_of_runs = np.stack([lut[codes[starts]] for codes, lut in columns], axis=1)
        series = self._series
        keys = list(map(tuple, codes_of_runs.tolist()))
        for key in keys:
            if key not in series:
                series[key] = len(series)
        runs = np.empty((len(keys), 2), np.int64)
        runs[:, 0] = [series[key] for key in keys]
        runs[:, 1] = np.diff(np.append(starts, n))
        self._runs.append(runs)

    def as_dict(self) -> dict[str, Any]:
        """The index as stored: ``assets`` (in order), ``sources`` and ``rows`` (runs)."""
        labels = [list(known) for known in self._labels]
        series = np.array(list(self._series), np.int64).reshape(-1, len(TAGS))
        asset, source = TAGS.index("asset"), TAGS.index("source")
        assets = dict.fromkeys(labels[asset][c] for c in dict.fromkeys(series[:, asset].tolist()))
        sources = {labels[source][c] for c in set(series[:, source].tolist())}
        out: dict[str, Any] = {
            "assets": list({**assets, **self._partial.assets}),
            "sources": sorted(sources | self._partial.sources),
        }
        if self._partial.seen:
            return out
        runs = np.concatenate(self._runs) if self._runs else np.zeros((0, 2), np.int64)
        out["rows"] = {
            "labels": dict(zip(TAGS, labels, strict=True)),
            "series": _encode(series),
            "runs": _encode(runs),
            "groups": _encode(np.array([len(r) for r in self._runs], np.int64)),
        }
        return out


class _Partial:
    """Assets and sources of tables that are not tidy (the file then gets no runs)."""

    def __init__(self) -> None:
        self.seen = False
        self.assets: dict[str, None] = {}
        self.sources: set[str] = set()

    def add(self, table: pa.Table) -> None:
        self.seen = True
        if "asset" not in table.column_names or "source" not in table.column_names:
            return
        for chunk in table.column("asset").chunks:
            labels, codes = labels_codes(chunk)
            used, first = np.unique(codes, return_index=True)
            self.assets.update((labels[c], None) for c in used[np.argsort(first, kind="stable")])
        for chunk in table.column("source").chunks:
            labels, codes = labels_codes(chunk)
            self.sources.update(labels[c] for c in np.unique(codes))


def _unified_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Per-row codes of a tag column over all its chunks, and their labels."""
    if column.num_chunks == 1:
        chunk_labels, codes = labels_codes(column.chunk(0))
        return codes, chunk_labels
    labels: dict[str, int] = {}
    parts = []
    for chunk in column.chunks:
        chunk_labels, codes = labels_codes(chunk)
        lut = np.array([labels.setdefault(label, len(labels)) for label in chunk_labels], int)
        parts.append(lut[codes] if len(codes) else np.zeros(0, int))
    ids = np.concatenate(parts) if parts else np.zeros(0, int)
    return ids, list(labels)


class RowIndex:
    """The runs of a tidy file's row groups, read from its index (:class:`TidyIndex`).

    Parameters
    ----------
    rows : dict
        The ``rows`` entry of the stored index.
    """

    def __init__(self, rows: dict[str, Any]) -> None:
        self.labels: dict[str, list[str]] = rows["labels"]
        self.series = _decode(rows["series"]).reshape(-1, len(TAGS))
        runs = _decode(rows["runs"]).reshape(-1, 2)
        self.run_series, self.run_rows = runs[:, 0], runs[:, 1]
        counts = _decode(rows["groups"])
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        #: Row groups indexed.
        self.n_groups = len(counts)

    def matching(self, where: dict[str, Any]) -> np.ndarray:
        """Which series pass ``where`` (a tag: a value or a list of values)."""
        hit = np.ones(len(self.series), bool)
        for tag, value in where.items():
            values = [value] if isinstance(value, str) else list(value)
            labels = self.labels[tag]
            codes = [labels.index(v) for v in values if v in labels]
            hit &= np.isin(self.series[:, TAGS.index(tag)], codes)
        return hit

    def runs(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row group ``group``'s runs: series, first row and end row of each."""
        at = slice(self.offsets[group], self.offsets[group + 1])
        rows = self.run_rows[at]
        ends = np.cumsum(rows)
        return self.run_series[at], ends - rows, ends

    def mask(self, group: int, hit: np.ndarray) -> np.ndarray:
        """Rows of row group ``group`` whose series ``hit`` holds."""
        at = slice(self.offsets[group], self.offsets[group + 1])
        return np.repeat(hit[self.run_series[at]], self.run_rows[at])

    def label(self, tag: str, series: int) -> str:
        """Series ``series``' label of ``tag``."""
        return self.labels[tag][self.series[series, TAGS.index(tag)]]
