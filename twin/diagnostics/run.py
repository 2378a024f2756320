"""Offline diagnostics of a finished run: ``twin diagnose RUN_DIR [--model M]``.

:func:`diagnose_run` reads the run's measured rows (``source=measured``) and the EMS's
setpoints (``kind=controller``) from ``results.parquet`` and the resolved scenario from
``run.json``, loops the streaming :class:`~twin.diagnostics.engine.Engine` over the steps
exactly as the online simulator does, and writes ``health.parquet``, ``alerts.parquet``
and ``alerts.json`` into the run directory. It never reads the twin's physics rows nor
``labels.json``.
"""

from __future__ import annotations

import json
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.diagnostics.alerts import ALERT_COLUMNS, Alert
from twin.diagnostics.catalogue import Catalogue, catalogue_from
from twin.diagnostics.diagnosis import Diagnoser, RuleDiagnoser
from twin.diagnostics.engine import Engine, Settings
from twin.diagnostics.expected import expectations_from
from twin.diagnostics.features import KIND_INDICES, feature_names
from twin.diagnostics.indices import INDEX_NAMES
from twin.errors import ResultsError, TwinError

__all__ = [
    "DiagnosisResult",
    "NoMeasurementsError",
    "diagnose_run",
    "health_frame",
    "load_diagnoser",
    "measured_arrays",
    "run_engine",
    "series_keys",
    "write_diagnosis",
]


class NoMeasurementsError(TwinError):
    """A run has no ``source=measured`` rows: there is nothing the diagnostics may see."""


@dataclass
class DiagnosisResult:
    """What :func:`diagnose_run` found.

    Attributes
    ----------
    health : pandas.DataFrame
        Tidy indices (the rows of ``health.parquet``).
    alerts : list of dict
        Alert records (``alerts.json``).
    features : pandas.DataFrame
        ``time``, ``asset``, ``asset_kind`` and every feature column (NaN where a
        feature is not of that kind; :func:`twin.diagnostics.features.feature_names`
        gives each kind's columns): the training rows of the learned models.
    catalogue : Catalogue
        The run's sensors (``catalogue.fingerprint()`` for the learned models).
    engine_s : float
        Wall time of the engine's step loop (s).
    steps : int
        Steps diagnosed.
    """

    health: pd.DataFrame
    alerts: list[dict[str, Any]]
    features: pd.DataFrame
    catalogue: Catalogue
    engine_s: float
    steps: int


def _scenario(run_dir: Path) -> Any:
    from twin.results import read_run
    from twin.scenario import validate_scenario

    try:
        meta = read_run(run_dir)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{run_dir / 'run.json'}: unreadable ({exc})") from None
    if not isinstance(meta.get("scenario"), dict):
        raise ResultsError(f"{run_dir / 'run.json'}: no resolved 'scenario' mapping")
    return meta, validate_scenario(meta["scenario"], f"{run_dir / 'run.json'}: scenario")


def series_keys(rows: pd.DataFrame) -> set[tuple[str, str, str]]:
    """The ``(asset, kind, quantity)`` series of tidy result rows."""
    return set(
        zip(
            rows["asset"].astype(str),
            rows["kind"].astype(str),
            rows["quantity"].astype(str),
            strict=True,
        )
    )


