"""Real-time pacing: how late each step starts, and one warning instead of one per step.

mosaik paces a run with ``rt_factor`` (wall seconds per simulated second) and warns on
*every* step it considers late (PITFALLS.md). :data:`LATENESS` measures instead: each
simulator reports the simulated time of the step it starts. A step's **lateness** is how
far behind its due wall time (run start + ``rt_factor`` x simulated time) its first
simulator started it: > 0 means the previous step overran and the twin is behind. Its
**span** is how long after that the last simulator started it (the in-step chain of
dependent simulators, e.g. the publisher waits for the models). The run reports
p50/p99/max of both and warns once when the twin first falls behind by more than
``warn_after_s``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["LATENESS", "LatenessMeter"]

log = logging.getLogger("twin.realtime")


class LatenessMeter:
    """Per-step lateness of a real-time run (inactive unless :meth:`start` was called)."""

    def __init__(self) -> None:
        self.active = False
        self.rt_factor = 1.0
        self.warn_after_s = 0.0
        self.t0 = 0.0
        self.lateness_s: dict[int, float] = {}
        self.last_s: dict[int, float] = {}
        self.warned = False

    def start(self, rt_factor: float, warn_after_s: float) -> None:
        """Begin measuring; the first observed step sets the wall-clock origin."""
        self.active = True
        self.rt_factor = rt_factor
        self.warn_after_s = warn_after_s
        self.t0 = 0.0
        self.lateness_s = {}
        self.last_s = {}
        self.warned = False

    def stop(self) -> None:
        """Stop measuring."""
        self.active = False

    def observe(self, time_s: int) -> None:
        """A simulator starts its step at simulated second ``time_s``."""
        if not self.active:
            return
        now = time.perf_counter()
        if not self.t0:
            self.t0 = now - self.rt_factor * time_s
        late = now - (self.t0 + self.rt_factor * time_s)
        if time_s not in self.lateness_s:
            self.lateness_s[time_s] = late
        else:
            self.last_s[time_s] = late
            return
        if late > self.warn_after_s and not self.warned:
            self.warned = True
            log.warning(
                "the twin fell behind real time at simulated second %d by %.3f s "
                "(rt_factor %g); further lateness is summarised in run.json",
                time_s,
                late,
                self.rt_factor,
            )

    def summary(self) -> dict[str, float]:
        """p50/p99/max of lateness and span (s); steps later than the warning threshold."""
        values = np.maximum(np.fromiter(self.lateness_s.values(), float), 0.0)
        if values.size == 0:
            return {"steps": 0}
        span = np.array([self.last_s.get(t, late) - late for t, late in self.lateness_s.items()])
        return {
            "steps": int(values.size),
            "rt_factor": self.rt_factor,
            "lateness_p50_s": float(np.percentile(values, 50)),
            "lateness_p99_s": float(np.percentile(values, 99)),
            "lateness_max_s": float(values.max()),
            "span_p50_s": float(np.percentile(span, 50)),
            "span_p99_s": float(np.percentile(span, 99)),
            "span_max_s": float(span.max()),
            "steps_late": int((values > self.warn_after_s).sum()),
            "warn_after_s": self.warn_after_s,
        }

    @contextmanager
    def measuring(self, rt_factor: float, warn_after_s: float) -> Iterator[LatenessMeter]:
        """Measure inside the block and silence mosaik's warning per late step."""
        self.start(rt_factor, warn_after_s)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Simulation too slow for real-time")
                yield self
        finally:
            self.stop()


#: The process-wide meter every in-process simulator reports to.
LATENESS = LatenessMeter()
