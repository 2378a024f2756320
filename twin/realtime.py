"""Real-time pacing: how late each step starts, and one warning instead of one per step.

mosaik paces a run with ``rt_factor`` (wall seconds per simulated second) and warns on
*every* step it considers late (PITFALLS.md). A :class:`LatenessMeter` measures instead:
each simulator reports the simulated time of the step it starts. A step's **lateness** is
how far behind its due wall time (run start + ``rt_factor`` x simulated time) its first
simulator started it: > 0 means the previous step overran and the twin is behind. Its
**span** is how long after that the last simulator started it (the in-step chain of
dependent simulators, e.g. the publisher waits for the models). The run reports
p50/p99/max of both and warns once when the twin first falls behind by more than
``warn_after_s``.

A meter belongs to one run (:class:`twin.runstate.RunState`), which hands it to the
simulators of its world that run in this process (:class:`Paced`); simulators in other
processes do not report. Two runs in one process never share a meter.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np

__all__ = ["MOSAIK_LATE_WARNING", "LatenessMeter", "Paced", "silence_mosaik_late_steps"]

log = logging.getLogger("twin.realtime")

#: Start of the warning mosaik 3.6 issues at every late step (``scheduler.rt_check``).
MOSAIK_LATE_WARNING = "Simulation too slow for real-time"


class LatenessMeter:
    """Per-step lateness of one real-time run.

    Parameters
    ----------
    rt_factor : float
        Wall seconds per simulated second of the run.
    warn_after_s : float
        Warn (once) when a step starts more than this many seconds late.
    """

    def __init__(self, rt_factor: float, warn_after_s: float) -> None:
        self.rt_factor = rt_factor
        self.warn_after_s = warn_after_s
        self.t0 = 0.0  # wall time of simulated second 0, set by the first observed step
        self.lateness_s: dict[int, float] = {}
        self.last_s: dict[int, float] = {}
        self.warned = False

    def observe(self, time_s: int) -> None:
        """A simulator starts its step at simulated second ``time_s``."""
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


class Paced:
    """Mixin of a simulator whose step starts a run's :class:`LatenessMeter` observes.

    The runner sets :attr:`lateness` on the in-process simulators of a real-time run;
    it stays None otherwise (and always in a simulator of another process).
    """

    lateness: LatenessMeter | None = None

    def step_started(self, time_s: int) -> None:
        """Report the start of the step at simulated second ``time_s`` to the run's meter."""
        if self.lateness is not None:
            self.lateness.observe(time_s)


def silence_mosaik_late_steps() -> None:
    """Ignore mosaik's warning per late step in this process (the meter replaces it).

    Python's warning filters are process-wide, and ``warnings.catch_warnings`` is not
    thread-safe: two runs in threads would restore each other's filter lists, and a
    still-running run would see mosaik's warning again (an error where warnings are
    errors). So one filter for exactly that message is added, idempotently, and kept.
    """
    warnings.filterwarnings(
        "ignore", message=MOSAIK_LATE_WARNING, category=UserWarning, module="mosaik"
    )
