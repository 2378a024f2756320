"""Cost of the per-message path and throughput against a bare ``mosquitto_sub``.

``python -m benchmarks.ingest [--sensors N] [--messages M]`` prints

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

__all__ = ["live", "main", "micro", "throughput"]

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


#: Messages per second one publishing process (paho, QoS 1) is asked to send.
PUBLISHER_RATE = 2500


def _publish(
    url: str, client_id: str, ids: range, seconds: int, go: Any, wall: Any, batch: int
) -> None:
    """A publishing process: sensors ``ids``, one sample each per second from ``wall``.

    Per-sensor messages (``batch`` 1) or gateway JSON arrays of ``batch`` records.
    """
    from adapters.mqtt.link import MqttLink

    link = MqttLink(url, client_id, buffer_max=1_000_000)
    link.open()
    go.wait(600)
    keys = [f"bus_{1 + i % 10}/v-{i}" for i in ids]
    for k in range(seconds):
        time.sleep(max(0.0, wall.value + k + 0.05 - time.time()))
        t = START + k + 0.05
        if batch == 1:
            payload = json.dumps({"t": t, "v": 230.0, "u": "V"}).encode()
            for key in keys:
                link.publish(f"field/{key}", payload)
            continue
        for g in range(0, len(keys), batch):
            records = [{"n": key, "t": t, "v": 230.0, "u": "V"} for key in keys[g : g + batch]]
            link.publish(f"field/gw/{client_id}-{g}", json.dumps(records).encode())
    link.flush(120)
    link.close()


def live(sensors: int = 1000, seconds: int = 60, batch: int = 1) -> dict[str, Any]:
    """A real-time run (1 s steps) ingesting ``sensors`` per-sensor messages per second.

    Mosquitto and InfluxDB 1.x child servers; paho publishing processes (up to
    :data:`PUBLISHER_RATE` messages/s each) start with the twin's
    first step (the same plant clock). Returns the publish -> stored latency (the
    trace's ``stored_wall`` minus the sample's due wall time) and the step lateness.
    """
    import numpy as np
    import pandas as pd
    import yaml

    from adapters.influx.server import InfluxServer
    from adapters.ingest.component import IngestComponent
    from adapters.ingest.simulator import IngestSimulator
    from adapters.mqtt.broker import Mosquitto
    from twin.component import register_component
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    register_component(IngestComponent)  # also where the entry point is not installed yet
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        influx = InfluxServer(Path(tmp) / "influx").start()
        try:
            raw = yaml.safe_load((root / "scenarios" / "microgrid_day.yaml").read_text())
            raw.update(duration=f"{seconds + 5}s", step="1s")
            raw["ingest"] = {
                "broker": broker.url,
                "mapping": [{**RULE, "pattern": "field/{asset}/{quantity}-{n}"}],
                "influx": {"url": influx.url, "db": "plant", "create_database": True},
                "trace": str(Path(tmp) / "trace.parquet"),
            }
            raw["ingest"]["mapping"][0] = {
                k: v for k, v in raw["ingest"]["mapping"][0].items() if v is not None
            }
            scenario = validate_scenario(raw)
            import multiprocessing

            context = multiprocessing.get_context("fork")  # before any thread of ours
            wall = context.Value("d", 0.0)
            go = context.Event()
            rate = PUBLISHER_RATE * batch  # values/s of one process
            share = max(1, -(-sensors // rate))
            publishers = [
                context.Process(
                    target=_publish,
                    args=(
                        broker.url,
                        f"bench-plant-{p}",
                        range(p, sensors, share),
                        seconds,
                        go,
                        wall,
                        batch,
                    ),
                    daemon=True,
                )
                for p in range(share)
            ]
            for process in publishers:
                process.start()
            clock: dict[str, float] = {}

            step = IngestSimulator.step

            def hooked(self: Any, time_s: int, inputs: Any, max_advance: int) -> int:
                if time_s == 0:
                    clock["wall"] = wall.value = time.time()
                    go.set()
                return step(self, time_s, inputs, max_advance)

            IngestSimulator.step = hooked  # type: ignore[method-assign]
            try:
                result = run_scenario(scenario, Path(tmp) / "run", progress=False, rt_factor=1.0)
            finally:
                IngestSimulator.step = step  # type: ignore[method-assign]
            for process in publishers:
                process.join(120)
            trace = pd.read_parquet(Path(tmp) / "trace.parquet")
        finally:
            influx.stop()
            broker.stop()
    due = clock["wall"] + (trace["t"].to_numpy() - START)
    latency = trace["stored_wall"].to_numpy() - due
    stats = result.metadata["ingest"]
    rt = result.metadata.get("realtime", {})
    return {
        "values": len(trace),
        "accepted": stats["accepted"],
        "points_written": stats["store"]["points_written"],
        "late": stats["late"],
        "delivered": stats["delivered"],
        "latency_p50_s": float(np.nanpercentile(latency, 50)),
        "latency_p99_s": float(np.nanpercentile(latency, 99)),
        "latency_max_s": float(np.nanmax(latency)),
        "lateness_p99_s": rt.get("lateness_p99_s"),
        "lateness_max_s": rt.get("lateness_max_s"),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the micro benchmark and the throughput comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--live", type=int, default=0, help="seconds of a real-time run")
    parser.add_argument("--batch", type=int, default=1, help="records per message (--live)")
    args = parser.parse_args(argv)
    if args.live:
        for name, value in live(args.sensors, args.live, args.batch).items():
            print(f"{name}: {value}")
        return
    for name, value in micro(args.sensors).items():
        print(f"{name}: {value:.2f}")
    if not args.skip_broker:
        for name, value in throughput(args.messages, args.sensors).items():
            print(f"{name}: {value:,.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
