"""Replay controller: battery setpoints played back from a CSV file.

For replays of recorded dispatch and for tests that drive the physics with a known
action sequence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock
from models.profiles import csv_series_means
from twin.control.base import SITE_NET, BatteryController

__all__ = ["ScheduleController"]


class ScheduleController(BatteryController):
    """Setpoints from a CSV file.

    ``control.schedule_csv`` has a ``time`` column and one column per battery (by name)
    in kW, > 0 discharge, each value held until the next row.
    """

    inputs = {"p_kw": SITE_NET}  # measures nothing it needs: setpoints are fixed

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        path = self.control["schedule_csv"]
        self._p_set = np.column_stack([csv_series_means(path, u["name"], clock) for u in units])

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The scheduled setpoints of this step."""
        return {"p_set_kw": self._p_set[self.clock.index_of(now)].copy()}