def measured_arrays(
    results: pd.DataFrame,
    times: pd.DatetimeIndex,
    keys: list[tuple[str, str, str]],
    commands: list[tuple[str, str, str]],
) -> tuple[np.ndarray, np.ndarray]:
    """Readings ``(n_steps, n_sensors)`` and setpoints ``(n_steps, n_batteries)`` per step.

    A series with a row at the run's end instant is a state: step ``k`` gets its value
    at the end of the step (the row at ``k + 1``), as the online engine receives it.
    Where a device replaced an asset (hybrid, hardware in the loop), the plant's readings
    of it are the device's (``source=real``), in the steps its bridge marked fresh
    (``quality`` 1) and none otherwise: what the online engine receives from the bridge.
    """
    n = len(times)
    step = times[1] - times[0] if n > 1 else pd.Timedelta(0)
    instants = times.append(pd.DatetimeIndex([times[-1] + step]))
    positions = pd.Index(instants.asi8)

    def table(rows: pd.DataFrame, wanted: list[tuple[str, str, str]]) -> np.ndarray:
        out = np.full((n, len(wanted)), np.nan)
        col = {key: j for j, key in enumerate(wanted)}
        stamps = rows["time"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8
        groups = (
            pd.Series(np.arange(len(rows)))
            .groupby(
                [
                    rows["asset"].astype(str).to_numpy(),
                    rows["kind"].astype(str).to_numpy(),
                    rows["quantity"].astype(str).to_numpy(),
                ]
            )
            .indices
        )
        values = rows["value"].to_numpy(float)
        for key, idx in groups.items():
            j = col.get(key)
            if j is None:
                continue
            at = positions.get_indexer(stamps[idx])  # -1 where no instant matches
            state = (at == n).any()
            rows_at = at - 1 if state else at
            ok = (rows_at >= 0) & (rows_at < n)
            out[rows_at[ok], j] = values[idx][ok]
        return out

    source = results["source"].astype(str)
    measured = results[source == "measured"]
    control = results[(source == "twin") & (results["kind"].astype(str) == "controller")]
    readings = table(measured, keys)
    real = results[source == "real"]
    if len(real):
        device = table(real, keys)
        series = series_keys(real)
        bridges = sorted({(a, k) for a, k, q in series if q == "quality"})
        fresh = table(real, [(a, k, "quality") for a, k in bridges])
        for j, (asset, kind, quantity) in enumerate(keys):
            if (asset, kind, quantity) in series and (asset, kind) in bridges:
                ok = fresh[:, bridges.index((asset, kind))] >= 0.5
                readings[:, j] = np.where(ok, device[:, j], np.nan)
    return readings, table(control, commands)


def run_engine(
    engine: Engine, times: pd.DatetimeIndex, readings: np.ndarray, setpoints: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Step ``engine`` over every step; return indices, features per kind and loop time."""
    n = len(times)
    indices = np.full((n, engine.n_assets, len(INDEX_NAMES)), np.nan)
    names = engine.feature_names() if engine.collect_features else {}
    features = {
        kind: np.full((n, len(engine.layout.kinds[kind][0]), len(cols)), np.nan)
        for kind, cols in names.items()
    }
    stamps = list(times)
    started = _time.perf_counter()
    for k in range(n):
        out = engine.step_array(k, stamps[k], readings[k], setpoints[k])
        indices[k] = out.indices
        for kind, values in out.features.items():
            features[kind][k] = values
    return indices, features, _time.perf_counter() - started


def health_frame(
    engine: Engine, times: pd.DatetimeIndex, indices: np.ndarray, site: str, run_id: str
) -> pd.DataFrame:
    """The indices ``(steps, assets, 7)`` of an engine as the tidy ``health.parquet`` rows.

    Each asset gets the indices of its kind (:data:`~twin.diagnostics.features.
    KIND_INDICES`), tagged ``source=diagnostics``; NaN where an index is undefined.
    """
    parts = []
    for a, (asset, kind) in enumerate(zip(engine.assets, engine.asset_kinds, strict=True)):
        for name in KIND_INDICES.get(kind, ()):
            if kind == "grid" and name == "voltage_band" and engine._poc_v < 0:
                continue
            parts.append((asset, kind, name, indices[:, a, INDEX_NAMES.index(name)]))
    n = len(times)
    frame = pd.DataFrame(
        {
            "time": np.tile(times, len(parts)) if parts else pd.DatetimeIndex([], tz="UTC"),
            "site": site,
            "run_id": run_id,
            "source": "diagnostics",
            "asset": np.repeat([p[0] for p in parts], n),
            "kind": np.repeat([p[1] for p in parts], n),
            "quantity": np.repeat([p[2] for p in parts], n),
            "value": np.concatenate([p[3] for p in parts]) if parts else np.array([]),
        }
    )
    for column in ("site", "run_id", "source", "asset", "kind", "quantity"):
        frame[column] = frame[column].astype("category")
    return frame


def _features_frame(
    engine: Engine, times: pd.DatetimeIndex, features: dict[str, np.ndarray]
) -> pd.DataFrame:
    frames = []
    for kind, values in features.items():
        rows, _, names = engine.layout.kinds[kind]
        n, m, f = values.shape
        frame = pd.DataFrame(values.transpose(1, 0, 2).reshape(m * n, f), columns=names)
        frame.insert(0, "asset_kind", kind)
        frame.insert(0, "asset", np.repeat([engine.assets[a] for a in rows], n))
        frame.insert(0, "time", np.tile(times, m))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def alerts_frame(alerts: list[dict[str, Any]]) -> pd.DataFrame:
    """Alert records as the ``alerts.parquet`` table (evidence as a JSON string)."""
    frame = pd.DataFrame(alerts, columns=list(ALERT_COLUMNS))
    frame["evidence"] = [json.dumps(e) for e in frame["evidence"]]
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def load_diagnoser(model: Any, catalogue: Catalogue) -> Diagnoser | None:
    """The diagnoser of ``model``: None (the rules), a diagnoser object, or a directory.

    A directory is a learned model (``twin diagnostics train``), loaded by
    :mod:`twin.diagnostics.learned` against the run's sensors and the engine's feature
    names (a model trained on other sensors or features is a named error); asset
    kinds it has no classifier for fall back to the rules.
    """
    if model is None or hasattr(model, "diagnose"):
        return model
    try:
        from twin.diagnostics import learned  # the learned models (scikit-learn)
    except ImportError as exc:
        raise TwinError(f"--model {model}: the learned models are not available ({exc})") from None

    wanted = {a.kind: feature_names(a.kind) for a in catalogue.assets.values()}
    loaded = learned.load(model, catalogue, None)
    known = {k: v for k, v in loaded.features.items() if k in wanted}
    for kind, names in known.items():
        if names != wanted[kind]:
            learned.load(model, catalogue, wanted)  # raises the named features error
    return learned.LearnedDiagnoser(loaded, fallback=RuleDiagnoser())


def diagnose_run(
    run_dir: str | Path,
    model: Any = None,
    settings: Settings | None = None,
    write: bool = True,
    features: bool = True,
) -> DiagnosisResult:
    """Diagnose a finished run from what its sensors reported.

    Parameters
    ----------
    run_dir : str or Path
        A run directory of ``twin run`` (``results.parquet`` and ``run.json``).
    model : str, Path or Diagnoser, optional
        A learned model directory (``twin diagnostics train``) or a diagnoser object;
        default the physics rules.
    settings : Settings, optional
        Engine settings (``Settings(mode="threshold")``: the static baseline).
    write : bool
        Write ``health.parquet``, ``alerts.parquet`` and ``alerts.json`` (default).
    features : bool
        Collect every asset's features at every step (``DiagnosisResult.features``,
        the training rows); off, the loop is faster and the frame empty.

    Raises
    ------
    NoMeasurementsError
        The run has no measured rows (nothing is written).
    ResultsError
        Missing or unreadable run files.
    """
    from twin.results import load_results

    run_dir = Path(run_dir)
    if not (run_dir / "results.parquet").is_file():
        raise ResultsError(f"{run_dir / 'results.parquet'}: missing (not a run directory?)")
    meta, scenario = _scenario(run_dir)
    try:
        results = load_results(run_dir)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ResultsError(f"{run_dir / 'results.parquet'}: unreadable ({exc})") from None
    source = results["source"].astype(str) if "source" in results else pd.Series([], dtype=str)
    measured = results[source == "measured"]
    if measured.empty:
        raise NoMeasurementsError(
            f"{run_dir / 'results.parquet'}: no rows with source='measured'; the diagnostics "
            "see only what sensors report (run with the sensors section enabled)"
        )
    catalogue = catalogue_from(scenario, series_keys(measured))
    expectations = expectations_from(scenario, catalogue)
    engine = Engine(catalogue, expectations, settings, load_diagnoser(model, catalogue))
    engine.collect_features = features
    times = scenario.clock().times
    readings, setpoints = measured_arrays(
        results, times, [s.key for s in catalogue.sensors], engine.command_keys
    )
    indices, collected, elapsed = run_engine(engine, times, readings, setpoints)
    alerts = alert_records(engine.finish())
    site = str(results["site"].iloc[0]) if len(results) else scenario.name
    run_id = str(meta.get("run_id", ""))
    health = health_frame(engine, times, indices, site, run_id)
    result = DiagnosisResult(
        health, alerts, _features_frame(engine, times, collected), catalogue, elapsed, len(times)
    )
    if write:
        write_diagnosis(run_dir, health, alerts)
    return result


def write_diagnosis(run_dir: Path, health: pd.DataFrame, alerts: list[dict[str, Any]]) -> None:
    """``health.parquet``, ``alerts.parquet`` and ``alerts.json`` into ``run_dir``.

    The one writer of both paths: ``twin diagnose`` and the engine in the loop.
    """
    health.to_parquet(run_dir / "health.parquet", index=False)
    alerts_frame(alerts).to_parquet(run_dir / "alerts.parquet", index=False)
    (run_dir / "alerts.json").write_text(json.dumps(alerts, indent=1) + "\n")


def alert_records(alerts: list[Alert]) -> list[dict[str, Any]]:
    """Records of ``alerts`` (the ``alerts.json`` form)."""
    return [a.record() for a in alerts]
