"""The embedded default sink: a mosaik simulator that records into Parquet.

It needs no server. Every connected entity's attributes are recorded as tidy series
(see :mod:`twin.results`) and written when the simulation finishes.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import mosaik_api_v3

from models.base import Clock
from twin.results import ResultBuffer
from twin.wrapper import STEP_SECONDS

__all__ = ["ACTIVE_RECORDERS", "Recorder"]

#: In-process recorders by output path, so a failed run can still save what it recorded.
ACTIVE_RECORDERS: dict[str, Recorder] = {}


class Recorder(mosaik_api_v3.Simulator):
    """mosaik sink recording every input it receives."""

    def __init__(self) -> None:
        super().__init__(
            {
                "type": "time-based",
                "models": {
                    "Recorder": {
                        "public": True,
                        "any_inputs": True,
                        "params": ["sources", "path", "tags"],
                        "attrs": [],
                    }
                },
            }
        )
        self.buffer: ResultBuffer | None = None

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any]
    ) -> dict[str, Any]:
        """Remember the clock."""
        self.clock = Clock.from_dict(clock)
        return self.meta

    def create(
        self, num: int, model: str, sources: dict[str, list[str]], path: str, tags: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Create the single recorder; ``sources`` maps full entity ids to (asset, kind)."""
        self.sources = {k: tuple(v) for k, v in sources.items()}
        self.path = path
        self.buffer = ResultBuffer(self.clock.times, tags)
        self._columns: dict[tuple[str, str], Any] = {}
        self.steps_done = 0
        ACTIVE_RECORDERS[path] = self
        return [{"eid": "recorder", "type": model, "rel": []}]

    def step(self, time: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Store this step's values."""
        started = perf_counter()
        k = time // self.clock.step_s
        columns = self._columns
        for attrs in inputs.values():
            for attr, sources in attrs.items():
                for src, value in sources.items():
                    column = columns.get((src, attr))
                    if column is None:
                        asset, kind = self.sources[src]
                        column = columns[(src, attr)] = self.buffer.column(asset, kind, attr)
                    column[k] = value
        self.steps_done = k + 1
        STEP_SECONDS["recorder"] = STEP_SECONDS.get("recorder", 0.0) + perf_counter() - started
        return time + self.clock.step_s

    def save(self) -> int:
        """Write the steps recorded so far to Parquet; return the number of rows."""
        ACTIVE_RECORDERS.pop(self.path, None)
        if self.buffer is None:
            return 0
        return self.buffer.write_parquet(self.path, n_steps=self.steps_done)

    def finalize(self) -> None:
        """Write the Parquet file at the end of the simulation."""
        self.save()
