"""A real Mosquitto (Debian package) on a free loopback port, and a real subscriber."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.mqtt.broker import Mosquitto, Subscriber


@pytest.fixture
def own_broker(tmp_path: Path) -> Mosquitto:
    """A broker of the test's own (it may be stopped and restarted)."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


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
