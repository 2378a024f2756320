"""Write a finished run (``results.parquet``) to InfluxDB, outside mosaik."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adapters.influx.lineprotocol import encode_frame
from adapters.influx.writer import InfluxConfig, InfluxWriter, WriterStats

__all__ = ["write_results"]


def write_results(results: str | Path | pd.DataFrame, config: InfluxConfig) -> WriterStats:
    """Write tidy results (a run directory, a Parquet file or a frame); return the counters.

    Raises
    ------
    InfluxError
        If the server refuses the credentials, the database or a batch.
    """
    if not isinstance(results, pd.DataFrame):
        path = Path(results)
        results = pd.read_parquet(path / "results.parquet" if path.is_dir() else path)
    writer = InfluxWriter(config).open()
    for lines in encode_frame(results):
        writer.write(lines)
    return writer.close()
