"""Reliable, non-blocking writes of line protocol to InfluxDB (1.x HTTP API or 2.x/3.x).

:class:`InfluxWriter` collects lines into batches (``batch_size`` lines, or whatever is
there after ``flush_interval_s``) and sends them from a background thread, so the run
never waits for the database:

- 1.x: ``POST /write?db=&rp=&precision=s`` with user/password (urllib3);
- 2.x/3.x: influxdb-client's synchronous write API (url, token, org, bucket), which
  serves ``/api/v2/write``; the client's own batching mode, which loses data at exit
  (PITFALLS.md), is not used.

Bodies are gzipped (``gzip``). 5xx answers, timeouts and connection errors are retried
with exponential backoff (``retries``, ``backoff_s`` doubling up to ``backoff_max_s``);
after that the batch goes to an on-disk **spool** (one file per batch), and so does
every later batch until the spool has been replayed, oldest first, so order is kept and
nothing is lost. Replaying a batch twice is harmless: the same measurement, tags and
timestamp overwrite. A 4xx answer (bad credentials, missing database, bad line) is not
retried: it raises :class:`InfluxError` with the server's message at :meth:`open` or
:meth:`close`, and the rejected points are counted as dropped.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import urllib3

__all__ = ["InfluxConfig", "InfluxError", "InfluxWriter", "WriterStats"]

log = logging.getLogger(__name__)


class InfluxError(RuntimeError):
    """The server refused a request (4xx) or could not be reached at start."""


class _Retryable(Exception):
    """A 5xx answer, a timeout or a connection error."""


@dataclass
class InfluxConfig:
    """Where and how to write.

    ``api``: ``v1`` (``db``, ``rp``, ``username``, ``password``) or ``v2`` (``token``,
    ``org``, ``bucket``). ``spool_dir`` holds batches while the server is unreachable.
    """

    url: str
    api: Literal["v1", "v2"] = "v1"
    db: str = "twin"
    rp: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    org: str | None = None
    bucket: str | None = None
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    gzip: bool = True
    retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    timeout_s: float = 10.0
    spool_dir: str | None = None
    create_database: bool = False

    @property
    def target(self) -> str:
        """A readable name of the destination for messages."""
        where = self.db if self.api == "v1" else f"bucket {self.bucket}"
        return f"InfluxDB {self.url} ({where})"


@dataclass
class WriterStats:
    """Counters (points = lines)."""

    points_written: int = 0
    batches_written: int = 0
    retried: int = 0
    points_spooled: int = 0
    points_replayed: int = 0
    points_dropped: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counters and the last errors."""
        return {
            **{k: v for k, v in self.__dict__.items() if k != "errors"},
            "errors": self.errors[-5:],
        }


