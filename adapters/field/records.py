"""The emulator's ground truth on disk: ``truth.parquet``, ``sensors.parquet``, mapping CSV.

``truth.parquet`` has one row per sample (step-major: every sensor of step 0, then step 1
...): ``sensor`` (key), ``topic``, ``gateway``, ``element``, ``quantity`` (twin),
``unit`` (field), ``t`` (payload time, epoch s, with the gateway's skew), ``t_true``,
``value`` (published, field unit), ``truth`` (true, field unit), ``value_twin`` and
``truth_twin`` (twin units), ``sigma_twin`` (the sensor's standard deviation: noise and
rounding), ``bias_twin`` (a bias fault's offset), ``published`` (False: a
dropout, no true value, or refused by the link), ``copies`` (copies the link accepted: 1,
2 for a duplicate, 0 when not published) and ``publish_wall`` (epoch s the message was
handed to the link; NaN when never) and ``quality`` (the flag sent: 1 good, 0 bad,
``--bad-quality``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from adapters.field.plan import gateways

__all__ = ["Samples", "write_mapping_csv", "write_sensors", "write_truth"]

TAG_COLUMNS = ("sensor", "topic", "gateway", "element", "quantity", "unit")


@dataclass
class Samples:
    """Per-sample arrays, shape (steps, sensors), and the steps' true times (epoch s)."""

    t_true: np.ndarray
    t: np.ndarray
    value_twin: np.ndarray
    truth_twin: np.ndarray
    sigma_twin: np.ndarray
    bias_twin: np.ndarray
    published: np.ndarray
    copies: np.ndarray
    publish_wall: np.ndarray
    quality: np.ndarray


def _tag(values: pd.Series, steps: int) -> pa.DictionaryArray:
    codes, labels = pd.factorize(values, sort=False)
    return pa.DictionaryArray.from_arrays(
        pa.array(np.tile(codes.astype(np.int32), steps)), pa.array(list(labels), pa.string())
    )


def write_truth(path: Path, sensors: pd.DataFrame, samples: Samples) -> int:
    """Write ``truth.parquet``; return its number of rows."""
    steps, n = samples.value_twin.shape
    factor = sensors["factor"].to_numpy(float)
    columns: dict[str, pa.Array] = {c: _tag(sensors[c], steps) for c in TAG_COLUMNS}
    flat = {
        "t": samples.t,
        "t_true": np.repeat(samples.t_true[:, None], n, axis=1),
        "value": samples.value_twin * factor,
        "truth": samples.truth_twin * factor,
        "value_twin": samples.value_twin,
        "truth_twin": samples.truth_twin,
        "sigma_twin": samples.sigma_twin,
        "bias_twin": samples.bias_twin,
        "published": samples.published,
        "copies": samples.copies.astype(np.int8),
        "publish_wall": samples.publish_wall,
        "quality": samples.quality.astype(np.int8),
    }
    for name, values in flat.items():
        columns[name] = pa.array(np.ascontiguousarray(values).reshape(-1))
    table = pa.table(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def write_sensors(path: Path, sensors: pd.DataFrame, skew_s: np.ndarray) -> None:
    """Write ``sensors.parquet``: the plan plus each sensor's gateway clock skew."""
    table = sensors.copy()
    table["skew_s"] = skew_s[gateways(sensors).index]
    table.to_parquet(path, index=False)


def write_mapping_csv(path: Path, sensors: pd.DataFrame) -> None:
    """Write an ingest ``mapping_csv`` for exactly these sensors.

    Columns topic (the sensor key), asset, quantity, unit, scale and ``voltage`` (phase
    or line, for bus voltages).
    """
    table = pd.DataFrame(
        {
            "topic": sensors["sensor"],
            "asset": sensors["element"],
            "quantity": sensors["quantity"],
            "unit": sensors["unit"],
            "scale": sensors["scale"].astype(int),
            "voltage": sensors["voltage"],
        }
    )
    table.to_csv(path, index=False)
