"""Timing of values: clock skew, duplicates, and placement into step windows.

A value stamped ``t`` (plant time, epoch s) belongs to window ``j = floor((t - start) /
step)``. At receipt, with the plant clock ``now`` (:class:`PlantClock`):

- ``t - now > clock_tolerance_s`` (stamped in the future) or ``now - t >
  clock_tolerance_s + max_delay_s`` (older than any delivery delay explains): the
  sender's clock is off; the value is dropped (``skewed``) and a
  :class:`ClockSkewWarning` names the sensor and the offset, once per sensor;
- a value whose ``(sensor, t)`` was seen before is a duplicate (QoS 1 re-delivery, a
  gateway's repeat) and dropped (``duplicates``); the memory of seen pairs spans the
  accepted age, so nothing older can slip through;
- otherwise it is placed in its window; a window closes at the first step after its end
  plus ``late_window_s`` on the plant clock, and a value for a closed window is
  ``late``: stored, but not given to the estimate. Within a window a sensor's latest
  sample (by ``t``) counts (of equal ``t``, the one that came last).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np

__all__ = ["ClockSkewWarning", "PlantClock", "Windows"]

#: admit() verdicts.
OK, SKEWED, DUPLICATE, STALE = 0, 1, 2, 3


class ClockSkewWarning(UserWarning):
    """A sensor's timestamps are further from the plant clock than the tolerance."""


class PlantClock:
    """Plant time from wall time: ``start + (wall - wall_start) * speed`` (epoch s).

    Without a ``wall_start`` the clock is not set until :meth:`set` (the run's first
    step); ``follow`` (a run not paced in real time) makes plant time the simulated
    time of the latest step instead.
    """

    def __init__(self, start: float, wall_start: float | None, speed: float) -> None:
        self.start = start
        self.wall_start = wall_start
        self.speed = speed
        self.follow_s: float | None = None

    @property
    def known(self) -> bool:
        """Whether plant time can be told."""
        return self.wall_start is not None or self.follow_s is not None

    def set(self, wall_start: float, speed: float) -> None:
        """Start the clock (when the section gave no ``wall_start``)."""
        if self.wall_start is None:
            self.wall_start, self.speed = wall_start, speed

    def now(self, wall: float | None = None) -> float:
        """Plant time at ``wall`` (default: now)."""
        if self.wall_start is None:
            assert self.follow_s is not None
            return self.start + self.follow_s
        return self.start + ((time.time() if wall is None else wall) - self.wall_start) * self.speed


