"""A real Mosquitto (Debian package) on a free loopback port, and a real subscriber."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from adapters.mqtt.broker import Mosquitto


@pytest.fixture
def own_broker(tmp_path: Path) -> Mosquitto:
    """A broker of the test's own (it may be stopped and restarted)."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


class Subscriber:
    """``mosquitto_sub`` with a persistent session (QoS 1), collecting every message."""

    def __init__(self, broker: Mosquitto, topic: str, client_id: str) -> None:
        self.messages: list[tuple[str, str]] = []
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
                "-v",
                "-t",
                topic,
                "-t",
                f"probe/{client_id}",
            ],
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
            assert time.monotonic() < deadline, "mosquitto_sub did not subscribe"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            self.messages.append((topic, payload))

    def wait_for(self, count: int, prefix: str, timeout_s: float = 30.0) -> None:
        """Until ``count`` messages under ``prefix`` arrived (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(t.startswith(prefix) for t, _ in self.messages) >= count:
                return
            time.sleep(0.05)

    def by_topic(self, prefix: str) -> dict[str, list[dict[str, Any]]]:
        """JSON payloads per topic under ``prefix``, in arrival order."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for topic, payload in self.messages:
            if topic.startswith(prefix) and not topic.endswith(("/meta", "/status")):
                out[topic].append(json.loads(payload))
        return out

    def stop(self) -> None:
        """End the subscriber process."""
        self.process.terminate()
        self.process.wait(5)
        self._reader.join(5)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def subscriber_factory():
    """Make subscribers; they are stopped after the test."""
    made: list[Subscriber] = []

    def make(broker: Mosquitto, topic: str, client_id: str = "test-sub") -> Subscriber:
        sub = Subscriber(broker, topic, client_id)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.stop()
