"""Publishing on the plant clock: each message when its wall time comes.

Plant time ``T`` maps to wall time ``w = wall_start + (T - start) / speed`` (the live
twin's one clock rule). :func:`publish_on_schedule` sleeps until the next message is due,
hands every due message (and its duplicate) to the link, and records the wall time each
was handed over. It never waits for the broker: the link keeps messages in its bounded
outbox while the broker is away and counts what it cannot keep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Outcome", "publish_on_schedule"]

#: Longest single sleep (s): a stop request is noticed within it.
MAX_SLEEP_S = 0.2


@dataclass
class Outcome:
    """What publishing did: per message the wall time handed over and copies accepted."""

    handed_wall: np.ndarray
    accepted: np.ndarray
    started_wall: float
    ended_wall: float
    stopped: bool


def publish_on_schedule(
    due_wall: np.ndarray,
    copies: np.ndarray,
    render: Callable[[int], tuple[str, bytes]],
    publish: Callable[[str, bytes], bool],
    *,
    stop: threading.Event | None = None,
    advance: Callable[[int], None] | None = None,
) -> Outcome:
    """Publish message ``i`` (``copies[i]`` times) at wall time ``due_wall[i]``.

    Parameters
    ----------
    due_wall : numpy.ndarray
        Epoch seconds each message is due.
    copies : numpy.ndarray
        1, or 2 for a duplicate (the same payload right after).
    render : callable
        ``i -> (topic, payload)``.
    publish : callable
        ``(topic, payload) -> accepted`` (the link's publish).
    stop : threading.Event, optional
        Set to end early; messages not yet due are not published.
    advance : callable, optional
        Called with the number of messages just handled (a progress bar).
    """
    n = len(due_wall)
    order = np.argsort(due_wall, kind="stable")
    due_sorted = due_wall[order]
    handed = np.full(n, np.nan)
    accepted = np.zeros(n, dtype=np.int8)
    stop = stop or threading.Event()
    started = time.time()
    i = 0
    while i < n and not stop.is_set():
        now = time.time()
        if due_sorted[i] > now:
            time.sleep(min(due_sorted[i] - now, MAX_SLEEP_S))
            continue
        j = int(np.searchsorted(due_sorted, now, side="right"))
        for m in order[i:j].tolist():
            topic, payload = render(m)
            handed[m] = time.time()
            ok = 0
            for _ in range(int(copies[m])):
                ok += bool(publish(topic, payload))
            accepted[m] = ok
        if advance is not None:
            advance(j - i)
        i = j
    return Outcome(handed, accepted, started, time.time(), i < n)