class Windows:
    """Admission (skew, duplicates) and placement of values into step windows.

    Parameters
    ----------
    start : float
        Plant time (epoch s) of the scenario's first step.
    step_s : float
        Window length (the scenario's step).
    tolerance_s, max_delay_s, late_window_s : float
        See the module docstring.
    """

    def __init__(
        self,
        start: float,
        step_s: float,
        tolerance_s: float,
        max_delay_s: float,
        late_window_s: float,
    ) -> None:
        self.start = start
        self.step_s = float(step_s)
        self.tolerance_s = tolerance_s
        self.oldest_s = tolerance_s + max_delay_s
        self.late_window_s = late_window_s
        self.closed = -1  # windows up to this index are closed
        #: per open window, its values ``(sid, t, value, quality, flag)`` as they came
        self.open: dict[int, list[tuple[int, float, float, int, int] | Pack]] = {}
        self._seen: set[tuple[int, float]] = set()
        self._order: deque[tuple[int, float]] = deque()  # the seen pairs, oldest first
        # Packs admitted whole at one time are remembered as (layout, t), not per sensor:
        # a pair (sid, t) is seen if it is in _seen or (layout, t) is for a layout of sid.
        self._pack_seen: set[tuple[int, float]] = set()
        self._pack_order: deque[tuple[int, float]] = deque()
        self._layouts_of: dict[int, list[int]] = {}  # sid -> layouts holding it
        self._layout_sids: list[list[int]] = []  # layout -> its sids
        self._overlaps: list[list[int]] = []  # layout -> other layouts sharing a sid
        self._single: set[int] = set()  # sids with pairs in _seen
        self.skew_offsets: dict[int, float] = {}  # first offset per sensor (the warning)

    def admit(self, sid: int, t: float, now: float) -> int:
        """OK, SKEWED, DUPLICATE or STALE for sensor ``sid``'s value stamped ``t``.

        SKEWED: stamped more than the tolerance ahead of the plant clock (or no time):
        dropped. STALE: older than tolerance + max delay: a backlog (a twin restarted, a
        broker down for long) or a clock behind; stored, but kept out of the windows
        (duplicates that old are no longer remembered: re-storing one rewrites its own
        point). Both are warned about once per sensor.
        """
        verdict = self.check(sid, t, now)
        if verdict == OK:
            self.forget(now)
        return verdict

    def check(self, sid: int, t: float, now: float) -> int:
        """:meth:`admit` without forgetting old pairs: call :meth:`forget` after a batch.

        The verdicts of a batch at one ``now`` are the same either way: a pair older
        than the accepted age is STALE before it is looked up.
        """
        offset = t - now
        if offset > self.tolerance_s or offset != offset:
            if sid not in self.skew_offsets:
                self.skew_offsets[sid] = offset
            return SKEWED
        if -offset > self.oldest_s:
            if sid not in self.skew_offsets:
                self.skew_offsets[sid] = offset
            return STALE
        key = (sid, t)
        seen = self._seen
        if key in seen:
            return DUPLICATE
        layouts = self._layouts_of.get(sid)
        if layouts is not None and any((lid, t) in self._pack_seen for lid in layouts):
            return DUPLICATE
        seen.add(key)
        self._order.append(key)
        self._single.add(sid)
        return OK

    def add_layout(self, sids: list[int]) -> int:
        """Register a pack layout (its sensor ids); its number for :meth:`new_pack`."""
        lid = len(self._layout_sids)
        others = sorted({o for sid in sids for o in self._layouts_of.get(sid, ())})
        for other in others:
            self._overlaps[other].append(lid)
        self._layout_sids.append(list(sids))
        self._overlaps.append(others)
        for sid in sids:
            self._layouts_of.setdefault(sid, []).append(lid)
        return lid

    def new_pack(self, lid: int, t: float) -> bool:
        """Remember a pack of layout ``lid`` whose values all have time ``t``.

        False, and nothing remembered, if any of its pairs was seen before.
        """
        pack_seen = self._pack_seen
        if (lid, t) in pack_seen or any((o, t) in pack_seen for o in self._overlaps[lid]):
            return False
        sids = self._layout_sids[lid]
        if not self._single.isdisjoint(sids) and not self._seen.isdisjoint(
            [(sid, t) for sid in sids]
        ):
            return False
        pack_seen.add((lid, t))
        self._pack_order.append((lid, t))
        return True

    def new_pairs(self, pairs: list[tuple[int, float]]) -> bool:
        """Remember ``(sid, t)`` pairs admitted together.

        False, and nothing remembered, if any was seen before (the caller then admits
        them one by one).
        """
        seen = self._seen
        if not seen.isdisjoint(pairs):
            return False
        pack_seen = self._pack_seen
        if pack_seen:
            layouts_of = self._layouts_of
            for sid, t in pairs:
                if any((lid, t) in pack_seen for lid in layouts_of.get(sid, ())):
                    return False
        seen.update(pairs)
        self._order.extend(pairs)
        self._single.update(sid for sid, _ in pairs)
        return True

    def forget(self, now: float) -> None:
        """Forget the oldest seen pairs and packs up to the first within the accepted age.

        An older value is stale before it is looked up, so what is forgotten is never
        asked for again.
        """
        horizon = now - self.oldest_s
        for order, seen in ((self._order, self._seen), (self._pack_order, self._pack_seen)):
            while order and order[0][1] < horizon:
                seen.discard(order.popleft())

    def remembered(self, now: float) -> set[tuple[int, float]]:
        """The pairs ``(sid, t)`` remembered within the accepted age at ``now``."""
        horizon = now - self.oldest_s
        pairs = {p for p in self._seen if p[1] >= horizon}
        for lid, t in self._pack_seen:
            if t >= horizon:
                pairs.update((sid, t) for sid in self._layout_sids[lid])
        return pairs

    def index(self, t: float) -> int:
        """The window of plant time ``t``."""
        return math.floor((t - self.start) / self.step_s)

    def place(self, sid: int, t: float, value: float, quality: int, flag: int) -> bool:
        """Put a value into its window; False (late) when that window is closed."""
        j = math.floor((t - self.start) / self.step_s)
        if j <= self.closed:
            return False
        rows = self.open.get(j)
        if rows is None:
            rows = self.open[j] = []
        rows.append((sid, t, value, quality, flag))
        return True

    def place_many(
        self,
        ids: np.ndarray,
        t: np.ndarray,
        values: np.ndarray,
        quality: np.ndarray,
        flags: np.ndarray,
        t_range: tuple[float, float],
    ) -> int:
        """:meth:`place` each value of a pack (as arrays); the number of late ones.

        ``t_range`` is the smallest and the largest of ``t``.
        """
        first, last = (math.floor((x - self.start) / self.step_s) for x in t_range)
        if first == last:  # the usual pack: one window
            groups: list[tuple[int, Any]] = [(first, slice(None))]
        else:
            js = np.floor((t - self.start) / self.step_s)
            groups = [(int(j), js == j) for j in np.unique(js)]
        late = 0
        for j, part in groups:
            if j <= self.closed:
                late += len(ids[part])
                continue
            window = self.open.get(j)
            if window is None:
                window = self.open[j] = []
            window.append(Pack(ids[part], t[part], values[part], quality[part], flags[part]))
        return late

    def due(self, now_s: float) -> int:
        """The newest window closed at ``now_s`` (plant seconds since the start)."""
        return math.floor((now_s - self.late_window_s) / self.step_s) - 1

    def close(self, upto: int) -> list[tuple[int, dict[str, np.ndarray]]]:
        """Close every window up to ``upto``; return each one's values, oldest first.

        A window's values are arrays ``ids``, ``t``, ``values``, ``quality``, ``flags``
        (ordered by sensor id). Windows without a value are left out; when a step
        passes over several windows (a step longer than the window, or a real-time
        step that starts early) each of them is returned: none is dropped.
        """
        closed = []
        for j in sorted(k for k in self.open if k <= upto):
            closed.append((j, window_arrays(self.open.pop(j))))
        self.closed = max(self.closed, upto)
        return closed


