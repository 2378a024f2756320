"""Scores of a run's alerts against its ground truth (``labels.json``): ``scores.json``.

Event matching (``/work/notes/diag14.md``, shared with the engine): an alert matches a
label when it names the label's asset (:func:`twin.diagnostics.reveal.label_asset`:
``grid`` -> ``poc``, ``load_1.p_kw`` -> ``load_1``) and starts within ``[label.start,
label.end + grace]`` (``grace`` = :data:`GRACE_STEPS` steps). A label is detected when an
alert matches it; its delay is the first matching alert's start minus the label's start.
An alert that matches no label is a false alarm.

Per fault kind: ``events`` are the revealable labels of that kind (see
:mod:`twin.diagnostics.reveal`; the others are counted in ``unrevealable`` and listed
under ``not_revealable``, never hidden), ``recall = detected / events``, ``precision =
tp / (tp + fp)`` with ``tp`` the alerts that match a label of that kind and ``fp`` the
false alarms that name that kind (false alarms named ``anomaly`` name no kind: they
count only in ``false_alarms``), ``f1`` their harmonic mean.

Diagnosis: a detected label's diagnosed kind is the kind of its earliest matching alert
that names a fault kind (``anomaly`` when only anomaly alerts matched it). It is correct
when it is the label's kind or in the same group of :data:`EQUIVALENT_KINDS`:
``pv_shading`` and ``pv_string_outage`` are the same physics (a derate of the plant's
output, ``models/faults.py``), which no sensor can tell apart, so they score as one
group. The confusion matrix is true kind x diagnosed kind over revealable labels, with
``missed`` for the undetected ones.

Beyond the shared schema each kind also carries ``delay_p90_steps``, ``unrevealable``,
``tp_alerts`` and ``fp_alerts``, and the scores carry ``equivalent_kinds`` and
``records`` (one per label): what :func:`aggregate_scores` needs to recompute every
figure over many runs (medians cannot be averaged).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.diagnostics.reveal import NOT_REVEALABLE, label_asset, revealable

__all__ = [
    "EQUIVALENT_KINDS",
    "GRACE_STEPS",
    "aggregate_scores",
    "kind_group",
    "score_dir",
    "score_run",
]

#: Steps after a label's end in which an alert still matches it.
GRACE_STEPS = 2
#: Fault kinds with identical physics: a diagnosis of any of a group is correct.
EQUIVALENT_KINDS: tuple[tuple[str, ...], ...] = (("pv_shading", "pv_string_outage"),)
#: Alert kind that names no fault kind.
ANOMALY = "anomaly"
#: Confusion-matrix column of a revealable label no alert matched.
MISSED = "missed"


def kind_group(kind: str) -> str:
    """The first kind of ``kind``'s group in :data:`EQUIVALENT_KINDS` (else ``kind``)."""
    for group in EQUIVALENT_KINDS:
        if kind in group:
            return group[0]
    return kind


def _alerts(alerts: Any) -> list[dict[str, Any]]:
    """Alert records (from ``alerts.json``, a DataFrame of ``alerts.parquet``, or None)."""
    if alerts is None:
        return []
    if isinstance(alerts, pd.DataFrame):
        alerts = alerts.to_dict("records")
    out = []
    for alert in alerts:
        record = dict(alert)
        record["start"] = pd.Timestamp(record["start"])
        if record["start"].tzinfo is None:
            record["start"] = record["start"].tz_localize("UTC")
        out.append(record)
    return out


def _labels(labels: Any) -> list[dict[str, Any]]:
    """Label records (``labels.json``'s dict or its ``faults`` list)."""
    if labels is None:
        return []
    if isinstance(labels, dict):
        labels = labels.get("faults", [])
    return [dict(label) for label in labels]


