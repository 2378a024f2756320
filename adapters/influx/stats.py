"""What became of the points a writer was given: counters, and what they say went wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.influx.transport import InfluxError

__all__ = ["IncompleteWrite", "WriterStats", "delivery_problems"]


@dataclass
class WriterStats:
    """What became of every point (a point is a line)."""

    points_submitted: int = 0
    points_written: int = 0
    batches_written: int = 0
    retried: int = 0
    points_spooled: int = 0
    points_replayed: int = 0
    points_dropped: int = 0
    points_unsent: int = 0
    points_in_flight: int = 0
    points_unaccounted: int = 0
    thread_errors: int = 0
    closing_timed_out: bool = False
    spooled_left: int = 0
    spooled_points_left: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counters and the last errors."""
        return {
            **{k: v for k, v in self.__dict__.items() if k != "errors"},
            "error_count": len(self.errors),
            "errors": self.errors[-5:],
        }


class IncompleteWrite(InfluxError):
    """Not every point reached the server; ``stats`` says where they are."""

    def __init__(self, message: str, stats: WriterStats) -> None:
        super().__init__(message)
        self.stats = stats


def delivery_problems(stats: Mapping[str, Any]) -> list[str]:
    """What went wrong, from one writer's counters (:meth:`WriterStats.as_dict`).

    Points left in the spool are not a problem of the writer (they wait for a replay);
    callers that need them on the server check ``spooled_points_left`` too.
    """
    problems = []
    if stats.get("error"):
        problems.append(f"writer error: {stats['error']}")
    for key, what in (
        ("points_dropped", "points dropped"),
        ("points_unsent", "points never sent (writer stopped)"),
        ("points_in_flight", "points still in flight when the writer was stopped"),
        ("points_unaccounted", "points unaccounted for (a writer bug)"),
        ("thread_errors", "unexpected errors in the writer thread"),
    ):
        if stats.get(key):
            problems.append(f"{stats[key]:,} {what}")
    if stats.get("closing_timed_out"):
        problems.append("the writer did not finish in time")
    return problems