class Pack:
    """Values placed together (a pack): ``ids``, ``t``, ``values``, ``quality``, ``flags``."""

    __slots__ = ("arrays",)

    def __init__(self, *arrays: np.ndarray) -> None:
        self.arrays = arrays


_DTYPES = (np.int64, float, float, np.int64, np.int64)


def _columns(rows: list[tuple[int, float, float, int, int]]) -> tuple[np.ndarray, ...]:
    return tuple(
        np.array(c, dtype=d) for c, d in zip(zip(*rows, strict=True), _DTYPES, strict=True)
    )


def window_arrays(
    entries: list[tuple[int, float, float, int, int] | Pack],
) -> dict[str, np.ndarray]:
    """One window's values (rows and packs as they came) as arrays ordered by sensor id.

    Within a window a sensor's latest sample by ``t`` counts; of samples with the same
    ``t`` the one that came last.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    rows: list[tuple[int, float, float, int, int]] = []
    for entry in entries:
        if entry.__class__ is Pack:
            if rows:
                parts.append(_columns(rows))
                rows = []
            parts.append(entry.arrays)  # type: ignore[union-attr]
        else:
            rows.append(entry)  # type: ignore[arg-type]
    if rows or not parts:
        parts.append(_columns(rows) if rows else tuple(np.array([], dtype=d) for d in _DTYPES))
    ids, times, values, quality, flags = (
        np.concatenate([p[k] for p in parts]).astype(d, copy=False) for k, d in enumerate(_DTYPES)
    )
    order = np.lexsort((np.arange(len(ids)), times, ids))  # by id, then t, then arrival
    ordered = ids[order]
    last = order[np.r_[ordered[1:] != ordered[:-1], True]] if len(ids) else order
    return {
        "ids": ids[last],
        "t": times[last],
        "values": values[last],
        "quality": quality[last],
        "flags": flags[last],
    }
