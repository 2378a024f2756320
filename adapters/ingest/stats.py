"""What ingestion counted: run metadata (``run.json``'s ``ingest``), the run check, a summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.influx.stats import delivery_problems

__all__ = ["STATS_FILE", "IngestCounts", "ingest_problems", "ingest_stats", "summary_line"]

#: The simulator's counters in the run's ``parts`` directory.
STATS_FILE = "ingest.json"
#: Unknown sensor keys kept (with their counts) for the report.
TOP_UNKNOWN = 100


@dataclass
class IngestCounts:
    """Counters of one ingestion (every value ends in exactly one outcome).

    ``messages`` received; ``values`` records in them; of the values: ``unknown`` (no
    mapping), ``bad_unit`` (a unit the quantity cannot take), ``skewed``,
    ``duplicates``, and the rest ``accepted``, which are stored (``submitted`` to the
    writer) and placed in a window unless ``late``; ``implausible`` of the accepted ones
    are stored with quality 0 and flagged. ``malformed`` and ``too_large`` count bad
    records and rejected payloads; ``untimed`` values without a time (receipt time used).
    ``windows`` closed, ``delivered`` values in their readings (one per sensor and
    window; every closed window is delivered, also when one step closes several).
    """

    messages: int = 0
    values: int = 0
    accepted: int = 0
    submitted: int = 0
    duplicates: int = 0
    late: int = 0
    skewed: int = 0
    stale: int = 0
    implausible: int = 0
    malformed: int = 0
    too_large: int = 0
    unknown: int = 0
    unknown_messages: int = 0
    bad_unit: int = 0
    untimed: int = 0
    callback_errors: int = 0
    windows: int = 0
    delivered: int = 0
    unknown_keys: dict[str, int] = field(default_factory=dict)
    implausible_sensors: dict[str, int] = field(default_factory=dict)

    def note_unknown(self, key: str) -> None:
        """Count a value of an unknown sensor key (its count kept for the first keys)."""
        self.unknown += 1
        keys = self.unknown_keys
        if key in keys:
            keys[key] += 1
        elif len(keys) < TOP_UNKNOWN:
            keys[key] = 1

    def as_dict(self) -> dict[str, Any]:
        """The counters, the unknown keys (most frequent first)."""
        out = {k: v for k, v in self.__dict__.items() if isinstance(v, int)}
        out["unknown_topics"] = len(self.unknown_keys)
        out["unknown_top"] = dict(sorted(self.unknown_keys.items(), key=lambda kv: -kv[1]))
        out["implausible_sensors"] = dict(self.implausible_sensors)
        return out


def ingest_stats(parts_dir: Path) -> dict[str, Any]:
    """The counters the ingest simulator left (``{"ingest": ...}``), or nothing."""
    path = parts_dir / STATS_FILE
    return {"ingest": json.loads(path.read_text())} if path.exists() else {}


def ingest_problems(stats: dict[str, Any], max_unknown_share: float) -> list[str]:
    """What makes a run fail its ``ingest`` check: lost values, too many unknown messages."""
    if "messages" not in stats:
        return ["the ingest simulator left no counters (it did not finish)"]
    problems = []
    if stats.get("error"):
        problems.append(f"ingest: {stats['error']}")
    if not stats["messages"]:
        problems.append(
            "no message arrived: check ingest.topics, the broker, the login's ACL and "
            "wall_start (the plant clock)"
        )
    if stats.get("callback_errors"):
        problems.append(
            f"{stats['callback_errors']:,} messages failed in the ingest (their values are "
            "lost; the first error is in the log)"
        )
    store = stats.get("store")
    if store is not None:
        lost = stats["accepted"] + stats.get("stale", 0) - stats["submitted"]
        if lost:
            problems.append(f"{lost:,} accepted values were never handed to the writer")
        handed = stats.get("handed")
        if handed is not None and handed != stats["submitted"]:
            problems.append(
                f"{stats['submitted'] - handed:,} values submitted to the store never "
                "reached the writer"
            )
        problems += delivery_problems(store)
        if store.get("spooled_points_left"):
            problems.append(
                f"{store['spooled_points_left']:,} raw points left in the spool "
                f"{stats.get('spool_dir', '')}: replay with `twin influx flush`"
            )
    messages = stats["messages"]
    share = stats["unknown_messages"] / messages if messages else 0.0
    if share > max_unknown_share:
        top = ", ".join(list(stats.get("unknown_top", {}))[:5])
        problems.append(
            f"{share:.1%} of {messages:,} messages had no known sensor (more than "
            f"max_unknown_share {max_unknown_share:.1%}); e.g. {top}"
        )
    return problems


def summary_line(stats: dict[str, Any]) -> str:
    """One readable line of the counters (the console summary)."""
    store = stats.get("store") or {}
    parts = [
        f"{stats.get('messages', 0):,} messages",
        f"{stats.get('values', 0):,} values",
        f"{stats.get('accepted', 0):,} accepted",
        f"{store.get('points_written', 0):,} stored",
    ]
    for name in (
        "late",
        "duplicates",
        "skewed",
        "stale",
        "implausible",
        "malformed",
        "too_large",
        "unknown",
        "bad_unit",
        "callback_errors",
    ):
        if stats.get(name):
            parts.append(f"{stats[name]:,} {name.replace('_', ' ')}")
    return "ingest: " + ", ".join(parts)
