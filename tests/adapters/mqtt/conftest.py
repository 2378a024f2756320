"""A real Mosquitto (Debian package) on a free loopback port, and a real subscriber."""

from __future__ import annotations

import subprocess
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


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def test_ca(tmp_path: Path) -> dict[str, Path]:
    """A throw-away CA (openssl CLI) and certificates it signed: the broker's for
    127.0.0.1 and a client's. Keys are P-256 (fast to make)."""
    d = tmp_path / "pki"
    d.mkdir()
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
             "-days", "2", "-subj", "/CN=twin test CA")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", *key, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                 "-subj", f"/CN=twin test {name}")  # fmt: skip
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / f"{name}.pem"),
                 "-days", "2", "-extfile", str(d / "san.ext"))  # fmt: skip
    return {p.stem if p.suffix == ".pem" else p.name: p for p in d.iterdir()}
