"""A server run as a child process on loopback: Mosquitto and influxd share this.

:class:`ChildServer` starts the executable with its configuration, waits until
:meth:`ChildServer.ready` says it serves (failing with the tail of its log if it exits
first), stops it with SIGTERM (so it saves its state) and restarts it on the same port
and data directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

__all__ = ["ChildServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildServer:
    """Base of a server child process (see the module docstring).

    Subclasses set ``name`` and ``package`` (the Debian package that brings it), write
    their configuration in ``__init__`` and implement :meth:`command` and :meth:`ready`.
    """

    name = "server"
    package = "server"
    start_timeout_s = 10.0
    stop_timeout_s = 10.0

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        path = shutil.which(self.name) or shutil.which(self.name, path="/usr/sbin")
        if path is None:
            raise FileNotFoundError(
                f"{self.name!r} not found: install Debian's {self.package!r} package "
                "(make test does)"
            )
        self.executable = path
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.data_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers on its port."""
        raise NotImplementedError

    def start(self, timeout_s: float | None = None) -> Self:
        """Start the server and wait until it is ready."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        limit = timeout_s or self.start_timeout_s
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode}: "
                    f"{self.log.read_text()[-2000:]}"
                )
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer on port {self.port} within {limit} s")

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop with SIGTERM (the server saves its state first), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s or self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
