"""Reliable, non-blocking writes of line protocol to InfluxDB (1.x HTTP API or 2.x/3.x).

:class:`InfluxWriter` collects lines into batches (``batch_size`` lines, or whatever is
there after ``flush_interval_s``) and sends them from a background thread, so the run
never waits for the database:

- 1.x: ``POST /write?db=&rp=&precision=s`` (urllib3), credentials in an HTTP Basic
  ``Authorization`` header (never in the URL, so no error message or log shows them);
- 2.x/3.x: influxdb-client's synchronous write API (url, token, org, bucket), which
  serves ``/api/v2/write``; the client's own batching mode, which loses data at exit
  (PITFALLS.md), is not used. A 1.x server older than 1.8 (no ``/api/v2/write``) is
  refused at :meth:`InfluxWriter.open`.

https is verified by default (``verify_tls``; ``ca_file`` for a private CA).

Bodies are gzipped. 5xx answers, timeouts and connection errors are retried with
exponential backoff (``retries``, ``backoff_s`` doubling up to ``backoff_max_s``);
after that the batch goes to an on-disk **spool** (:mod:`adapters.influx.spool`), and
so does every later batch until the spool has been replayed, oldest first, so order is
kept. A batch the server refuses for reasons outside the data (401/403 credentials,
404 database or endpoint) is spooled too, to be replayed once the cause is fixed
(``twin influx flush``). A 400 (bad line, field type conflict) drops only the points
the server reports as dropped (InfluxDB writes the rest of the batch). Replaying a
batch twice is harmless: the same measurement, tags and timestamp overwrite.

Every point handed to the writer ends in exactly one counter of :class:`WriterStats`
(written, spooled, dropped, unsent, in flight); ``points_unaccounted`` is what none of
them holds and must be 0. An unexpected exception in the sender thread is counted
(``thread_errors``), its batch spooled or counted as dropped, and delivery goes on.
Refusals raise :class:`InfluxError` at :meth:`InfluxWriter.open` or
:meth:`InfluxWriter.close`; the counters say what happened to every point.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from pathlib import Path

from adapters.influx.spool import Spool, lines_in
from adapters.influx.stats import IncompleteWrite, WriterStats, delivery_problems
from adapters.influx.transport import (
    InfluxConfig,
    InfluxError,
    Refused,
    Rejected,
    Retryable,
    Transport,
)

__all__ = [
    "IncompleteWrite",
    "InfluxConfig",
    "InfluxError",
    "InfluxWriter",
    "WriterStats",
    "delivery_problems",
]

log = logging.getLogger(__name__)


class InfluxWriter:
    """Batches lines and writes them in a background thread (see the module docstring)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self.stats = WriterStats()
        self._lines: list[str] = []
        self._chunks: list[bytes] = []
        self._chunk_lines = 0
        self._first_line_at = 0.0
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._fatal: InfluxError | None = None
        self._thread: threading.Thread | None = None
        self._hand: bytes | None = None  # the batch the sender thread holds
        self._settled = 0  # submitted points that reached a final counter
        self._closing = False
        self._finished = False
        self._closing_errors = 0
        self._abandon = threading.Event()
        self._spool = Spool(Path(config.spool_dir)) if config.spool_dir else None
        self._transport = Transport(config)

    # --- the calling thread -------------------------------------------------------------
    def open(self, *, require_server: bool = False) -> InfluxWriter:
        """Check the server, the credentials and the database; start the sender thread.

        An unreachable server is an error without a spool or with ``require_server``;
        otherwise the writer starts spooling.

        Raises
        ------
        InfluxError
            With the server's message on bad credentials or a missing database; if the
            certificate cannot be verified; if the server is unreachable and no spool
            is configured; for ``api: v2`` against a 1.x server older than 1.8.
        """
        try:
            self._transport.check()
        except Retryable as exc:
            if self._spool is None or require_server:
                raise InfluxError(f"{self.config.target} unreachable: {exc}") from exc
            self._record(f"{self.config.target} unreachable at start ({exc}): spooling")
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()
        return self

    def write(self, lines: list[str]) -> None:
        """Add lines; full batches go to the sender thread. Never blocks on the server."""
        if not self._lines:
            self._first_line_at = time.monotonic()
        self._lines.extend(lines)
        self.stats.points_submitted += len(lines)
        size = self.config.batch_size
        while len(self._lines) >= size:
            self._enqueue(self._lines[:size])
            del self._lines[:size]
        if self._lines and time.monotonic() - self._first_line_at > self.config.flush_interval_s:
            self.flush()

    def write_chunk(self, chunk: bytes, lines: int) -> None:
        """Add a ready body chunk (newline-terminated lines); batches hold whole chunks."""
        if not lines:
            return
        if not self._chunks:
            self._first_line_at = time.monotonic()
        self._chunks.append(chunk)
        self._chunk_lines += lines
        self.stats.points_submitted += lines
        if self._chunk_lines >= self.config.batch_size:
            self._flush_chunks()

    def _flush_chunks(self) -> None:
        if self._chunks:
            self._queue.put(b"".join(self._chunks))
            self._chunks, self._chunk_lines = [], 0

    def flush(self) -> None:
        """Hand the partial batch to the sender thread."""
        self._flush_chunks()
        if self._lines:
            self._enqueue(self._lines)
            self._lines = []

    def _enqueue(self, lines: list[str]) -> None:
        self._queue.put(("\n".join(lines) + "\n").encode())

    def close(self, timeout_s: float = 60.0) -> WriterStats:
        """Flush, wait for the sender (and the spool's replay) up to ``timeout_s``.

        What could not be written stays in the spool (and is replayed by the next writer
        with the same ``spool_dir`` or by ``twin influx flush``). If the sender does not
        finish in time, what it has not taken yet goes to the spool (``points_unsent``
        without one) and the batch it holds is counted as ``points_in_flight``.

        Raises
        ------
        InfluxError
            If the server refused a batch or the credentials.
        """
        self.flush()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._abandon.set()
                self.stats.closing_timed_out = True
                hand = self._hand
                self.stats.points_in_flight = hand.count(b"\n") if hand is not None else 0
                self._record(f"{self.config.target}: the writer did not finish in {timeout_s} s")
        self._park_queue()
        self._transport.close()
        if self._spool is not None:
            left = self._spool.pending()
            self.stats.spooled_left, self.stats.spooled_points_left = left.batches, left.points
        s = self.stats
        s.points_unaccounted = (  # 0 unless the writer itself is wrong
            s.points_submitted - self._settled - s.points_unsent - s.points_in_flight
        )
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _park_queue(self) -> None:
        """Move batches nobody will send any more to the spool (or count them unsent)."""
        while True:
            try:
                body = self._queue.get_nowait()
            except queue.Empty:
                return
            if body is None:
                continue
            lines = body.count(b"\n")
            try:
                if self._spool is None:
                    raise OSError("no spool")
                self._spool.put(body)
                self.stats.points_spooled += lines
                self._settled += lines
            except OSError:
                self.stats.points_unsent += lines

    # --- the sender thread --------------------------------------------------------------
    def _run(self) -> None:
        while not self._finished:
            try:
                self._finished = self._cycle()
            except Exception as exc:  # noqa: BLE001 - counted, never kills delivery
                self._unexpected(exc)

    def _take(self, timeout_s: float) -> bytes | None:
        """The next batch, or None (nothing yet, or the end: ``_closing`` is then set)."""
        try:
            body = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if body is None:
            self._closing = True
        self._hand = body
        return body

    def _cycle(self) -> bool:
        """One round of the sender; True when it is done."""
        if self._abandon.is_set():
            return True
        if self._spool is not None and len(self._spool) and not self._replay():
            if self._closing:
                return True  # the server stays away: the spool keeps the rest
            # the server is still away: park new batches in the spool, keep order
            body = self._take(self.config.backoff_max_s)
            if body is not None:
                self._to_spool(body)
            return False
        if self._closing:
            return True
        body = self._take(0.5)
        if body is not None:
            self._deliver(body)
        return False

    def _settle(self, lines: int) -> None:
        self._settled += lines
        self._hand = None

    def _deliver(self, body: bytes) -> None:
        """Send with retries; on failure spool (or count as dropped without a spool)."""
        lines = body.count(b"\n")
        try:
            self._send_with_retries(body)
        except Retryable as exc:
            if self._spool is not None:
                self._to_spool(body)
                return
            self.stats.points_dropped += lines
            self._record(f"{self.config.target}: {lines} points dropped: {exc}")
        except Refused as exc:
            self._fail(exc)
            if self._spool is not None:
                self._to_spool(body)
                return
            self.stats.points_dropped += lines
        except Rejected as exc:
            self._count_rejected(exc, lines, replayed=False)
        self._settle(lines)

    def _to_spool(self, body: bytes) -> None:
        assert self._spool is not None
        self._spool.put(body)
        self.stats.points_spooled += body.count(b"\n")
        self._settle(body.count(b"\n"))

    def _count_rejected(self, exc: Rejected, lines: int, *, replayed: bool) -> None:
        stored = max(0, lines - exc.dropped)
        self.stats.points_written += stored
        if replayed:
            self.stats.points_replayed += stored
        self.stats.points_dropped += lines - stored
        self._fail(exc)

    def _replay(self) -> bool:
        """Send spooled batches oldest first; False when the server does not take them."""
        assert self._spool is not None
        for path in self._spool.files():
            if self._abandon.is_set():
                return False
            try:
                body = self._spool.read(path)
            except (OSError, EOFError, zlib.error) as exc:  # unreadable: set aside, counted
                path.rename(path.with_name(f"{path.name}.bad"))
                self.stats.points_dropped += _lines_or_zero(path)
                self._record(f"spool file {path.name} unreadable ({exc}): moved to *.bad")
                continue
            lines = body.count(b"\n")
            try:
                self._send(body)
            except Retryable:
                return False
            except Refused as exc:
                self._fail(exc)
                return False  # the batch waits for other credentials or a database
            except Rejected as exc:
                self._count_rejected(exc, lines, replayed=True)
            else:
                self.stats.points_replayed += lines
            self._spool.remove(path)
        return True

    def _send_with_retries(self, body: bytes) -> None:
        delay = self.config.backoff_s
        for attempt in range(self.config.retries + 1):
            try:
                self._send(body)
                return
            except Retryable:
                if attempt == self.config.retries or self._abandon.is_set():
                    raise
                self.stats.retried += 1
                time.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)

    def _unexpected(self, exc: Exception) -> None:
        """Count an unexpected error; spool (or drop) the batch in hand; go on."""
        self.stats.thread_errors += 1
        body, self._hand = self._hand, None
        lines = body.count(b"\n") if body is not None else 0
        message = f"{self.config.target}: unexpected {type(exc).__name__} in the writer: {exc}"
        if body is not None:
            try:
                if self._spool is None:
                    raise OSError("no spool")
                self._spool.put(body)
                self.stats.points_spooled += lines
            except OSError:
                self.stats.points_dropped += lines
                message += f" ({lines} points dropped)"
            self._settled += lines
        self._record(message)
        if self._closing:
            self._closing_errors += 1
            if self._closing_errors >= 3:
                self._finished = True  # close() parks or counts what is left
                return
        time.sleep(min(self.config.backoff_s, 1.0))

    def _record(self, message: str) -> None:
        message = self.config.redact(message)
        self.stats.errors.append(message)
        log.error("%s", message)

    def _fail(self, exc: InfluxError) -> None:
        self._record(str(exc))
        self._fatal = self._fatal or exc

    def _send(self, body: bytes) -> None:
        self._transport.send(body)
        self.stats.points_written += body.count(b"\n")
        self.stats.batches_written += 1


def _lines_or_zero(path: Path) -> int:
    try:
        return lines_in(path)
    except (OSError, EOFError, ValueError):
        return 0
