"""The InfluxDB output of a run: configuration, KPI point, run check, spool replay.

- :func:`config_from_spec` turns ``outputs.influx`` into the writer's
  :class:`~adapters.influx.writer.InfluxConfig`, reading secrets from the scenario, an
  environment variable or a file;
- :func:`write_run_kpis` writes the run's ``kpi`` point after the run and records the
  spool as it is on disk afterwards;
- the ``influx`` run check (:func:`delivery_check`, declared by
  :mod:`adapters.influx.component`) fails the run when any point did not
  reach the server: dropped, left in the spool, unsent, lost by the writer, or a
  refusal (credentials, database, KPI point);
- :func:`flush_spool` replays the spool a run left behind (``twin influx flush``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters.influx.spool import Spool
from adapters.influx.writer import (
    InfluxConfig,
    InfluxError,
    InfluxWriter,
    WriterStats,
    delivery_problems,
)
from twin.checks import CheckFailure

__all__ = [
    "FlushSummary",
    "config_from_spec",
    "delivery_check",
    "flush_spool",
    "summary_line",
    "write_run_kpis",
]

#: Environment variables ``twin influx flush`` reads credentials from.
FLUSH_ENV = {
    "username": "TWIN_INFLUX_USERNAME",
    "password": "TWIN_INFLUX_PASSWORD",
    "token": "TWIN_INFLUX_TOKEN",
}
MASK = "**********"  # how pydantic dumps a SecretStr into run.json


def _secret(spec: Any, name: str, env: Mapping[str, str]) -> str | None:
    """A secret of ``outputs.influx``: the value, ``<name>_env`` or ``<name>_file``."""
    value = getattr(spec, name)
    if value is not None:
        return value.get_secret_value()
    variable = getattr(spec, f"{name}_env")
    if variable:
        if variable not in env:
            raise InfluxError(
                f"outputs.influx.{name}_env: environment variable {variable!r} is not set"
            )
        return env[variable]
    path = getattr(spec, f"{name}_file")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise InfluxError(
                f"outputs.influx.{name}_file: cannot read {path!r} ({exc.strerror})"
            ) from None
    return None


def config_from_spec(
    spec: Any, out_dir: Path, env: Mapping[str, str] | None = None
) -> InfluxConfig:
    """The writer configuration of an ``outputs.influx`` section.

    The spool defaults to ``<out_dir>/influx-spool``.

    Raises
    ------
    InfluxError
        If a secret's environment variable is unset or its file unreadable.
    """
    env = os.environ if env is None else env
    skip = {"password", "password_env", "password_file", "token", "token_env", "token_file"}
    config = InfluxConfig(**spec.model_dump(exclude=skip | {"spool_dir"}))
    config.password = _secret(spec, "password", env)
    config.token = _secret(spec, "token", env)
    config.spool_dir = spec.spool_dir or str(Path(out_dir) / "influx-spool")
    return config


def write_run_kpis(
    scenario: Any, kpis: dict[str, float], metadata: dict[str, Any], out: Path
) -> None:
    """The KPIs as one ``kpi`` point at the last step; the spool recounted from disk.

    Counters go to ``metadata["influx"]["kpi"]``; a refusal to ``["kpi_error"]``.
    Both are judged by the ``influx`` run check.
    """
    from adapters.influx.load import write_kpis
    from twin.grafana_queries import run_span_fields

    stored = metadata.setdefault("influx", {})
    spec = scenario.outputs.influx
    stored["spool_dir"] = spec.spool_dir or str(out / "influx-spool")
    stored["run_dir"] = str(out)
    try:
        config = config_from_spec(spec, out)
        clock = scenario.clock()
        last = int(clock.times[-1].timestamp())
        tags = {
            "site": scenario.name,
            "run_id": metadata["run_id"],
            "scenario_hash": metadata["scenario_hash"],
            "controller": scenario.controller,
        }
        stats = write_kpis({**kpis, **run_span_fields(clock)}, config, tags, last)
        stored["kpi"] = stats.as_dict()
        stored["kpi_points"] = stats.points_written
    except InfluxError as exc:
        stored["kpi_error"] = str(exc)
    left = Spool(Path(stored["spool_dir"])).pending()  # after both writers: what is on disk
    stored["spooled_left"], stored["spooled_points_left"] = left.batches, left.points


def delivery_check(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """Every point of the run (and its KPI point) is stored on the server."""
    if getattr(scenario.outputs, "influx", None) is None:
        return []
    stats = metadata.get("influx") or {}
    problems = []
    if "points_submitted" not in stats:
        problems.append("the InfluxDB sink left no counters (its writer did not finish)")
    problems += delivery_problems(stats)
    if stats.get("kpi_error"):
        problems.append(f"KPI point not written: {stats['kpi_error']}")
    problems += [f"KPI point: {p}" for p in delivery_problems(stats.get("kpi", {}))]
    if stats.get("spooled_points_left"):
        problems.append(
            f"{stats['spooled_points_left']:,} points in {stats['spooled_left']} batches left "
            f"in the spool {stats.get('spool_dir', '')}: replay them with "
            f"`twin influx flush {stats.get('run_dir', 'RUN_DIR')}`"
        )
    return [CheckFailure("influx", p) for p in problems]


def summary_line(stats: Mapping[str, Any]) -> str:
    """One readable line of a run's InfluxDB counters (the sink's, and the KPI point)."""
    kpi = stats.get("kpi")
    if kpi is None:
        kpi_state = "not written" if "kpi_error" in stats else ""
    elif kpi.get("points_written"):
        kpi_state = "written"
    else:
        kpi_state = "spooled" if kpi.get("points_spooled") else "not written"
    return (
        f"{stats.get('points_written', 0):,} points written, {stats.get('retried', 0)} retries,"
        f" {stats.get('points_spooled', 0):,} spooled and"
        f" {stats.get('points_replayed', 0):,} replayed,"
        f" {stats.get('points_dropped', 0):,} dropped,"
        f" {stats.get('spooled_points_left', 0):,} points in"
        f" {stats.get('spooled_left', 0)} batches left in the spool"
        + (f"; KPI point {kpi_state}" if kpi_state else "")
    )


@dataclass(frozen=True)
class FlushSummary:
    """What ``twin influx flush`` did: the spool before and after, and the counters."""

    target: str
    spool_dir: Path
    batches_before: int
    points_before: int
    batches_left: int
    points_left: int
    stats: WriterStats
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether everything is on the server now."""
        return not (self.points_left or self.stats.points_dropped or self.error)

    def __str__(self) -> str:
        s = self.stats
        return (
            f"{self.target}: spool {self.spool_dir} held {self.points_before:,} points in "
            f"{self.batches_before} batches; {s.points_replayed:,} replayed, "
            f"{s.points_dropped:,} dropped, {self.points_left:,} points in "
            f"{self.batches_left} batches left"
        )


