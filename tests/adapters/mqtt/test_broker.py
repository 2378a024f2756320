"""The test and benchmark subscriber: a real ``mosquitto_sub``, read in a thread or a file."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from adapters.mqtt.broker import Mosquitto, Subscriber


def _publish(broker: Mosquitto, topic: str, payload: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic, "-m", payload],
        check=True,
    )


def test_a_file_subscriber_records_what_a_piped_one_does(own_broker, tmp_path: Path):
    out = tmp_path / "bare.txt"
    piped = Subscriber(own_broker, "bench/#", "t-piped")
    filed = Subscriber(own_broker, "bench/#", "t-filed", out)
    try:
        sent = [(f"bench/s{i}", f'[{{"n":"s{i}","v":{i} }}] with spaces') for i in range(5)]
        for topic, payload in sent:
            _publish(own_broker, topic, payload)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            piped.count("bench/") < 5 or sum(t.startswith("bench/") for t, _ in filed.refresh()) < 5
        ):
            time.sleep(0.05)
    finally:
        piped.stop()
        filed.stop()
    got = [m for m in filed.messages if m[0].startswith("bench/")]
    assert got == sent
    assert got == [m for m in piped.messages if m[0].startswith("bench/")]
    assert len(filed.arrivals) == len(filed.messages)
    assert out.read_text().count("\n") == len(filed.messages)  # read back from the file
