"""Write a finished run (``results.parquet``) to InfluxDB, outside mosaik."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adapters.influx.lineprotocol import encode_frame_bytes
from adapters.influx.writer import (
    IncompleteWrite,
    InfluxConfig,
    InfluxWriter,
    WriterStats,
    delivery_problems,
)

__all__ = ["write_results"]


def write_results(results: str | Path | pd.DataFrame, config: InfluxConfig) -> WriterStats:
    """Write tidy results (a run directory, a Parquet file or a frame); return the counters.

    Raises
    ------
    IncompleteWrite
        If a point did not reach the server (dropped, or left in the spool); its
        ``stats`` say where every point is.
    InfluxError
        If the server refuses the credentials, the database or a batch.
    """
    if not isinstance(results, pd.DataFrame):
        path = Path(results)
        results = pd.read_parquet(path / "results.parquet" if path.is_dir() else path)
    writer = InfluxWriter(config).open()
    for chunk, lines in encode_frame_bytes(results):
        writer.write_chunk(chunk, lines)
    stats = writer.close()
    problems = delivery_problems(stats.as_dict())
    if stats.spooled_points_left:
        problems.append(f"{stats.spooled_points_left:,} points left in {config.spool_dir}")
    if problems:
        raise IncompleteWrite(f"{config.target}: {'; '.join(problems)}", stats)
    return stats


def kpi_line(kpis: dict[str, float], tags: dict[str, str], time_s: int) -> str | None:
    """One ``kpi`` point: every finite KPI as a field (tags: site, run_id, controller)."""
    import math

    from adapters.influx.lineprotocol import escape_key, line_prefix

    fields = [
        f"{escape_key(name)}={float(value)!r}"
        for name, value in sorted(kpis.items())
        if isinstance(value, int | float) and math.isfinite(value)
    ]
    if not fields:
        return None
    return f"{line_prefix('kpi', tags)} {','.join(fields)} {time_s}"


def write_kpis(
    kpis: dict[str, float], config: InfluxConfig, tags: dict[str, str], time_s: int
) -> WriterStats:
    """Write a run's KPIs as one ``kpi`` point stamped ``time_s`` (Unix seconds)."""
    writer = InfluxWriter(config).open()
    line = kpi_line(kpis, tags, time_s)
    if line:
        writer.write([line])
    return writer.close()
