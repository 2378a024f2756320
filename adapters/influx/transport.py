"""HTTP to InfluxDB: configuration, requests, and what each answer means.

:class:`Transport` sends one body of line protocol (1.x ``/write`` with urllib3, or
influxdb-client's ``/api/v2/write``) and maps every failure to one of three kinds:

- :class:`Retryable`: 5xx, timeout, connection error (try again, then spool);
- :class:`Refused`: 401/403/404, i.e. credentials, permissions, database or endpoint
  (the data is fine: keep it for a replay once the cause is fixed);
- :class:`Rejected`: another 4xx, i.e. bad data; ``dropped`` says how many points the
  server did not store (a 1.x server writes the good lines of a batch).

Credentials travel in the ``Authorization`` header (HTTP Basic for a 1.x user, ``Token``
otherwise), never in the URL, and every message is passed through
:meth:`InfluxConfig.redact`. https is verified by default; a TLS failure is final.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import urllib3

from twin.errors import TwinError, did_you_mean

__all__ = ["InfluxConfig", "InfluxError", "Refused", "Rejected", "Retryable", "Transport"]

log = logging.getLogger(__name__)


class InfluxError(TwinError, RuntimeError):
    """The server refused a request, or could not be reached or trusted at start."""


class Refused(InfluxError):
    """401/403/404: credentials, permissions, database or endpoint; the data is fine."""


class Rejected(InfluxError):
    """Another 4xx: bad data. ``dropped``: points the server did not store."""

    def __init__(self, message: str, dropped: int) -> None:
        super().__init__(message)
        self.dropped = dropped


class Retryable(Exception):
    """A 5xx answer, a timeout or a connection error."""


@dataclass
class InfluxConfig:
    """Where and how to write.

    ``api``: ``v1`` (``db``, ``rp``, ``username``, ``password``; or a ``token`` for
    1.8+/2.x compatibility) or ``v2`` (``token``, ``org``, ``bucket``). ``spool_dir``
    holds batches the server could not take. ``verify_tls`` and ``ca_file`` apply to
    https URLs. Secrets are left out of ``repr``.
    """

    url: str
    api: Literal["v1", "v2"] = "v1"
    db: str = "twin"
    rp: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
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
    verify_tls: bool = True
    ca_file: str | None = None

    @property
    def target(self) -> str:
        """A readable name of the destination for messages."""
        where = f"database {self.db!r}" if self.api == "v1" else f"bucket {self.bucket!r}"
        return f"InfluxDB {self.url} ({where})"

    def redact(self, text: str) -> str:
        """``text`` with the password and token replaced by ``***``."""
        for secret in (self.password, self.token):
            if secret:
                text = text.replace(secret, "***")
        return text


class Transport:
    """One server's HTTP session (see the module docstring)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self.http = urllib3.PoolManager(
            maxsize=2,
            retries=False,
            timeout=urllib3.Timeout(total=config.timeout_s),
            **_tls_options(config),
        )
        self.v2 = None
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
                verify_ssl=config.verify_tls,
                ssl_ca_cert=config.ca_file,
            )
            self.v2 = (client, client.write_api(write_options=SYNCHRONOUS))

    def send(self, body: bytes) -> None:
        """Write one body (newline-terminated lines)."""
        if self.v2 is not None:
            self.send_v2(body)
        else:
            self.send_v1(body)

    def close(self) -> None:
        """Release the connections."""
        self.http.clear()
        if self.v2 is not None:
            self.v2[1].close()
            self.v2[0].close()

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header of the configured credentials."""
        if self.config.token and self.config.api == "v1":
            return {"Authorization": f"Token {self.config.token}"}
        if self.config.username:
            auth = f"{self.config.username}:{self.config.password or ''}"
            return dict(urllib3.make_headers(basic_auth=auth))
        return {}

    def request(
        self, method: str, path: str, params: dict[str, str], lines: int = 0, **kwargs: Any
    ) -> Any:
        """One HTTP request; errors mapped to Retryable, Refused, Rejected."""
        url = f"{self.config.url.rstrip('/')}{path}?{urlencode(params)}"
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        try:
            response = self.http.request(method, url, headers=headers, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise self.transport_error(exc) from exc
        if response.status >= 500:
            raise Retryable(f"HTTP {response.status}: {_message(response.data)}")
        if response.status >= 400:
            raise self.refusal(response.status, _message(response.data), lines)
        return response

    def transport_error(self, exc: Exception) -> Exception:
        """A TLS failure is final (:class:`Refused`); anything else is retried."""
        reason = getattr(exc, "reason", None)
        if isinstance(exc, urllib3.exceptions.SSLError) or isinstance(
            reason, urllib3.exceptions.SSLError
        ):
            return Refused(
                self.config.redact(
                    f"{self.config.target}: TLS failed ({reason or exc}); give the CA "
                    "certificate with ca_file (verify_tls: false only for tests)"
                )
            )
        return Retryable(self.config.redact(f"{type(exc).__name__}: {exc}"))

    def refusal(self, status: int, message: str, lines: int) -> InfluxError:
        """A 4xx answer as :class:`Refused` or :class:`Rejected` (``lines``: batch size)."""
        text = self.config.redact(
            f"{self.config.target} refused the request (HTTP {status}): {message}"
        )
        if status in (401, 403, 404):
            return Refused(text)
        return Rejected(text, _dropped(message, lines))

    def send_v1(self, body: bytes) -> None:
        """``POST /write`` (1.x, or 2.x/3.x compatibility)."""
        params = {"db": self.config.db, "precision": "s"}
        if self.config.rp:
            params["rp"] = self.config.rp
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.config.gzip:
            data = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        lines = body.count(b"\n")
        self.request("POST", "/write", params, body=data, headers=headers, lines=lines)

    def send_v2(self, body: bytes) -> None:
        """influxdb-client's synchronous ``/api/v2/write``."""
        from influxdb_client.rest import ApiException

        client, write_api = self.v2  # type: ignore[misc]
        try:
            write_api.write(
                bucket=self.config.bucket, org=self.config.org, record=body, write_precision="s"
            )
        except ApiException as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                message = _message(exc.body or b"")
                raise self.refusal(exc.status, message, body.count(b"\n")) from exc
            raise Retryable(f"HTTP {exc.status}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise self.transport_error(exc) from exc
        except OSError as exc:
            raise Retryable(self.config.redact(f"{type(exc).__name__}: {exc}")) from exc

    def check(self) -> None:
        """Version (``/ping``), then credentials and database (1.x)."""
        ping = self.request("GET", "/ping", {})
        version = ping.headers.get("X-Influxdb-Version", "")
        if self.v2 is not None:
            if re.match(r"^v?1\.[0-7]\.", version):
                raise InfluxError(
                    f"{self.config.target}: the server is InfluxDB {version}, which has no "
                    "/api/v2/write (it came with 1.8): use api: v1 with db (and "
                    "username/password)"
                )
            return
        response = self.request("GET", "/query", {"q": "SHOW DATABASES"})
        answer = json.loads(response.data)
        error = answer.get("results", [{}])[0].get("error") or answer.get("error")
        if error:
            raise InfluxError(self.config.redact(f"{self.config.target}: {error}"))
        series = answer["results"][0].get("series") or [{}]
        databases = sorted(row[0] for row in series[0].get("values", []))
        if self.config.db in databases:
            return
        if not self.config.create_database:
            hint = did_you_mean(self.config.db, databases, lead=True)
            unseen = (
                f" (or user {self.config.username!r} has no access to it)"
                if self.config.username
                else ""
            )
            raise InfluxError(
                f"InfluxDB {self.config.url}: database {self.config.db!r} does not exist"
                f"{unseen}; "
                f"{hint}existing: {', '.join(databases) or 'none'}. Create it "
                f'(CREATE DATABASE "{self.config.db}") or set create_database: true'
            )
        q = f'CREATE DATABASE "{self.config.db}"'
        self.request("POST", "/query", {"q": q})


def _dropped(message: str, lines: int) -> int:
    """Points a 1.x server did not store, from its 400 message.

    ``partial write: ... dropped=N`` (field type conflict, retention policy): N;
    ``partial write: unable to parse ...`` (the good lines were written): one per
    ``unable to parse``; anything else: the whole batch.
    """
    if message.startswith("partial write"):
        found = re.search(r"dropped=(\d+)\s*$", message)
        parse_failures = message.count("unable to parse")
        if found and int(found.group(1)) > 0:
            return min(int(found.group(1)), lines)
        if parse_failures:
            return min(parse_failures, lines)
    return lines


def _tls_options(config: InfluxConfig) -> dict[str, Any]:
    if not config.url.startswith("https://"):
        return {}
    if config.ca_file and not Path(config.ca_file).is_file():
        raise InfluxError(f"{config.target}: ca_file {config.ca_file!r} does not exist")
    if not config.verify_tls:
        log.warning("%s: TLS certificate verification is off", config.target)
        return {"cert_reqs": "CERT_NONE"}
    options: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
    if config.ca_file:
        options["ca_certs"] = config.ca_file
    return options


def _message(data: bytes | str) -> str:
    """The server's error text (InfluxDB answers ``{"error": "..."}``; bytes or str)."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
    text = text.strip()
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text[:500]
