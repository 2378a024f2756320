"""Start a Mosquitto broker with twin's configuration (tests, benchmarks, ``twin broker``).

The broker runs as a child process on a loopback port with its own data directory, so
its persistence file (sessions, subscriptions and queued QoS 1 messages) survives
:meth:`Mosquitto.restart`.
"""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import threading
import time
from importlib.resources import files
from pathlib import Path

from adapters.server import ChildServer

__all__ = ["Mosquitto", "Subscriber", "mosquitto_config"]


def mosquitto_config(port: int, data_dir: Path) -> str:
    """The shipped ``mosquitto.conf`` filled in for ``port`` and ``data_dir``."""
    template = files("adapters.mqtt").joinpath("mosquitto.conf").read_text()
    return template.format(port=port, data_dir=data_dir, user=getpass.getuser())


class Mosquitto(ChildServer):
    """A Mosquitto child process with twin's configuration.

    Parameters
    ----------
    data_dir : Path
        Directory for the configuration, persistence file and log.
    port : int, optional
        Loopback port (default: a free one).
    """

    name = "mosquitto"
    package = "mosquitto"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self.config = self.data_dir / "mosquitto.conf"
        self.config.write_text(mosquitto_config(self.port, self.data_dir))

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """``mosquitto -c <config>``."""
        return [self.executable, "-c", str(self.config)]

    def ready(self) -> bool:
        """Whether the broker accepts TCP connections."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


class Subscriber:
    """``mosquitto_sub`` with a persistent QoS 1 session, recording every message.

    A separate process and client library from the twin's, as an independent check
    (tests) and a consumer that keeps up (benchmarks). ``messages`` holds (topic,
    payload) in arrival order and ``arrivals`` the arrival times (Unix seconds).

    Parameters
    ----------
    broker : Mosquitto
        The broker.
    topic : str
        Topic filter to subscribe to.
    client_id : str
        Session name (kept by the broker while the subscriber is away).
    """

    def __init__(self, broker: Mosquitto, topic: str, client_id: str) -> None:
        self.broker = broker
        self.messages: list[tuple[str, str]] = []
        self.arrivals: list[float] = []
        self.process = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-c",
                "-i",
                client_id,
                "-q",
                "1",
                "-F",
                "%U %t %p",
                "-t",
                topic,
                "-t",
                f"probe/{client_id}",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        probe = f"probe/{client_id}"
        deadline = time.monotonic() + 10
        while not any(t == probe for t, _ in self.messages):  # subscribed once it hears this
            subprocess.run(
                ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", probe, "-m", "x"],
                check=True,
            )
            time.sleep(0.1)
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("mosquitto_sub did not subscribe within 10 s")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            stamp, topic, payload = (line.rstrip("\n").split(" ", 2) + [""])[:3]
            self.messages.append((topic, payload))
            self.arrivals.append(float(stamp))

    def count(self, prefix: str) -> int:
        """Messages so far whose topic starts with ``prefix``."""
        return sum(t.startswith(prefix) for t, _ in self.messages)

    def wait_for(self, count: int, prefix: str, timeout_s: float = 30.0) -> bool:
        """Wait until ``count`` messages under ``prefix`` arrived; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count(prefix) >= count:
                return True
            time.sleep(0.05)
        return False

    def by_topic(self, prefix: str) -> dict[str, list[dict]]:
        """JSON payloads per topic under ``prefix`` (not meta/status), in arrival order."""
        out: dict[str, list[dict]] = {}
        for topic, payload in self.messages:
            if topic.startswith(prefix) and not topic.endswith(("/meta", "/status")):
                out.setdefault(topic, []).append(json.loads(payload))
        return out

    def stop(self) -> None:
        """End the subscriber process."""
        self.process.terminate()
        self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
