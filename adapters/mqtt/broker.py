"""Start a Mosquitto broker with twin's configuration (tests, benchmarks, ``twin broker``).

The broker runs as a child process on a loopback port with its own data directory, so
its persistence file (sessions, subscriptions and queued QoS 1 messages) survives
:meth:`Mosquitto.restart`.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from importlib.resources import files
from pathlib import Path

__all__ = ["Mosquitto", "free_port", "mosquitto_config"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_config(port: int, data_dir: Path) -> str:
    """The shipped ``mosquitto.conf`` filled in for ``port`` and ``data_dir``."""
    template = files("adapters.mqtt").joinpath("mosquitto.conf").read_text()
    return template.format(port=port, data_dir=data_dir, user=getpass.getuser())


class Mosquitto:
    """A Mosquitto child process.

    Parameters
    ----------
    data_dir : Path
        Directory for the configuration, persistence file and log.
    port : int, optional
        Loopback port (default: a free one).
    executable : str
        The ``mosquitto`` binary (Debian package ``mosquitto``).
    """

    def __init__(self, data_dir: Path, port: int | None = None, executable: str = "mosquitto"):
        path = shutil.which(executable) or shutil.which(executable, path="/usr/sbin")
        if path is None:
            raise FileNotFoundError(
                f"{executable!r} not found: install Debian's 'mosquitto' package (make test does)"
            )
        self.executable = path
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = self.data_dir / "mosquitto.conf"
        self.config.write_text(mosquitto_config(self.port, self.data_dir))
        self.log = self.data_dir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        """Start the broker and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with code {self.process.returncode}: "
                    f"{self.log.read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"mosquitto did not listen on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker with SIGTERM: it saves its persistence file first."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
