"""Cost of the per-message path and throughput against a bare ``mosquitto_sub``.

``python -m adapters.ingest.bench [--sensors N] [--messages M]`` prints

- the cost per message of decode + map + convert + admit + check + store hand-over +
  place (:meth:`~adapters.ingest.pipeline.Ingestor.receive`, no server) for per-sensor
  JSON messages, and per value for gateway JSON arrays and SenML packs of 100 records;
- the throughput of an ingesting :class:`~adapters.mqtt.link.MqttLink` and of a bare
  ``mosquitto_sub`` subscribed at the same time (QoS 1, persistent sessions) to one
  Mosquitto child broker, while ``mosquitto_pub -l`` publishes ``M`` per-sensor
  messages (QoS 1) as fast as the broker takes them: messages per second from the first
  to the last message each received.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from adapters.ingest.limits import limit_of
from adapters.ingest.mapping import ElementInfo, Mapper, Rule
from adapters.ingest.pipeline import Ingestor
from adapters.ingest.store import RawStore
from adapters.ingest.window import PlantClock, Windows

__all__ = ["main", "micro", "throughput"]

START = 1_466_481_600.0
RULE = {
    "pattern": "field/{asset}/{quantity}",
    "asset": None,
    "quantity": None,
    "unit": None,
    "voltage": None,
    "scale": None,
    "quantities": {"v": {"quantity": "v_pu", "unit": "V", "voltage": "phase"}},
}


def _ingestor(sensors: int, store: RawStore | None, tolerance_s: float = 2.0) -> Ingestor:
    elements = {
        f"bus_{i}": ElementInfo("bus", frozenset({"v_pu"}), 0.4, {"v_pu": (0.5, 1.5)})
        for i in range(sensors)
    }
    rule = Rule.from_spec(SimpleNamespace(**RULE), "mapping[0]")
    clock = PlantClock(START, None, 1.0)
    clock.follow_s = 0.0
    return Ingestor(
        Mapper([rule], {}, elements, limit_of),
        Windows(START, 1, tolerance_s, 60.0, 0.0),
        clock,
        store,
        max_bytes=262_144,
        max_records=10_000,
    )


def _store() -> RawStore:
    """A store that collects lines (its writer is never opened: no server needed)."""
    from adapters.influx.transport import InfluxConfig

    return RawStore(InfluxConfig("http://127.0.0.1:9", flush_interval_s=3600), "bench")


def micro(sensors: int = 1000, seconds: int = 20) -> dict[str, float]:
    """Microseconds per message (per-sensor JSON) and per value (batches of 100)."""
    out: dict[str, float] = {}
    per_sensor = [
        [
            (
                f"field/bus_{i}/v",
                json.dumps({"t": START + k, "v": 230.0 + i % 7, "u": "V"}).encode(),
            )
            for i in range(sensors)
        ]
        for k in range(seconds)
    ]
    for label, store in (("per_message_us", None), ("per_message_stored_us", _store())):
        ingestor = _ingestor(sensors, store)
        began = time.perf_counter()
        for k, messages in enumerate(per_sensor):
            ingestor.clock.follow_s = k + 0.5
            for topic, payload in messages:
                ingestor.receive(topic, payload, 0.0)
            ingestor.readings(k)
        out[label] = (time.perf_counter() - began) / (sensors * seconds) * 1e6
    batches = []
    senml = []
    for k in range(seconds):
        for g in range(0, sensors, 100):
            ids = range(g, min(g + 100, sensors))
            batches.append(
                json.dumps(
                    [{"n": f"bus_{i}/v", "t": START + k, "v": 230.0, "u": "V"} for i in ids]
                ).encode()
            )
            pack = [{"bn": "field/", "bt": START + k, "bu": "V"}]
            pack += [{"n": f"bus_{i}/v", "v": 230.0} for i in ids]
            senml.append(json.dumps(pack).encode())
    for label, topic, payloads in (
        ("json_batch_per_value_us", "field/gw/g", batches),
        ("senml_per_value_us", "field/gw/g/senml", senml),
    ):
        ingestor = _ingestor(sensors, _store())
        began = time.perf_counter()
        per_step = len(payloads) // seconds
        for k in range(seconds):
            ingestor.clock.follow_s = k + 0.5
            for payload in payloads[k * per_step : (k + 1) * per_step]:
                ingestor.receive(topic, payload, 0.0)
            ingestor.readings(k)
        out[label] = (time.perf_counter() - began) / (sensors * seconds) * 1e6
        assert ingestor.counts.accepted == sensors * seconds, ingestor.counts
    return out


def throughput(messages: int = 100_000, sensors: int = 1000) -> dict[str, Any]:
    """Messages per second of the ingest link and of ``mosquitto_sub``, side by side."""
    from adapters.ingest.subscribe import subscribe
    from adapters.mqtt.broker import Mosquitto, Subscriber
    from adapters.mqtt.link import MqttLink

    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        try:
            bare = Subscriber(broker, "field/#", "bench-bare")
            ingestor = _ingestor(sensors, _store(), tolerance_s=1e9)
            ingestor.clock.follow_s = 0.0
            arrivals: list[float] = []
            done = threading.Event()

            def on_message(message: Any) -> None:
                ingestor.on_message(message)
                arrivals.append(time.time())
                if len(arrivals) >= messages:
                    done.set()

            link = MqttLink(broker.url, "bench-ingest", clean_session=False)
            subscribe(link, ["field/#"], on_message, 1, probe=False)
            lines = "".join(
                json.dumps({"t": START + n / sensors, "v": 230.0, "u": "V"}) + "\n"
                for n in range(messages)
            )
            started = time.time()
            # stdin stays open until everything arrived: mosquitto_pub -l stops at EOF
            # without waiting for the messages it still holds
            pub = subprocess.Popen(
                ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", "field/bus_1/v", "-l"],
                stdin=subprocess.PIPE,
            )
            assert pub.stdin is not None
            pub.stdin.write(lines.encode())
            pub.stdin.flush()
            done.wait(600)
            bare.wait_for(messages, "field/", timeout_s=600)
            pub.stdin.close()
            pub.wait(30)
            published_s = time.time() - started
            link.close()
            bare.stop()
            bare_arrivals = [
                a
                for (t, _), a in zip(bare.messages, bare.arrivals, strict=True)
                if t.startswith("field/")
            ]
        finally:
            broker.stop()
    ingest_rate = len(arrivals) / max(arrivals[-1] - arrivals[0], 1e-9)
    bare_rate = len(bare_arrivals) / max(bare_arrivals[-1] - bare_arrivals[0], 1e-9)
    return {
        "messages": messages,
        "wall_s": published_s,
        "ingest_received": len(arrivals),
        "ingest_accepted": ingestor.counts.accepted,
        "ingest_rate_per_s": ingest_rate,
        "mosquitto_sub_received": len(bare_arrivals),
        "mosquitto_sub_rate_per_s": bare_rate,
        "ratio": ingest_rate / bare_rate,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the micro benchmark and the throughput comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--skip-broker", action="store_true")
    args = parser.parse_args(argv)
    for name, value in micro(args.sensors).items():
        print(f"{name}: {value:.2f}")
    if not args.skip_broker:
        for name, value in throughput(args.messages, args.sensors).items():
            print(f"{name}: {value:,.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
