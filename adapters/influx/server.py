"""Start an InfluxDB 1.x server (Debian's ``influxd``) for tests and benchmarks.

It runs as a child process on free loopback ports with its own data directory, so it can
be stopped and restarted mid-run without losing what it stored.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from adapters.server import ChildServer, free_port

__all__ = ["InfluxServer"]

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{data_dir}/meta"
  logging-enabled = false
[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  https-enabled = {https}
  https-certificate = "{certificate}"
  https-private-key = "{key}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
"""


class InfluxServer(ChildServer):
    """An ``influxd`` child process.

    Parameters
    ----------
    data_dir : Path
        Directory for the configuration, meta/data/WAL and the log.
    port : int, optional
        HTTP port on 127.0.0.1 (default: a free one).
    auth : bool
        Require credentials (create the first admin user with :meth:`create_admin`).
    tls : tuple of Path, optional
        (certificate, private key) in PEM: serve https instead of http.
    """

    name = "influxd"
    package = "influxdb"
    start_timeout_s = 30.0
    stop_timeout_s = 15.0

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        auth: bool = False,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(data_dir, port)
        self.tls = tls
        self.config = self.data_dir / "influxdb.conf"
        self.config.write_text(
            CONFIG.format(
                rpc_port=free_port(),
                data_dir=self.data_dir,
                port=self.port,
                auth="true" if auth else "false",
                https="true" if tls else "false",
                certificate=tls[0] if tls else "",
                key=tls[1] if tls else "",
            )
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` with ``tls``)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _open(self, url: str, data: bytes | None = None, timeout: float = 30) -> Any:
        context = None
        if self.tls:  # the test's own certificate: trusted here, verified by the writer
            context = ssl.create_default_context(cafile=str(self.tls[0]))
        return urllib.request.urlopen(url, data=data, timeout=timeout, context=context)

    def command(self) -> list[str]:
        """``influxd -config <config>``."""
        return [self.executable, "-config", str(self.config)]

    def ready(self) -> bool:
        """Whether ``/ping`` answers."""
        try:
            with self._open(f"{self.url}/ping", timeout=0.5):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def query(self, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict:
        """Run InfluxQL through ``/query``; returns the decoded JSON answer."""
        params = {"q": q}
        if db:
            params["db"] = db
        credentials = urllib.parse.urlencode({"u": auth[0], "p": auth[1]}) if auth else ""
        data = urllib.parse.urlencode(params).encode()
        url = f"{self.url}/query?{credentials}"
        with self._open(url, data=data) as response:
            return json.loads(response.read())

    def create_admin(self, user: str, password: str) -> None:
        """Create the first admin user (possible without credentials on a fresh server)."""
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