def flush_spool(
    run_dir: str | Path, url: str | None = None, env: Mapping[str, str] | None = None
) -> FlushSummary:
    """Replay the spool a run left behind, to the server named in its ``run.json``.

    Idempotent: a replayed point overwrites itself (same measurement, tags, time), and
    an empty spool replays nothing. Secrets come from the scenario's ``*_env`` or
    ``*_file`` fields, else from ``TWIN_INFLUX_USERNAME``, ``TWIN_INFLUX_PASSWORD`` and
    ``TWIN_INFLUX_TOKEN``.

    Raises
    ------
    InfluxError
        If the run has no ``outputs.influx``, or the server is unreachable or refuses.
    """
    from adapters.influx.schema import InfluxSpec

    env = os.environ if env is None else env
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise InfluxError(f"{run_dir / 'run.json'}: cannot read the run ({exc})") from None
    stored = (meta.get("scenario", {}).get("outputs") or {}).get("influx")
    if not stored:
        raise InfluxError(f"{run_dir}: the run has no outputs.influx to flush to")
    raw = {k: v for k, v in stored.items() if v != MASK and v is not None}
    if url:
        raw["url"] = url
    for name, variable in FLUSH_ENV.items():
        if variable in env and not any(raw.get(f"{name}{x}") for x in ("", "_env", "_file")):
            raw[name] = env[variable]
    try:
        spec = InfluxSpec.model_validate(raw)
    except ValidationError as exc:  # the fields named, never their values (a URL's login)
        fields = ", ".join(".".join(map(str, e["loc"])) or "influx" for e in exc.errors())
        raise InfluxError(
            f"{run_dir}: cannot flush: invalid InfluxDB settings ({fields}); "
            "expected e.g. --url http://host:8086"
        ) from None
    config = config_from_spec(spec, run_dir, env)
    spool = Spool(Path(config.spool_dir))
    before = spool.pending()
    writer = InfluxWriter(config).open(require_server=True)
    error = None
    try:
        stats = writer.close(timeout_s=max(60.0, config.timeout_s * 2 * before.batches))
    except InfluxError as exc:
        stats, error = writer.stats, str(exc)
    after = spool.pending()
    return FlushSummary(
        config.target,
        spool.dir,
        before.batches,
        before.points,
        after.batches,
        after.points,
        stats,
        error,
    )
