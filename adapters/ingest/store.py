"""Raw measurements into InfluxDB on receipt, exactly once; optionally a latency trace.

One point per accepted value, written through an
:class:`~adapters.influx.writer.InfluxWriter` of its own (batches, retries, a disk spool
replayed in order while the server is down): measurement = the element's kind (``bus``,
``line``, ``pv``...), tags ``site``, ``asset``, ``sensor`` (the sensor key) and
``source=real``, fields ``<quantity>`` (twin unit) and ``quality`` (1 good, 0 bad or
implausible; a float like the sink's ``quality``, so one measurement never mixes field
types), timestamp = the payload time in nanoseconds, rounded to the microsecond (a
float epoch time holds no more: the same payload time always gives the same point).
There is no ``run_id`` tag: raw data belongs to the plant, so a re-delivered message
(QoS 1 after a broker restart), a writer's retry or a restarted twin writes the same
point again, which overwrites it.

Points are handed to the writer every ``flush_interval_s`` by a thread of the store, not
at window close, so a value is stored within about that interval plus a round trip.
Only the 1.x write API is used (``precision=ns``).

With ``trace``, a Parquet file gets one row per stored value: ``sensor``, ``t``,
``received_wall`` and ``stored_wall`` (when InfluxDB acknowledged its batch; batches are
acknowledged in the order they were written, spooled ones included).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import orjson

from adapters.influx.lineprotocol import escape_key, line_prefix
from adapters.influx.transport import InfluxConfig, Transport
from adapters.influx.writer import InfluxWriter
from adapters.ingest.mapping import Sensor

__all__ = [
    "RAW_BATCH_LINES",
    "NanosecondTransport",
    "RawStore",
    "RawWriter",
    "float_repr_bytes",
    "float_reprs",
    "pack_template",
]

#: The field between a value and its timestamp, by quality (0 or 1).
_QUALITY = (",quality=0.0 ", ",quality=1.0 ")
#: Where a pack template's quality and timestamp go (no topic or key holds a NUL).
_MARK = "\x00"
_MARK_BYTES = _MARK.encode()


def pack_template(heads: Sequence[str]) -> bytes | None:
    """A ``%`` template (UTF-8) of a pack's lines: each head, its value, a mark.

    None if a head holds the mark.
    """
    if any(_MARK in head for head in heads):
        return None
    return "".join(f"{head.replace('%', '%%')}%s{_MARK}" for head in heads).encode()


def float_reprs(values: Sequence[float]) -> list[str]:
    """``[repr(v) for v in values]`` of finite floats, several times faster.

    orjson writes the same shortest round-trip digits as ``repr`` but positional where
    ``repr`` switches to an exponent below 1e-4 (at 1e16 both write ``1e+16``); a batch
    with an exponent or a leading ``0.0000`` anywhere is given to ``repr`` instead.
    """
    return [r.decode() for r in float_repr_bytes(values)]


def float_repr_bytes(values: Sequence[float]) -> list[bytes]:
    """:func:`float_reprs` as ASCII bytes."""
    text = orjson.dumps(values)
    if text == b"[]":
        return []
    if b"e" in text or b"0.0000" in text:
        return [repr(v).encode() for v in values]
    return text[1:-1].split(b",")


class NanosecondTransport(Transport):
    """The 1.x transport writing with ``precision=ns`` (payload times are not whole s)."""

    def request(
        self, method: str, path: str, params: dict[str, str], lines: int = 0, **kwargs: Any
    ) -> Any:
        """As :meth:`Transport.request`; a ``/write`` is sent with nanosecond precision."""
        if path == "/write":
            params = {**params, "precision": "ns"}
        return super().request(method, path, params, lines, **kwargs)


#: Lines a raw batch may hold: a hand-over's lines go in one request up to this. InfluxDB
#: 1.6 parses a 50,000-line batch for ~30 % less CPU per point than 5,000-line ones
#: (measured: 3.4 vs 4.7 us/point); the hand-over interval bounds the latency anyway.
RAW_BATCH_LINES = 50_000


class RawWriter(InfluxWriter):
    """An :class:`InfluxWriter` at nanosecond precision that notes when batches are stored.

    Batches hold up to ``max(config.batch_size, RAW_BATCH_LINES)`` lines.
    """

    def __init__(self, config: InfluxConfig) -> None:
        config = replace(config, batch_size=max(config.batch_size, RAW_BATCH_LINES))
        super().__init__(config)
        self._transport = NanosecondTransport(config)
        #: (points written so far, wall time) after every acknowledged batch.
        self.acks: list[tuple[int, float]] = []

    def _send(self, body: bytes) -> None:
        super()._send(body)
        self.acks.append((self.stats.points_written, time.time()))


class RawStore:
    """Collects lines from the receiving thread; a thread of its own hands them over.

    Parameters
    ----------
    config : InfluxConfig
        Where to write (its ``flush_interval_s`` is the hand-over interval).
    site : str
        The ``site`` tag.
    trace : bool
        Keep ``(sensor id, t, received wall)`` per value for :meth:`trace_rows`.
    """

    def __init__(self, config: InfluxConfig, site: str, *, trace: bool = False) -> None:
        self.writer = RawWriter(config)
        self.site = site
        self.interval_s = config.flush_interval_s
        self._text: list[bytes] = []  # line protocol (UTF-8), one or more lines per entry
        self._pending = 0  # lines in _text
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.submitted = 0
        self.trace = trace
        self._trace: list[tuple[int, float, float]] = []

    def open(self) -> RawStore:
        """Check the server (spooling if it is down) and start the hand-over thread."""
        self.writer.open()
        self._thread = threading.Thread(target=self._run, name="ingest-store", daemon=True)
        self._thread.start()
        return self

    def head(self, sensor: Sensor) -> str:
        """``measurement,tags <quantity>=`` of a sensor's lines."""
        tags = {"site": self.site, "asset": sensor.element, "sensor": sensor.key, "source": "real"}
        return f"{line_prefix(sensor.kind, tags)} {escape_key(sensor.quantity)}="

    def head_of(self, sensor: Sensor) -> str:
        """:meth:`head` of a sensor, kept on the sensor after the first call."""
        head = sensor.head
        if not head:
            head = sensor.head = self.head(sensor)  # type: ignore[assignment]
        return head

    def add(self, sensor: Sensor, t: float, value: float, quality: int, wall: float) -> None:
        """One point (called by the receiving thread)."""
        self.add_many([(sensor, t, value, quality)], wall)

    def add_many(self, points: list[tuple[Sensor, float, float, int]], wall: float) -> None:
        """The points ``(sensor, t, value, quality)`` of one message, received at ``wall``."""
        sensors, times, values, qualities = zip(*points, strict=True)
        self._add(
            [self.head_of(s) for s in sensors],
            [s.id for s in sensors],
            [f"{round(t * 1e6)}000" for t in times],
            list(times),
            float_reprs(values),
            qualities,
            wall,
        )

    def add_columns(
        self,
        heads: list[str],
        ids: list[int],
        t: np.ndarray,
        t_list: list[float],
        values: np.ndarray,
        quality: np.ndarray,
        wall: float,
        same_t: float | None = None,
    ) -> None:
        """The points of one pack as columns (see :mod:`adapters.ingest.packs`).

        ``t`` and ``t_list`` are the same times (epoch s, below 2**52 microseconds) as
        an array and a list, ``same_t`` their one value when they are all equal; the
        timestamps equal :meth:`add_many`'s (round half even).
        """
        if same_t is not None:
            stamps = [f"{round(same_t * 1e6)}000"] * len(t_list)
        else:
            stamps = [f"{us}000" for us in np.rint(t * 1e6).astype(np.int64).tolist()]
        self._add(heads, ids, stamps, t_list, float_reprs(values.tolist()), quality.tolist(), wall)

    def add_good(
        self, template: bytes, ids: list[int], t_list: list[float], values: list[float], wall: float
    ) -> None:
        """A pack whose values are all good and share one time ``t_list[0]``.

        ``template`` is :func:`pack_template` of the pack's heads: the lines equal
        :meth:`add_columns`'s, formatted in two calls.
        """
        tail = f"{_QUALITY[1]}{round(t_list[0] * 1e6)}000\n".encode()
        text = (template % tuple(float_repr_bytes(values))).replace(_MARK_BYTES, tail)
        self._append(text, len(ids), ids, t_list, wall)

    def _add(
        self,
        heads: list[str],
        ids: list[int],
        stamps: list[str],
        times: list[float],
        reprs: list[str],
        qualities: Sequence[int],
        wall: float,
    ) -> None:
        text = "".join(
            [
                f"{head}{value}{_QUALITY[quality]}{stamp}\n"
                for head, value, quality, stamp in zip(heads, reprs, qualities, stamps, strict=True)
            ]
        )
        self._append(text.encode(), len(heads), ids, times, wall)

    def _append(
        self, text: bytes, lines: int, ids: list[int], times: list[float], wall: float
    ) -> None:
        with self._lock:
            self._text.append(text)
            self._pending += lines
            if self.trace:
                self._trace += [(i, t, wall) for i, t in zip(ids, times, strict=True)]

    def pending_text(self) -> str:
        """The lines not handed to the writer yet."""
        with self._lock:
            return b"".join(self._text).decode()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            text, self._text = self._text, []
            lines, self._pending = self._pending, 0
        if lines:
            self.submitted += lines
            self.writer.write_chunk(b"".join(text), lines)
        self.writer.flush()

    def close(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Hand over the rest, wait for the writer; the writer's counters.

        The writer's refusals (credentials, database) are recorded, never raised.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._hand_over()
        error = None
        try:
            self.writer.close(timeout_s)
        except Exception as exc:  # noqa: BLE001 - counted in the run's metadata
            error = str(exc)
        stats = self.writer.stats.as_dict()
        if error:
            stats["error"] = error
        return stats

    def trace_rows(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The trace as columns (``stored_wall`` NaN for values not yet stored)."""
        n = len(self._trace)
        ids = np.array([r[0] for r in self._trace], dtype=np.int64)
        written = np.array([a[0] for a in self.writer.acks], dtype=np.int64)
        walls = np.array([a[1] for a in self.writer.acks], dtype=float)
        at = np.searchsorted(written, np.arange(1, n + 1), side="left")
        stored = np.full(n, np.nan)
        ok = at < len(walls)
        stored[ok] = walls[at[ok]]
        return {
            "sensor": np.array(keys, dtype=object)[ids] if n else np.array([], dtype=object),
            "t": np.array([r[1] for r in self._trace], dtype=float),
            "received_wall": np.array([r[2] for r in self._trace], dtype=float),
            "stored_wall": stored,
        }
