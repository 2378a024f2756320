"""Tables of diagnostics scores (``scores.json``) for the terminal and the benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = ["HEADER", "score_rows", "scores_table", "summary_line"]

#: Columns of a scores table.
HEADER = ("kind", "events", "recall", "precision", "F1", "delay med", "delay p90", "diag ok")


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _delay(seconds: float | None, steps: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:,.0f} s ({steps:.1f})" if steps is not None else f"{seconds:,.0f} s"


def score_rows(scores: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row of text per fault kind with events (:data:`HEADER`)."""
    rows = []
    for kind, entry in sorted(scores["kinds"].items()):
        if not entry["events"] and not entry.get("unrevealable"):
            continue
        detected = entry["detected"]
        rows.append(
            (
                kind,
                f"{entry['events']}"
                + (f" (+{entry['unrevealable']} hidden)" if entry.get("unrevealable") else ""),
                _fmt(entry["recall"]),
                _fmt(entry["precision"]),
                _fmt(entry["f1"]),
                _delay(entry["delay_median_s"], entry["delay_median_steps"]),
                _delay(entry["delay_p90_s"], entry.get("delay_p90_steps")),
                f"{entry['diagnosed_correct']}/{detected}" if detected else "-",
            )
        )
    return rows


def summary_line(scores: dict[str, Any]) -> str:
    """Macro F1, diagnosis accuracy and false alarms in one line."""
    per_week = scores["false_alarms_per_day"]
    return (
        f"macro F1 {_fmt(scores['macro_f1'])} over {len(scores['revealable_kinds'])} kinds; "
        f"diagnosis {_fmt(scores['diagnosis_accuracy'], '.0%')}; false alarms "
        f"{scores['false_alarms']} in {scores['days']:.1f} days "
        f"({_fmt(None if per_week is None else 7 * per_week)} per site-week)"
    )


def scores_table(scores: dict[str, Any] | str | Path, title: str = "diagnostics") -> Table:
    """A rich table of scores (a dict or a ``scores.json`` path); see :func:`summary_line`."""
    if not isinstance(scores, dict):
        scores = json.loads(Path(scores).read_text())
    table = Table(title=title)
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in score_rows(scores):
        table.add_row(*row)
    return table
