"""Start an InfluxDB 1.x server (Debian's ``influxd``) for tests and benchmarks.

It runs as a child process on free loopback ports with its own data directory, so it can
be stopped and restarted mid-run without losing what it stored.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from adapters.mqtt.broker import free_port

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
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
"""


class InfluxServer:
    """An ``influxd`` child process.

    Parameters
    ----------
    data_dir : Path
        Directory for the configuration, meta/data/WAL and the log.
    port : int, optional
        HTTP port on 127.0.0.1 (default: a free one).
    auth : bool
        Require credentials (create the first admin user with :meth:`create_admin`).
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, auth: bool = False) -> None:
        executable = shutil.which("influxd")
        if executable is None:
            raise FileNotFoundError(
                "'influxd' not found: install Debian's 'influxdb' package (make test does)"
            )
        self.executable = executable
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = self.data_dir / "influxdb.conf"
        self.config.write_text(
            CONFIG.format(
                rpc_port=free_port(),
                data_dir=self.data_dir,
                port=self.port,
                auth="true" if auth else "false",
            )
        )
        self.log = self.data_dir / "influxd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> InfluxServer:
        """Start the server and wait until ``/ping`` answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"influxd exited with code {self.process.returncode}: "
                    f"{self.log.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"influxd did not answer on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM; it closes its shards first)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def query(self, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict:
        """Run InfluxQL through ``/query``; returns the decoded JSON answer."""
        import json
        import urllib.parse

        params = {"q": q}
        if db:
            params["db"] = db
        credentials = urllib.parse.urlencode({"u": auth[0], "p": auth[1]}) if auth else ""
        data = urllib.parse.urlencode(params).encode()
        url = f"{self.url}/query?{credentials}"
        with urllib.request.urlopen(url, data=data, timeout=30) as response:
            return json.loads(response.read())

    def create_admin(self, user: str, password: str) -> None:
        """Create the first admin user (possible without credentials on a fresh server)."""
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")

    def __enter__(self) -> InfluxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
