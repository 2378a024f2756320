"""Diagnostics of a campaign (``twin campaign ... --diagnose``): every run scored.

After a campaign's runs, :func:`diagnose_campaign` runs the offline engine on every
finished run (``twin diagnose``: ``health.parquet``, ``alerts.parquet``/``.json`` and,
where the run has labels, ``scores.json`` in the run's directory), adds per-run columns
to the summary and writes the pooled scores of all runs to ``scores.json`` in the
campaign directory (:func:`twin.diagnostics.score.aggregate_scores`; the fault-free
reference runs contribute their false alarms and days).

Columns (:data:`COLUMNS`), for the campaign's own fault of the run (the last label: the
campaign appends its fault to the base scenario's): ``alerts``, ``false_alarms``,
``revealable``, ``detected``, ``delay_s``, ``delay_steps``, ``diagnosed_kind``,
``diagnosis_correct`` and ``f1`` (the run's macro F1); fault-free runs have only
``alerts`` and ``false_alarms``. A run the engine refuses (no measured rows, a model
that does not know its sensors) gets its reason in ``diagnose_error`` and no scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from twin.diagnostics.score import aggregate_scores, dumps, score_dir
from twin.errors import TwinError

__all__ = ["COLUMNS", "diagnose_campaign"]

#: Summary columns added per run.
COLUMNS = (
    "alerts",
    "false_alarms",
    "revealable",
    "detected",
    "delay_s",
    "delay_steps",
    "diagnosed_kind",
    "diagnosis_correct",
    "f1",
    "diagnose_error",
)


def _engine_diagnose(run_dir: Path, model: Path | None) -> Any:
    """Run the offline engine on a run directory (writes health and alerts)."""
    from twin.diagnostics.run import diagnose_run  # the engine's offline loop

    return diagnose_run(run_dir, model=model, features=False)


def _columns(scores: dict[str, Any], alerts: int, faulted: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"alerts": alerts, "false_alarms": scores["false_alarms"]}
    if faulted and scores["records"]:
        record = scores["records"][-1]
        row.update(
            revealable=record["revealable"],
            detected=record["detected"],
            delay_s=record["delay_s"],
            delay_steps=record["delay_steps"],
            diagnosed_kind=record["diagnosed_kind"],
            diagnosis_correct=record["correct"] if record["detected"] else None,
            f1=scores["macro_f1"],
        )
    return row


def diagnose_campaign(
    campaign_dir: str | Path,
    summary: pd.DataFrame,
    *,
    model: str | Path | None = None,
    diagnose: Callable[[Path, Path | None], Any] = _engine_diagnose,
) -> pd.DataFrame:
    """Diagnose and score every finished run; the summary with :data:`COLUMNS` added.

    Parameters
    ----------
    campaign_dir : str or pathlib.Path
        The campaign directory (``runs/<point_id>/``).
    summary : pandas.DataFrame
        The campaign's summary (``point_id``, ``status``, ``reference``).
    model : str or pathlib.Path, optional
        A saved learned model (``twin diagnostics train``) for the engine.
    diagnose : callable
        ``(run_dir, model) -> Any``, writing the run's ``alerts.json``; default the
        engine's offline loop.

    Returns
    -------
    pandas.DataFrame
        The summary with the diagnostics columns; ``scores.json`` (pooled) is written
        to the campaign directory.
    """
    root = Path(campaign_dir)
    model_dir = Path(model) if model is not None else None
    rows, pooled = [], []
    for _, point in summary.iterrows():
        run_dir = root / "runs" / str(point["point_id"])
        if point["status"] != "finished":
            rows.append({})
            continue
        try:
            diagnose(run_dir, model_dir)
            scores = score_dir(run_dir)
            alerts = json.loads((run_dir / "alerts.json").read_text())
        except (TwinError, OSError, ValueError) as exc:  # a run we cannot read: a row
            rows.append({"diagnose_error": f"{type(exc).__name__}: {exc}"})
            continue
        pooled.append(scores)
        rows.append(_columns(scores, len(alerts), pd.notna(point.get("reference"))))
    added = pd.DataFrame.from_records(rows, index=summary.index, columns=list(COLUMNS))
    out = pd.concat([summary.drop(columns=[c for c in COLUMNS if c in summary]), added], axis=1)
    if pooled:
        (root / "scores.json").write_text(dumps(aggregate_scores(pooled)))
    return out
