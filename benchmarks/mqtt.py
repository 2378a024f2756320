"""MQTT telemetry of 1,000 sensors: real time at 1 s, then as fast as possible.

Usage: python -m benchmarks.mqtt [--sensors 1000] [--minutes 2] [--fast-steps 300]

The twin is the demo feeder with ``--sensors`` loads (SimBench profiles), stepped every
second; each load's ``p_kw`` is one published sensor. A separate ``mosquitto_sub`` (C,
persistent QoS 1 session) records every message with its arrival time, so the table
gives what a consumer saw:

- real time (rt-factor 1, ``--minutes``): messages/s sustained, end-to-end latency
  (payload ``sent`` to arrival) p50/p99, step lateness p50/p99/max (how late a step
  starts) and span p99 (from a step's start to its last simulator, the publisher), lost
  messages (per-topic sequence gaps);
- as fast as possible, one message per sensor and step (QoS 1): messages/s, against a
  raw paho loop publishing the same messages with nothing else running (the ceiling,
  measured in the same run);
- as fast as possible, bundled (one message per kind and step): sensor values/s.

Mosquitto runs with twin's shipped configuration on a free loopback port.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from adapters.mqtt.broker import Mosquitto, Subscriber
from adapters.mqtt.link import MqttLink
from benchmarks.run_year import machine
from twin.run import run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[1]


def sensor_scenario(sensors: int, seconds: int, broker: str, bundle: str, site: str):
    """The demo feeder, 1 s steps, ``sensors`` loads cloned from its own 13."""
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    base = validate_scenario(raw).units("load")
    loads = []
    for i in range(sensors):
        template = copy.deepcopy(base[i % len(base)])
        template.update(name=f"s{i:04d}", from_grid=False, p_kw=template["p_kw"] * 13 / sensors)
        template["q_kvar"] = template["q_kvar"] * 13 / sensors
        loads.append(template)
    raw.update(
        name=site,
        start="2016-06-21T12:00:00-04:00",
        duration=f"{seconds}s",
        step="1s",
        controller="none",
        assets={"load": loads},
        mqtt={"broker": broker, "publish": ["load/*/p_kw"], "bundle": bundle},
    )
    return validate_scenario(raw)


def analyse(sub: Subscriber, steps: int) -> dict[str, float]:
    """Latency percentiles and losses (per-topic sequence gaps) of what ``sub`` got."""
    latency = []
    seqs: dict[str, set[int]] = defaultdict(set)
    for (topic, payload), arrived in zip(sub.messages, sub.arrivals, strict=True):
        if topic.startswith("probe/"):
            continue
        body = json.loads(payload)
        latency.append(arrived - body["sent"])
        seqs[topic].add(body["seq"])
    lat = np.array(latency) * 1e3
    return {
        "messages": len(latency),
        "topics": len(seqs),
        "lost": sum(steps - len(s) for s in seqs.values()),
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
    }


def raw_loop(broker: Mosquitto, sensors: int, steps: int) -> float:
    """The ceiling: paho publishing the same QoS 1 messages in a bare loop (msg/s)."""
    link = MqttLink(broker.url, "bench-raw").open()
    payload = json.dumps(
        {
            "ts": "2016-06-21T16:00:00Z",
            "value": 1.234567,
            "unit": "kW",
            "quality": "good",
            "seq": 0,
            "sent": time.time(),
        },
        separators=(",", ":"),
    ).encode()
    topics = [f"raw/site/s{i:04d}/p_kw" for i in range(sensors)]
    started = time.perf_counter()
    for _ in range(steps):
        for topic in topics:
            link.publish(topic, payload)
    link.flush(120)
    elapsed = time.perf_counter() - started
    link.close()
    return sensors * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--fast-steps", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    rows = []
    with Mosquitto(work / "mosquitto") as broker:
        # 1. real time, one message per sensor and second
        seconds = int(args.minutes * 60)
        sc = sensor_scenario(args.sensors, seconds, broker.url, "never", "rt")
        rec = Subscriber(broker, "twin/rt/+/p_kw", "bench-rt")
        result = run_scenario(sc, work / "rt", rt_factor=1.0)
        rec.wait_for(args.sensors * seconds, "twin/", 120.0)
        rec.stop()
        stats = analyse(rec, seconds)
        rt = result.metadata["realtime"]
        rows.append(
            (
                f"real time x1, {seconds} s",
                stats["messages"],
                stats["messages"] / result.metadata["loop_s"],
                stats,
                rt,
            )
        )

        # 2. as fast as possible, unbundled, and the raw paho ceiling
        steps = args.fast_steps
        sc = sensor_scenario(args.sensors, steps, broker.url, "never", "fast")
        rec = Subscriber(broker, "twin/fast/+/p_kw", "bench-fast")
        result = run_scenario(sc, work / "fast")
        rec.wait_for(args.sensors * steps, "twin/", 120.0)
        rec.stop()
        stats = analyse(rec, steps)
        fast_rate = args.sensors * steps / result.metadata["loop_s"]
        rows.append((f"fast, {steps} steps", stats["messages"], fast_rate, stats, None))
        ceiling = raw_loop(broker, args.sensors, steps)

        # 3. as fast as possible, bundled per kind and step
        sc = sensor_scenario(args.sensors, steps, broker.url, "always", "bundled")
        rec = Subscriber(broker, "twin/bundled/bundle/#", "bench-bundled")
        result = run_scenario(sc, work / "bundled")
        rec.wait_for(steps, "twin/", 120.0)
        rec.stop()
        bundles = rec.by_topic("twin/")
        values = sum(len(p["values"]) for payloads in bundles.values() for p in payloads)
        bundles = sum(len(payloads) for payloads in bundles.values())
        bundled_rate = values / result.metadata["loop_s"]

    print(f"machine: {machine()}")
    print(
        f"{'flow':<24}{'msgs':>9}{'msg/s':>10}{'lat p50':>10}{'lat p99':>10}"
        f"{'late p50':>10}{'late p99':>10}{'late max':>10}{'span p99':>10}{'lost':>6}"
    )
    for name, count, rate, stats, rt in rows:
        late = (
            [
                f"{rt[k] * 1e3:>8.1f}ms"
                for k in ("lateness_p50_s", "lateness_p99_s", "lateness_max_s", "span_p99_s")
            ]
            if rt
            else [f"{'-':>10}"] * 4
        )
        print(
            f"{name:<24}{count:>9}{rate:>10.0f}{stats['latency_p50_ms']:>8.1f}ms"
            f"{stats['latency_p99_ms']:>8.1f}ms{''.join(late)}{stats['lost']:>6}"
        )
    print(
        f"raw paho QoS 1 loop (ceiling): {ceiling:,.0f} msg/s; twin fast path reaches "
        f"{fast_rate / ceiling:.2f} of it"
    )
    print(
        f"bundled (1 message per kind and step): {bundled_rate:,.0f} sensor values/s, "
        f"{values} values in {bundles} messages"
    )


if __name__ == "__main__":
    main()