class _Spool:
    """Batches on disk, replayed oldest first: ``<dir>/<seq>.lp.gz``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = self.files()
        self.next = int(existing[-1].name.split(".")[0]) + 1 if existing else 0
        self.count = len(existing)  # kept in step with put/remove: no listing per batch

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("*.lp.gz"))

    def put(self, body: bytes) -> None:
        path = self.dir / f"{self.next:012d}.lp.gz"
        self.next += 1
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(gzip.compress(body, compresslevel=1))
        tmp.rename(path)  # a crash never leaves half a batch to replay
        self.count += 1

    def remove(self, path: Path) -> None:
        path.unlink()
        self.count -= 1

    def __len__(self) -> int:
        return self.count


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
        spool = Path(config.spool_dir) if config.spool_dir else None
        self._spool = _Spool(spool) if spool else None
        self._http = urllib3.PoolManager(
            maxsize=2, retries=False, timeout=urllib3.Timeout(total=config.timeout_s)
        )
        self._v2 = None
        if config.api == "v2":
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            client = InfluxDBClient(
                url=config.url,
                token=config.token,
                org=config.org,
                enable_gzip=config.gzip,
                timeout=int(config.timeout_s * 1000),
                retries=False,
            )
            self._v2 = (client, client.write_api(write_options=SYNCHRONOUS))

    # --- the calling thread -------------------------------------------------------------
    def open(self) -> InfluxWriter:
        """Check the server and the credentials, start the sender thread.

        Raises
        ------
        InfluxError
            With the server's message on bad credentials or a missing database; if the
            server is unreachable and no spool is configured.
        """
        try:
            self._check()
        except _Retryable as exc:
            if self._spool is None:
                raise InfluxError(f"{self.config.target} unreachable: {exc}") from exc
            log.warning(
                "%s unreachable (%s): spooling to %s", self.config.target, exc, self._spool.dir
            )
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()
        return self

    def write(self, lines: list[str]) -> None:
        """Add lines; full batches go to the sender thread. Never blocks on the server."""
        if not self._lines:
            self._first_line_at = time.monotonic()
        self._lines.extend(lines)
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
        with the same ``spool_dir``).

        Raises
        ------
        InfluxError
            If the server refused a batch (4xx).
        """
        self.flush()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._closing_timed_out = True
        self._http.clear()
        if self._v2 is not None:
            self._v2[1].close()
            self._v2[0].close()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    # --- the sender thread --------------------------------------------------------------
    def _run(self) -> None:
        closing = False
        while True:
            if self._spool is not None and len(self._spool) and not self._replay():
                if closing:
                    return  # the server stays away: the spool keeps the rest
                # the server is still away: park new batches in the spool, keep order
                try:
                    body = self._queue.get(timeout=self.config.backoff_max_s)
                except queue.Empty:
                    continue
                if body is None:
                    closing = True
                    continue
                self._to_spool(body)
                continue
            try:
                body = self._queue.get(timeout=0.5)
            except queue.Empty:
                if closing:
                    return
                continue
            if body is None:
                closing = True
                if self._spool is None or not len(self._spool):
                    return
                continue
            self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        """Send with retries; on failure spool (or count as dropped without a spool)."""
        lines = body.count(b"\n")
        try:
            self._send_with_retries(body)
        except _Retryable as exc:
            if self._spool is not None:
                self._to_spool(body)
            else:
                self.stats.points_dropped += lines
                self.stats.errors.append(str(exc))
                log.error("%s: %d points dropped: %s", self.config.target, lines, exc)
        except InfluxError as exc:
            self.stats.points_dropped += lines
            self.stats.errors.append(str(exc))
            self._fatal = self._fatal or exc
            log.error("%s", exc)

    def _to_spool(self, body: bytes) -> None:
        assert self._spool is not None
        self._spool.put(body)
        self.stats.points_spooled += body.count(b"\n")

    def _replay(self) -> bool:
        """Send spooled batches oldest first; False when the server is still away."""
        assert self._spool is not None
        for path in self._spool.files():
            body = gzip.decompress(path.read_bytes())
            try:
                self._send(body)
            except _Retryable:
                return False
            except InfluxError as exc:
                self.stats.points_dropped += body.count(b"\n")
                self.stats.errors.append(str(exc))
                self._fatal = self._fatal or exc
            else:
                self.stats.points_replayed += body.count(b"\n")
            self._spool.remove(path)
        return True

    def _send_with_retries(self, body: bytes) -> None:
        delay = self.config.backoff_s
        for attempt in range(self.config.retries + 1):
            try:
                self._send(body)
                return
            except _Retryable:
                if attempt == self.config.retries:
                    raise
                self.stats.retried += 1
                time.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)

    # --- HTTP ---------------------------------------------------------------------------
    def _send(self, body: bytes) -> None:
        if self._v2 is not None:
            self._send_v2(body)
        else:
            self._send_v1(body)
        self.stats.points_written += body.count(b"\n")
        self.stats.batches_written += 1

    def _v1_params(self, **extra: str) -> dict[str, str]:
        params = dict(extra)
        if self.config.username:
            params.update(u=self.config.username, p=self.config.password or "")
        return params

    def _request(self, method: str, path: str, params: dict[str, str], **kwargs: Any) -> Any:
        url = f"{self.config.url.rstrip('/')}{path}?{urlencode(params)}"
        try:
            response = self._http.request(method, url, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 500:
            raise _Retryable(f"HTTP {response.status}: {_message(response.data)}")
        if response.status >= 400:
            raise InfluxError(
                f"{self.config.target} refused the request (HTTP {response.status}): "
                f"{_message(response.data)}"
            )
        return response

    def _send_v1(self, body: bytes) -> None:
        params = self._v1_params(db=self.config.db, precision="s")
        if self.config.rp:
            params["rp"] = self.config.rp
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._request("POST", "/write", params, body=body, headers=headers)

    def _send_v2(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        client, write_api = self._v2  # type: ignore[misc]
        try:
            write_api.write(
                bucket=self.config.bucket, org=self.config.org, record=body, write_precision="s"
            )
        except ApiException as exc:
            if exc.status is not None and exc.status < 500:
                raise InfluxError(
                    f"{self.config.target} refused the request (HTTP {exc.status}): "
                    f"{_message(exc.body or b'')}"
                ) from exc
            raise _Retryable(f"HTTP {exc.status}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

    def _check(self) -> None:
        """Credentials and database (1.x), or a ping (2.x)."""
        if self._v2 is not None:
            self._request("GET", "/ping", {})
            return
        response = self._request("GET", "/query", self._v1_params(q="SHOW DATABASES"))
        answer = json.loads(response.data)
        error = answer.get("results", [{}])[0].get("error") or answer.get("error")
        if error:
            raise InfluxError(f"{self.config.target}: {error}")
        series = answer["results"][0].get("series") or [{}]
        databases = {row[0] for row in series[0].get("values", [])}
        if self.config.db not in databases:
            if not self.config.create_database:
                raise InfluxError(
                    f"{self.config.target}: database {self.config.db!r} does not exist "
                    f"(known: {', '.join(sorted(databases)) or 'none'}); create it or set "
                    "create_database: true"
                )
            q = f'CREATE DATABASE "{self.config.db}"'
            self._request("POST", "/query", self._v1_params(q=q))


def _message(data: bytes) -> str:
    """The server's error text (InfluxDB answers ``{"error": "..."}``)."""
    text = data.decode(errors="replace").strip()
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text[:500]
