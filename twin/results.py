"""The results store: tidy time series in Parquet plus run metadata.

Tidy means one row per (time, asset, quantity), tagged like the InfluxDB schema:
``time`` (UTC), ``site``, ``run_id``, ``source``, ``asset``, ``kind``, ``quantity``,
``value``. Values are buffered in preallocated numpy arrays during the run (one per
series) and written to Parquet in row groups, a chunk of series at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "RESULT_COLUMNS",
    "ResultBuffer",
    "as_operated",
    "load_results",
    "merge_parts",
    "read_run",
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
        count = len(keys)

        def tag(values: list[str]) -> pa.Array:
            labels, codes = np.unique(np.array(values, dtype=object), return_inverse=True)
            return pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(codes.astype(np.int32), n)), pa.array(labels.tolist())
            )

        def const(value: str) -> pa.Array:
            return pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n * count, dtype=np.int32)), pa.array([value])
            )

        stamps = self.instants[:n].as_unit("ns").asi8
        time = pa.array(np.tile(stamps, count), pa.timestamp("ns", "UTC"))
        return pa.table(
            {
                "time": time,
                "site": const(self.tags.get("site", "")),
                "run_id": const(self.tags.get("run_id", "")),
                "source": const(self.tags.get("source", "twin")),
                "asset": tag([k[0] for k in keys]),
                "kind": tag([k[1] for k in keys]),
                "quantity": tag([k[2] for k in keys]),
                "value": pa.array(np.concatenate([self.series[k][:n] for k in keys])),
            }
        )

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


def merge_parts(parts: list[Path], path: str | Path) -> int:
    """Concatenate Parquet parts (one per simulator) into one file; return its rows."""
    return write_tables(path, (pq.read_table(part) for part in parts if part.exists()))


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """The tidy results of a run directory (``results.parquet``); tags are categorical."""
    return pd.read_parquet(Path(run_dir) / "results.parquet")


def wide(results: pd.DataFrame, kind: str, quantity: str, source: str = "twin") -> pd.DataFrame:
    """One quantity of one kind and source (twin, real, residual) as a time x asset table."""
    mask = (results["kind"] == kind) & (results["quantity"] == quantity)
    if "source" in results:
        mask &= results["source"] == source
    sel = results[mask]
    table = sel.pivot(index="time", columns="asset", values="value").sort_index()
    table.columns = table.columns.astype(str)
    return table.dropna(axis=1, how="all")


def as_operated(results: pd.DataFrame) -> pd.DataFrame:
    """The twin's rows with measured values (``source=real``) put in where they exist.

    In hybrid and hardware-in-the-loop runs the grid and the controller saw a device's
    measured value when it was fresh and the model's otherwise; this view holds exactly
    those values under ``source=twin``. Residual rows and the quality flag are dropped.
    """
    if "source" not in results or not (results["source"] == "real").any():
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
