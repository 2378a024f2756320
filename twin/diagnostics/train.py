"""Training the learned diagnostics on a finished campaign (``twin diagnostics train``).

A campaign directory (:mod:`twin.campaign`) holds ``runs/<point_id>/`` with
``results.parquet``, ``run.json`` and, for runs with faults, ``labels.json``. The
engine computes every run's per-asset feature rows from its measured values
(:func:`run_features`). Rows of fault-free runs (the campaign's reference points, no
``labels.json``) train the anomaly models; every row, labelled with the kind of the
revealable fault acting on its asset (:func:`label_rows`), trains the classifiers.

Nothing is written unless training succeeds: an empty campaign, or one whose runs have
no measured rows, is a :class:`TrainingDataError` naming the directory and what was
expected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from twin.diagnostics.learned import DiagnosticsModel, fingerprint, fit, save, sensor_types
from twin.diagnostics.reveal import label_asset, revealable
from twin.errors import TwinError
from twin.units import parse_duration_s

__all__ = [
    "RunFeatures",
    "TrainingDataError",
    "campaign_runs",
    "label_rows",
    "run_features",
    "train_campaign",
]


class TrainingDataError(TwinError):
    """A campaign cannot train a model (no finished runs, no measured rows...)."""

    def __init__(self, path: str, message: str, expected: str) -> None:
        self.path = path
        self.expected = expected
        super().__init__(f"{path}: {message}; expected {expected}")


@dataclass
class RunFeatures:
    """One run's per-asset feature rows, as the engine computes them.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``time``, ``asset``, ``asset_kind`` and the feature columns.
    features : dict of str to list of str
        Feature columns per asset kind.
    sensors : list of tuple
        The run's measured series ``(asset, kind, quantity)``.
    catalogue_fingerprint : str
        :meth:`twin.diagnostics.catalogue.Catalogue.fingerprint` of the run.
    """

    frame: pd.DataFrame
    features: dict[str, list[str]]
    sensors: list[tuple[str, str, str]]
    catalogue_fingerprint: str = ""


def run_features(run_dir: Path, results: pd.DataFrame) -> RunFeatures:
    """The engine's per-asset features of a finished run (offline, measured rows only)."""
    from twin.diagnostics.features import feature_names
    from twin.diagnostics.run import diagnose_run

    found = diagnose_run(run_dir, write=False)
    kinds = sorted({a.kind for a in found.catalogue.assets.values()})
    return RunFeatures(
        found.features,
        {kind: feature_names(kind) for kind in kinds},
        [s.key for s in found.catalogue.sensors],
        found.catalogue.fingerprint(),
    )


def campaign_runs(campaign_dir: str | Path) -> list[Path]:
    """The finished runs of a campaign directory (``run.json`` status ``finished``).

    Raises
    ------
    TrainingDataError
        When the directory has no finished run.
    """
    root = Path(campaign_dir)
    runs = []
    for run_dir in sorted((root / "runs").glob("*")) if (root / "runs").is_dir() else []:
        try:
            meta = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("status") == "finished" and (run_dir / "results.parquet").is_file():
            runs.append(run_dir)
    if not runs:
        raise TrainingDataError(
            str(root / "runs"),
            "no finished runs",
            "a campaign directory of `twin campaign` with finished runs/<point_id>/",
        )
    return runs


def _labels(run_dir: Path) -> list[dict[str, Any]]:
    from twin.diagnostics.score import read_labels

    return read_labels(run_dir / "labels.json")


def label_rows(
    frame: pd.DataFrame, labels: list[dict[str, Any]], results: pd.DataFrame | None
) -> pd.Series:
    """Per feature row, the kind of the fault acting on its asset then, else ``none``.

    A fault acts on rows of its target asset (:func:`twin.diagnostics.reveal.label_asset`)
    with ``start <= time < end``. Faults the sensors cannot reveal (the scorer's rule)
    label nothing: their rows look fault-free and would only teach noise.
    """
    out = pd.Series("none", index=frame.index, dtype=object)
    times = pd.to_datetime(frame["time"], utc=True)
    for label, reveal in zip(labels, revealable(labels, results), strict=True):
        if not reveal.revealable:
            continue
        acting = (
            (frame["asset"].astype(str) == label_asset(label["target"]))
            & (times >= pd.Timestamp(label["start"]))
            & (times < pd.Timestamp(label["end"]))
        )
        out[acting] = label["kind"]
    return out


def train_campaign(
    campaign_dir: str | Path,
    out_dir: str | Path,
    *,
    featurize: Callable[[Path, pd.DataFrame], RunFeatures] = run_features,
    seed: int = 0,
) -> DiagnosticsModel:
    """Train and save the learned diagnostics on a finished campaign's runs.

    Parameters
    ----------
    campaign_dir : str or pathlib.Path
        A directory written by ``twin campaign``.
    out_dir : str or pathlib.Path
        Where the model goes (:func:`twin.diagnostics.learned.save`); written only on
        success.
    featurize : callable
        ``(run_dir, results) -> RunFeatures``; default the engine's.
    seed : int
        Seed of the classifiers.

    Raises
    ------
    TrainingDataError
        No finished runs, runs without measured rows, no fault-free run, or runs whose
        engines disagree on the feature lists.
    """
    frames, ids, sensors, clean, catalogues, steps = [], [], set(), 0, set(), set()
    features: dict[str, list[str]] = {}
    for run_dir in campaign_runs(campaign_dir):
        results = pd.read_parquet(run_dir / "results.parquet")
        if not (results["source"] == "measured").any():
            raise TrainingDataError(
                str(run_dir / "results.parquet"),
                "no measured rows (source=measured)",
                "runs with sensors (the scenario's sensors section on)",
            )
        table = featurize(run_dir, results)
        for kind, names in table.features.items():
            if features.setdefault(kind, names) != names:
                raise TrainingDataError(
                    f"{run_dir}: features.{kind}",
                    "other feature names than the campaign's earlier runs",
                    f"{features[kind]} (one engine for the whole campaign)",
                )
        labels = _labels(run_dir)
        frame = table.frame.copy()
        frame["label"] = label_rows(frame, labels, results)
        frame["fault_free"] = not labels
        clean += not labels
        frames.append(frame)
        sensors |= set(sensor_types(table.sensors))
        catalogues.add(table.catalogue_fingerprint)
        meta = json.loads((run_dir / "run.json").read_text())
        steps.add(parse_duration_s(meta["scenario"]["step"]))
        ids.append([meta.get("run_id"), meta.get("scenario_hash"), len(results), len(frame)])
    data = pd.concat(frames, ignore_index=True)
    if not data["fault_free"].any():
        raise TrainingDataError(
            str(campaign_dir),
            "no fault-free run",
            "the campaign's fault-free reference points (runs without labels.json)",
        )
    if len(steps) > 1:
        raise TrainingDataError(
            str(campaign_dir),
            f"runs of several step lengths ({', '.join(f'{s} s' for s in sorted(steps))})",
            "one step length (features such as chart statistics depend on it)",
        )
    training = {
        "campaign": str(Path(campaign_dir).resolve()),
        "step_s": steps.pop(),
        "fingerprint": fingerprint(sorted(ids, key=str)),
        "runs": len(ids),
        "fault_free_runs": clean,
        "rows": len(data),
        "catalogue_fingerprints": sorted(catalogues),
        "labels": {str(k): int(v) for k, v in data["label"].value_counts().sort_index().items()},
    }
    model = fit(data, features, sensors=sorted(sensors), training=training, seed=seed)
    save(model, out_dir)
    return model