def _num(value: float | None) -> float | None:
    """A JSON-safe float (None for NaN or missing)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def score_run(
    alerts: Any,
    labels: Any,
    step_s: float,
    start: Any,
    end: Any,
    *,
    results: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Score one run's alerts against its labels (the ``scores.json`` schema).

    Parameters
    ----------
    alerts : list of dict or pandas.DataFrame
        The run's alerts (``alerts.json`` records or ``alerts.parquet``): at least
        ``asset``, ``kind`` and ``start``.
    labels : dict or list of dict
        ``labels.json`` (or its ``faults``): ``kind``, ``target``, ``start``, ``end``.
    step_s : float
        The run's step (s): the grace of the matching and the delays in steps.
    start, end : str or pandas.Timestamp
        The run's span (false alarms per day).
    results : pandas.DataFrame, optional
        The run's tidy rows; the scorer reads the true rows to decide which labels the
        sensors could reveal (:func:`twin.diagnostics.reveal.revealable`). Without them
        every label counts.

    Returns
    -------
    dict
        The scores (see the module docstring), JSON-serialisable.
    """
    alert_list = _alerts(alerts)
    label_list = _labels(labels)
    grace = pd.Timedelta(seconds=GRACE_STEPS * step_s)
    reveals = revealable(label_list, results)
    matched: list[list[int]] = [[] for _ in alert_list]
    records = []
    for j, (label, reveal) in enumerate(zip(label_list, reveals, strict=True)):
        t0, t1 = pd.Timestamp(label["start"]), pd.Timestamp(label["end"])
        asset = label_asset(label["target"])
        hits = sorted(
            (a["start"], i)
            for i, a in enumerate(alert_list)
            if str(a["asset"]) == asset and t0 <= a["start"] <= t1 + grace
        )
        for _, i in hits:
            matched[i].append(j)
        named = [i for _, i in hits if alert_list[i]["kind"] != ANOMALY]
        diagnosed = alert_list[named[0]]["kind"] if named else (ANOMALY if hits else None)
        delay = (hits[0][0] - t0).total_seconds() if hits else None
        records.append(
            {
                "kind": label["kind"],
                "target": label["target"],
                "asset": asset,
                "start": t0.isoformat(),
                "end": t1.isoformat(),
                "severity": label.get("severity"),
                "revealable": reveal.revealable,
                "reveal": reveal.why,
                "detected": bool(hits),
                "delay_s": delay,
                "delay_steps": None if delay is None else delay / step_s,
                "diagnosed_kind": diagnosed,
                "correct": diagnosed is not None
                and kind_group(diagnosed) == kind_group(label["kind"]),
            }
        )
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    false_alarms = 0
    for alert, hit in zip(alert_list, matched, strict=True):
        if hit:
            tp.update({label_list[j]["kind"] for j in hit})
        else:
            false_alarms += 1
            if alert["kind"] != ANOMALY:
                fp[str(alert["kind"])] += 1
    days = (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds() / 86400.0
    return _summarise(records, tp, fp, false_alarms, days, step_s)


def _kind_scores(records: list[dict[str, Any]], tp: int, fp: int) -> dict[str, Any]:
    events = [r for r in records if r["revealable"]]
    found = [r for r in events if r["detected"]]
    recall = len(found) / len(events) if events else None
    precision = tp / (tp + fp) if tp + fp else None
    if recall is None:
        f1 = None
    elif recall == 0 or not precision:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    delays = np.array([r["delay_s"] for r in found], dtype=float)
    steps = np.array([r["delay_steps"] for r in found], dtype=float)

    def pct(values: np.ndarray, q: float) -> float | None:
        return _num(float(np.percentile(values, q))) if values.size else None

    return {
        "events": len(events),
        "detected": len(found),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "delay_median_s": pct(delays, 50),
        "delay_p90_s": pct(delays, 90),
        "delay_median_steps": pct(steps, 50),
        "delay_p90_steps": pct(steps, 90),
        "diagnosed_correct": sum(r["correct"] for r in found),
        "unrevealable": len(records) - len(events),
        "tp_alerts": tp,
        "fp_alerts": fp,
    }


def _summarise(
    records: list[dict[str, Any]],
    tp: Counter[str],
    fp: Counter[str],
    false_alarms: int,
    days: float,
    step_s: float | None,
) -> dict[str, Any]:
    """Every figure of ``scores.json`` from per-label records and alert counts."""
    kinds = sorted({r["kind"] for r in records} | set(fp))
    scores = {
        kind: _kind_scores([r for r in records if r["kind"] == kind], tp[kind], fp[kind])
        for kind in kinds
    }
    revealed = [k for k in kinds if scores[k]["events"]]
    f1s = [scores[k]["f1"] for k in revealed]
    found = [r for r in records if r["revealable"] and r["detected"]]
    confusion: dict[str, dict[str, int]] = {}
    for r in records:
        if r["revealable"]:
            row = confusion.setdefault(r["kind"], {})
            column = r["diagnosed_kind"] or MISSED
            row[column] = row.get(column, 0) + 1
    hidden: dict[str, str] = {}
    for kind in kinds:
        dark = [r for r in records if r["kind"] == kind and not r["revealable"]]
        if dark:
            total = sum(r["kind"] == kind for r in records)
            hidden[kind] = (
                f"{len(dark)} of {total} event(s): {NOT_REVEALABLE.get(kind, '')} "
                f"(e.g. {dark[0]['target']} at {dark[0]['start']}: {dark[0]['reveal']})"
            )
    return {
        "kinds": scores,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "revealable_kinds": revealed,
        "not_revealable": hidden,
        "false_alarms": false_alarms,
        "false_alarms_per_day": false_alarms / days if days > 0 else None,
        "diagnosis_accuracy": sum(r["correct"] for r in found) / len(found) if found else None,
        "confusion": confusion,
        "days": days,
        "step_s": step_s,
        "equivalent_kinds": [list(group) for group in EQUIVALENT_KINDS],
        "records": records,
    }


def aggregate_scores(scores: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The scores of many runs (a campaign) as one: the same fields, recomputed.

    Events, alert counts, false alarms and days are pooled; the ratios, delays and the
    confusion matrix are computed again from the pooled per-label records. ``step_s``
    is the runs' common step, or None when they differ.
    """
    records: list[dict[str, Any]] = []
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    false_alarms, days, steps = 0, 0.0, set()
    for score in scores:
        records += score["records"]
        for kind, entry in score["kinds"].items():
            tp[kind] += entry["tp_alerts"]
            fp[kind] += entry["fp_alerts"]
        false_alarms += score["false_alarms"]
        days += score["days"]
        steps.add(score["step_s"])
    step_s = steps.pop() if len(steps) == 1 else None
    return _summarise(records, tp, fp, false_alarms, days, step_s)


LABEL_FIELDS = ("kind", "target", "start", "end")


def read_labels(path: Path) -> list[dict[str, Any]]:
    """The fault labels of ``labels.json`` (none if the file is absent).

    Raises
    ------
    ResultsError
        The file is unreadable, or an entry lacks a field or has a bad time, named by
        its path (``labels.json: faults[3].start``).
    """
    from twin.errors import ResultsError

    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None
    faults = document.get("faults") if isinstance(document, dict) else None
    if not isinstance(faults, list):
        raise ResultsError(f"{path}: expected {{'faults': [...]}} as twin run writes it")
    for i, label in enumerate(faults):
        if not isinstance(label, dict):
            raise ResultsError(f"{path}: faults[{i}]: expected a mapping, got {label!r:.40}")
        for field in LABEL_FIELDS:
            if not isinstance(label.get(field), str):
                raise ResultsError(f"{path}: faults[{i}].{field}: missing or not text")
        for field in ("start", "end"):
            try:
                pd.Timestamp(label[field])
            except ValueError:
                raise ResultsError(
                    f"{path}: faults[{i}].{field}: expected an ISO time, got {label[field]!r:.40}"
                ) from None
    return [dict(label) for label in faults]


def score_dir(
    run_dir: Path, alerts: list[dict[str, Any]] | None = None, *, write: bool = True
) -> dict[str, Any]:
    """Scores of a diagnosed run directory: its alerts against its labels (or none).

    ``alerts`` default to the run's ``alerts.json``. The run's true rows decide which
    labels are revealable. With ``write``, the scores go to the run's ``scores.json``
    when the run has labels.
    """
    from twin.errors import ResultsError
    from twin.results import load_results, read_run
    from twin.units import parse_duration_s

    try:
        scenario = read_run(run_dir)["scenario"]
        results = load_results(run_dir)
        if alerts is None:
            alerts = json.loads((run_dir / "alerts.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's errors too
        raise ResultsError(f"{run_dir}: a run's files are unreadable ({exc})") from None
    step_s = float(parse_duration_s(scenario["step"]))
    start = pd.Timestamp(scenario["start"]).tz_convert("UTC")
    end = start + pd.Timedelta(seconds=parse_duration_s(scenario["duration"]))
    labels_path = run_dir / "labels.json"
    labels = read_labels(labels_path)
    scores = score_run(alerts, labels, step_s, start, end, results=results)
    if write and labels_path.is_file():
        (run_dir / "scores.json").write_text(dumps(scores))
    return scores


def dumps(scores: dict[str, Any]) -> str:
    """``scores.json`` text (NaN written as null)."""
    return json.dumps(scores, indent=2, default=_json_default, allow_nan=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _num(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
