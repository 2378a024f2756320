"""The per-message path: decode, map, convert, time, check, store, place.

:meth:`Ingestor.receive` runs in the MQTT network thread for every message (the step
never waits on the network or the database); :meth:`Ingestor.readings` runs in the
simulation step and only closes windows. Both hold one lock for microseconds.

A gateway's plain pack of known sensors is taken as arrays (:mod:`adapters.ingest.packs`,
the same result); otherwise, per value, in this order: bounded and decoded
(:mod:`adapters.ingest.decode`), mapped (:class:`~adapters.ingest.mapping.Mapper`,
cached per key), converted to the twin unit,
admitted (clock skew, duplicates: :mod:`adapters.ingest.window`), checked against its
plausible range (outside: quality 0, flag 1), stored (:mod:`adapters.ingest.store`) and
placed in its window (or counted late). Messages that arrive before the plant clock is
known (before the run's first step without a ``wall_start``) wait and are taken then.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from typing import Any

import orjson

from adapters.ingest.decode import Decoded, decode_data
from adapters.ingest.mapping import Mapper, Sensor
from adapters.ingest.packs import PackPath
from adapters.ingest.stats import IngestCounts
from adapters.ingest.store import RawStore
from adapters.ingest.window import (
    OK,
    SKEWED,
    STALE,
    ClockSkewWarning,
    PlantClock,
    Windows,
    window_arrays,
)

#: A converted value must lie strictly inside (-INF, INF) (finite).
INF = float("inf")

__all__ = ["Ingestor"]

log = logging.getLogger(__name__)

_MISSING = object()

#: Marks the topics of read-access probes (:func:`adapters.ingest.simulator.subscribe`).
PROBE_MARKER = "_ingest_probe/"


class Ingestor:
    """Everything between a received message and a window's readings.

    Parameters
    ----------
    mapper : Mapper
        Sensor keys to sensors.
    windows : Windows
        Admission and placement.
    clock : PlantClock
        Plant time at receipt.
    store : RawStore, optional
        Where accepted values are stored (None: not stored).
    max_bytes, max_records : int
        Payload bounds.
    """

    def __init__(
        self,
        mapper: Mapper,
        windows: Windows,
        clock: PlantClock,
        store: RawStore | None,
        *,
        max_bytes: int,
        max_records: int,
    ) -> None:
        self.mapper = mapper
        self.windows = windows
        self.clock = clock
        self.store = store
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.counts = IngestCounts()
        self.packs = PackPath(mapper, windows, store, self.counts)
        self.lock = threading.Lock()
        self._waiting: list[tuple[str, bytes, float]] = []
        self._warned = 0
        self._logged_unknown = False

    # --- the network thread -------------------------------------------------------------
    def on_message(self, message: Any) -> None:
        """Paho callback: never raises (an error is counted and logged)."""
        topic = message.topic
        if PROBE_MARKER in topic:
            return  # the read-access probe (adapters.ingest.simulator.subscribe)
        try:
            self.receive(topic, message.payload, time.time())
        except Exception:  # noqa: BLE001 - the network thread must live on
            self.counts.callback_errors += 1
            if self.counts.callback_errors == 1:
                log.exception("ingest: unexpected error on %s (counted)", message.topic)

    def receive(self, topic: str, payload: bytes, wall: float) -> None:
        """Take one message received at ``wall`` (epoch s)."""
        with self.lock:
            if not self.clock.known:
                self._waiting.append((topic, payload, wall))
                return
            self._take(topic, payload, wall)

    def _take(self, topic: str, payload: bytes, wall: float) -> None:
        c = self.counts
        c.messages += 1
        now = self.clock.now(wall)
        if len(payload) > self.max_bytes:
            decoded = Decoded([], 0, "too_large")
        else:
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                data = decoded = Decoded([], 1, "malformed")
            else:
                if (
                    data.__class__ is list
                    and 0 < len(data) <= self.max_records
                    and self.packs.take(topic, data, now, wall)
                ):
                    return
                decoded = decode_data(topic, data, now, max_records=self.max_records)
        c.malformed += decoded.malformed
        if decoded.reason == "too_large":
            c.too_large += 1
            return
        records = decoded.records
        c.values += len(records)
        lookup, store = self.mapper.lookup, self.store
        cached = self.mapper.cached
        check, place = self.windows.check, self.windows.place
        points: list[tuple[Sensor, float, float, int]] = []
        keep = points.append
        # per-message tallies, added to the counters once (finally: even on an error)
        known = accepted = stale = skewed = duplicates = late = 0
        try:
            for key, t, value, unit, quality in records:
                sensor = cached(key, _MISSING)
                if sensor is _MISSING:
                    sensor = lookup(key)
                if sensor is None:
                    c.note_unknown(key)
                    continue
                known += 1
                if unit is None or unit == sensor.unit:
                    x = sensor.a * value + sensor.b
                else:
                    factors = sensor.factors(unit)
                    if factors is None:
                        c.bad_unit += 1
                        continue
                    x = factors[0] * value + factors[1]
                if not -INF < x < INF:  # 1e308 MW is inf kW: never stored or estimated
                    c.malformed += 1
                    continue
                if t is None:
                    t = now
                    c.untimed += 1
                verdict = check(sensor.id, t, now)
                if verdict != OK:
                    if verdict == STALE:  # stored (raw history), not estimated
                        stale += 1
                        keep((sensor, t, x, quality))
                    elif verdict == SKEWED:
                        skewed += 1
                    else:
                        duplicates += 1
                    continue
                accepted += 1
                flag = 0
                if not sensor.low <= x <= sensor.high:
                    flag, quality = 1, 0
                    c.implausible += 1
                    flagged = c.implausible_sensors
                    flagged[sensor.key] = flagged.get(sensor.key, 0) + 1
                keep((sensor, t, x, quality))
                if not place(sensor.id, t, x, quality, flag):
                    late += 1
        finally:
            if accepted:
                self.windows.forget(now)  # as admit() would have after each of them
            c.accepted += accepted
            c.stale += stale
            c.skewed += skewed
            c.duplicates += duplicates
            c.late += late
            if store is not None and points:
                store.add_many(points, wall)
                c.submitted += len(points)
        if records and not known:
            c.unknown_messages += 1
            if not self._logged_unknown:
                self._logged_unknown = True
                log.warning(
                    "ingest: no mapping for %s (unknown sensor keys are counted and "
                    "reported in run.json, not logged again)",
                    decoded.records[0][0],
                )

    # --- the simulation thread ----------------------------------------------------------
    def start_clock(self, wall_start: float, speed: float) -> None:
        """Set the plant clock if it is not known; take the messages that waited for it."""
        with self.lock:
            self.clock.set(wall_start, speed)
            self._take_waiting()

    def follow(self, time_s: float) -> None:
        """Plant time follows the simulated time (a run not paced in real time)."""
        with self.lock:
            self.clock.follow_s = time_s
            self._take_waiting()

    def _take_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for topic, payload, wall in waiting:
            self._take(topic, payload, wall)

    def readings(self, time_s: float) -> dict[str, Any]:
        """The readings of the newest window closed on the plant clock (see simulator).

        ``windows`` lists every window closed by this call that has values, oldest
        first (a step may close several), each ``{"t_s", "ids", "t", "values",
        "quality", "flags"}``; the top-level arrays are the newest window's.

        A window closes once its end plus ``late_window_s`` has passed on the plant
        clock (not the step's simulated time: mosaik may start a real-time step early).
        """
        with self.lock:
            clock = self.clock
            now_s = clock.now() - clock.start if clock.known else float(time_s)
            upto = self.windows.due(now_s)
            fresh = upto > self.windows.closed
            closed = self.windows.close(upto)
            self.counts.windows += int(fresh)
            self.counts.delivered += sum(len(arrays["ids"]) for _, arrays in closed)
        self.warn_skew()
        step_s = self.windows.step_s
        newest = closed[-1][1] if closed and closed[-1][0] == upto else window_arrays([])
        return {
            "t_s": upto * step_s,
            **newest,
            "windows": [{"t_s": j * step_s, **arrays} for j, arrays in closed],
        }

    def warn_skew(self) -> None:
        """One :class:`ClockSkewWarning` per sensor whose values were skewed (so far)."""
        offsets = self.windows.skew_offsets
        if len(offsets) == self._warned:
            return
        with self.lock:
            new = list(offsets.items())[self._warned :]
            self._warned = len(offsets)
        sensors = self.mapper.sensors
        tolerance = self.windows.tolerance_s
        for sid, offset in new:
            verdict = (
                "its values are dropped (skewed)"
                if offset > 0
                else "its values are stored but kept out of the estimate (stale: a backlog "
                "or a clock behind)"
            )
            warnings.warn(
                f"sensor {sensors[sid].key!r}: timestamp {offset:+.3f} s off the plant clock "
                f"(tolerance {tolerance:g} s, max delay "
                f"{self.windows.oldest_s - tolerance:g} s): {verdict}",
                ClockSkewWarning,
                stacklevel=2,
            )

    def sensor_table(self) -> list[tuple[str, str, str, float | None]]:
        """``(sensor key, element, quantity, sigma)`` by sensor id.

        ``sigma``: the sensor's standard deviation (twin unit) from the mapping, or None
        (the estimate then weighs it by its sensor class).
        """
        with self.lock:
            return [(s.key, s.element, s.quantity, s.sigma) for s in self.mapper.sensors]
