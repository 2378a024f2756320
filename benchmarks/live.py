"""The live twin at plant scale: field sensors in over MQTT, estimated, stored in InfluxDB.

Usage: python -m benchmarks.live [--sizes 1000,5000] [--minutes 10] [--no-restarts]

For each size the field emulator (``twin field``, a separate process) publishes the
plant of ``scenarios/field_plant.yaml`` (SimBench 1-MV-urban--0-sw, 133 PV plants, 2
batteries, 139 loads) at 1 s, in real time, as SenML packs per gateway: ~1,000 sensors
are its bus voltages and line flows (``--groups bus,line``), ~5,000 every sensor three
times (``--redundancy 3``). One sensor gets a 10-sigma bias from minute 2 on. The twin
(``twin run --realtime``, another process) runs the same plant with ``ingest`` (raw
values to InfluxDB, ``source=real``) and ``estimation`` sections. A bare
``mosquitto_sub`` (C, persistent session) records every message beside it. The broker
is restarted (SIGTERM, persistence on) at 30 % of the run and InfluxDB (SIGTERM) at
60 %.

Reported per size, counted against the emulator's ground truth (``truth.parquet``):

- values lost and duplicated in InfluxDB (per sensor: stored points against published
  samples, and the sum of stored values against the sum published);
- end-to-end latency, publish (handed to the MQTT client) -> stored (InfluxDB
  acknowledged its batch), p50/p99, from the ingest's trace;
- step lateness p50/p99 of the twin's real-time loop (``run.json``);
- estimated bus voltages against the truth, in units of the voltage sensors' sigma
  (share within 3 sigma, p99, max), and how many steps after the bias began the biased
  sensor was flagged;
- then, as fast as possible (the emulator at speed 1000 for ``--flood-s`` seconds of
  plant time, by default 300,000 values' worth): values/s ingested (decoded, mapped,
  windowed, stored) against the bare ``mosquitto_sub`` on the same broker in the same
  run.

Mosquitto and InfluxDB 1.6.7 run as child processes on free loopback ports.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from adapters.influx.server import InfluxServer
from adapters.mqtt.broker import Mosquitto, Subscriber
from benchmarks.machine import machine

ROOT = Path(__file__).resolve().parents[1]
PLANT = ROOT / "scenarios" / "field_plant.yaml"
MAPPING = ROOT / "scenarios" / "mappings" / "field.yaml"
#: The sensor given a 10-sigma bias (a line flow in the middle of a feeder: redundant).
BIASED = "field/line_40/p_from"
#: Emulator options per size: the plan that gives about that many sensors.
PLANS = {
    1000: ["--groups", "bus,line"],
    5000: ["--groups", "bus,line,trafo,assets,poc", "--redundancy", "3"],
}
DB = "live"
#: Values the flood publishes per size by default (enough for a second or more of it).
FLOOD_VALUES = 300_000
#: Seconds between now and the plant's first second: both processes start meanwhile.
START_MARGIN_S = 60.0


def cli() -> list[str]:
    """The twin command line of this interpreter."""
    return [sys.executable, "-m", "twin.cli"]


def field_command(
    broker: str, size: int, duration: str, wall_start: float, out: Path, *extra: str
) -> list[str]:
    """``twin field`` on the plant: SenML packs, the size's plan, on ``wall_start``."""
    return [
        *cli(),
        "field",
        str(PLANT),
        "--broker",
        broker,
        "--format",
        "senml",
        *PLANS[size],
        "--duration",
        duration,
        "--wall-start",
        str(wall_start),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def live_scenario(work: Path, minutes: int, broker: str, influx: str, trace: Path) -> Path:
    """The plant with ``ingest`` and ``estimation``: what the twin runs."""
    raw = yaml.safe_load(PLANT.read_text())
    mapping = yaml.safe_load(MAPPING.read_text())["mapping"]
    raw.update(
        name="live_plant",
        duration=f"{minutes}min",
        ingest={
            "broker": broker,
            "topics": ["field/#"],
            "mapping": mapping,
            "trace": str(trace),
        },
        estimation={},
        # raw values (ingest), the twin's own and the estimate: one database
        # InfluxDB on this host: compressing the bodies only costs both ends CPU
        outputs={"influx": {"url": influx, "db": DB, "create_database": True, "gzip": False}},
    )
    path = work / "live_plant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def restart_later(server: Any, at_wall: float, what: str, log: list[str]) -> threading.Thread:
    """Stop ``server`` (SIGTERM) at ``at_wall`` and start it again on the same port."""

    def restart() -> None:
        time.sleep(max(at_wall - time.time(), 0.0))
        began = time.time()
        server.stop()
        server.start()
        down = time.time() - began
        log.append(f"{what} restarted at +{began - at_wall:.1f} s, down {down:.1f} s")

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    return thread


def stored_per_sensor(influx: InfluxServer) -> pd.DataFrame:
    """Points and the sum of their values per sensor, ``source=real`` (InfluxQL)."""
    result = influx.query("SHOW MEASUREMENTS", db=DB)
    series = result["results"][0].get("series") or []
    measurements = [row[0] for row in series[0]["values"]] if series else []
    rows = []
    for measurement in measurements:
        keys = influx.query(f'SHOW FIELD KEYS FROM "{measurement}"', db=DB)
        fields = [row[0] for row in keys["results"][0]["series"][0]["values"]]
        fields = [f for f in fields if f != "quality"]
        for field in fields:
            q = (
                f'SELECT count("{field}"), sum("{field}") FROM "{measurement}" '
                f"WHERE source='real' GROUP BY sensor"
            )
            for s in influx.query(q, db=DB)["results"][0].get("series") or []:
                _, count, total = s["values"][0]
                rows.append((s["tags"]["sensor"], int(count), float(total)))
    return pd.DataFrame(rows, columns=["sensor", "stored", "stored_sum"])


def delivery(truth: pd.DataFrame, stored: pd.DataFrame) -> dict[str, Any]:
    """Lost and duplicated values, per sensor against the published samples."""
    sent = truth[truth["copies"] > 0]
    expected = sent.groupby("sensor").agg(
        expected=("t", "size"), expected_sum=("value_twin", "sum")
    )
    both = expected.join(stored.set_index("sensor"), how="outer")
    both = both.astype(float).fillna(0.0)
    lost = int(np.clip(both["expected"] - both["stored"], 0, None).sum())
    extra = int(np.clip(both["stored"] - both["expected"], 0, None).sum())
    scale = np.maximum(np.abs(both["expected_sum"]), 1.0)
    differs = int((np.abs(both["stored_sum"] - both["expected_sum"]) > 1e-6 * scale).sum())
    return {
        "sensors": int(len(expected)),
        "published": int(len(sent)),
        "duplicates_sent": int((sent["copies"] > 1).sum()),
        "stored": int(both["stored"].sum()),
        "lost": lost,
        "duplicated": extra,
        "sensors_with_other_values": differs,
    }


def latency(truth: pd.DataFrame, trace_path: Path) -> dict[str, float]:
    """Publish -> stored (InfluxDB acknowledged), per value, p50/p99/max."""
    trace = pd.read_parquet(trace_path)
    trace = trace.dropna(subset=["stored_wall"]).drop_duplicates(["sensor", "t"])
    sent = truth[truth["copies"] > 0][["sensor", "t", "publish_wall"]]
    joined = trace.merge(sent, on=["sensor", "t"], how="inner")
    seconds = (joined["stored_wall"] - joined["publish_wall"]).to_numpy()
    return {
        "values": int(len(seconds)),
        "p50_s": float(np.percentile(seconds, 50)),
        "p99_s": float(np.percentile(seconds, 99)),
        "max_s": float(seconds.max()),
    }


def estimate_accuracy(truth: pd.DataFrame, run_dir: Path, step_s: int) -> dict[str, Any]:
    """Estimated bus voltages against the truth, in voltage-sensor sigmas."""
    results = pd.read_parquet(run_dir / "results.parquet")
    est = results[(results["source"] == "estimate") & (results["quantity"] == "v_pu")].dropna(
        subset=["value"]
    )
    volts = truth[truth["quantity"] == "v_pu"]
    true_v = volts.groupby(["element", "t_true"]).agg(
        truth=("truth_twin", "first"), sigma=("sigma_twin", "min")
    )
    est = est.assign(
        element=est["asset"].astype(str),
        t_true=est["time"].astype("int64") / 1e9,
    )
    joined = est.merge(true_v.reset_index(), on=["element", "t_true"], how="inner")
    z = np.abs(joined["value"] - joined["truth"]) / joined["sigma"]
    return {
        "estimates": int(len(joined)),
        "within_3_sigma": float((z <= 3).mean()) if len(z) else float("nan"),
        "p99_sigma": float(np.percentile(z, 99)) if len(z) else float("nan"),
        "max_sigma": float(z.max()) if len(z) else float("nan"),
    }


def bias_detection(run_dir: Path, start: pd.Timestamp, bias_from_s: int, step_s: int) -> Any:
    """Windows from the bias's first sample to the sensor's flag (1 = its first window).

    None when the biased sensor was not flagged after its bias began (a flag before it
    is a false alarm, not a detection).
    """
    meta = json.loads((run_dir / "run.json").read_text())
    for flagged in meta.get("estimation", {}).get("flagged", []):
        since = (pd.Timestamp(flagged["since"]) - start).total_seconds()
        if flagged["sensor"] == BIASED and since >= bias_from_s:
            return int(since - bias_from_s) // step_s + 1
    return None


def run_size(size: int, minutes: int, restarts: bool, flood_s: int, keep: Path | None) -> dict:
    """One size: the real-time run with restarts, then the flood."""
    work = Path(keep or tempfile.mkdtemp(prefix=f"live{size}-"))
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    with Mosquitto(work / "mosquitto") as broker, InfluxServer(work / "influx") as influx:
        trace = work / "trace.parquet"
        scenario = live_scenario(work, minutes, broker.url, influx.url, trace)
        wall_start = float(int(time.time() + START_MARGIN_S))
        bias_from_s = 120
        bare = Subscriber(broker, "field/#", f"bare-{size}")
        twin = subprocess.Popen(
            [
                *cli(),
                "run",
                str(scenario),
                "--realtime",
                "--no-progress",
                "--out",
                str(work / "twin"),
                "--set",
                f"ingest.wall_start={wall_start}",
            ],
            stdout=open(work / "twin.log", "w"),
            stderr=subprocess.STDOUT,
        )
        field = subprocess.Popen(
            field_command(
                broker.url,
                size,
                f"{minutes}min",
                wall_start,
                work / "field",
                "--bias",
                f"{BIASED}=10@{bias_from_s}",
            ),
            stdout=open(work / "field.log", "w"),
            stderr=subprocess.STDOUT,
        )
        threads = []
        if restarts:
            span = minutes * 60
            threads.append(restart_later(broker, wall_start + 0.3 * span, "broker", log))
            threads.append(restart_later(influx, wall_start + 0.6 * span, "influxdb", log))
        field_rc = field.wait()
        twin_rc = twin.wait()
        for thread in threads:
            thread.join()
        bare.stop()
        truth = pd.read_parquet(work / "field" / "truth.parquet")
        plant_start = pd.Timestamp(yaml.safe_load(PLANT.read_text())["start"])
        row: dict[str, Any] = {
            "size": size,
            "sensors": int(truth["sensor"].nunique()),
            "field_exit": field_rc,
            "twin_exit": twin_rc,
            "restarts": log,
            "bare_messages": len(bare.messages),
            "delivery": delivery(truth, stored_per_sensor(influx)),
            "latency": latency(truth, trace),
        }
        meta = json.loads((work / "twin" / "run.json").read_text())
        row["lateness"] = meta.get("realtime", {})
        row["status"] = meta.get("status")
        row["ingest"] = {
            k: meta.get("ingest", {}).get(k)
            for k in ("messages", "values", "accepted", "duplicates", "late", "skewed")
        }
        row["estimation"] = {
            k: meta.get("estimation", {}).get(k)
            for k in (
                "windows",
                "solved",
                "failures",
                "iterations_mean",
                "step_ms_p50",
                "step_ms_p99",
                "flagged",
            )
        }
        row["accuracy"] = estimate_accuracy(truth, work / "twin", 1)
        row["bias_flagged_after_steps"] = bias_detection(work / "twin", plant_start, bias_from_s, 1)
        row["other_sensors_flagged"] = [
            f["sensor"] for f in row["estimation"].get("flagged") or [] if f["sensor"] != BIASED
        ]
        if flood_s > 0:
            row["flood"] = flood(work, broker, influx, size, flood_s)
    row["work"] = str(work)
    return row


def flood(work: Path, broker: Mosquitto, influx: InfluxServer, size: int, seconds: int) -> dict:
    """As fast as possible: the twin's ingest path beside a bare ``mosquitto_sub``.

    The emulator publishes ``seconds`` of plant time at speed 1000 (as fast as it can);
    the ingest (the twin's own :class:`~adapters.ingest.simulator.IngestSimulator`:
    decode, map, convert, admit, store to InfluxDB) and ``mosquitto_sub`` are subscribed
    to the same broker at the same time. Values/s of each: values received from the first
    to the last message (``mosquitto_sub``'s values counted in its SenML packs).
    """
    from adapters.influx.transport import InfluxConfig
    from adapters.ingest.limits import element_table
    from adapters.ingest.schema import MappingRuleSpec
    from adapters.ingest.simulator import IngestSimulator
    from models.gridnet import load_tables
    from twin.scenario import validate_scenario

    scenario = validate_scenario(yaml.safe_load(PLANT.read_text()))
    elements = element_table(scenario, load_tables(scenario.grid.source), 1.5)
    wall_start = float(int(time.time()) + 45)
    clock = {"start": scenario.start.isoformat(), "step_s": 1, "n_steps": seconds}
    config = {
        "broker": broker.url,
        "auth": None,
        "client_id": f"flood-ingest-{size}",
        "clean_session": True,
        "qos": 1,
        "topics": ["field/#"],
        "site": "flood",
        "mapping": [
            MappingRuleSpec(**rule).model_dump(exclude_none=False)
            for rule in yaml.safe_load(MAPPING.read_text())["mapping"]
        ],
        "mapping_csv": None,
        "elements": {
            name: [info.kind, sorted(info.quantities), info.vn_kv, dict(info.ranges)]
            for name, info in elements.items()
        },
        "wall_start": wall_start,
        "speed": 1000.0,
        "clock_tolerance_s": 86_400.0,  # plant seconds: 1,000 per wall second here
        "max_delay_s": 86_400.0,
        "late_window_s": 0.0,
        "max_payload_bytes": 262_144,
        "max_batch_records": 10_000,
        "influx": vars(
            InfluxConfig(
                url=influx.url,
                db="flood",
                create_database=True,
                flush_interval_s=0.2,
                spool_dir=str(work / "flood-spool"),
                gzip=False,  # InfluxDB on this host: compressing only costs both ends CPU
            )
        ),
        "trace": None,
        "stats_path": str(work / "flood-ingest.json"),
    }
    # its own process writing a file: nothing shared with the ingest's process
    bare = Subscriber(broker, "field/#", f"flood-bare-{size}", work / f"flood-bare-{size}.txt")
    sim = IngestSimulator()
    sim.init("ingest", clock=clock, config=config)
    counted: list[tuple[float, int, float]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            counted.append((time.time(), sim.ingestor.counts.values, time.process_time()))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    field = subprocess.run(
        field_command(
            broker.url,
            size,
            f"{seconds}s",
            wall_start,
            work / "flood-field",
            "--speed",
            "1000",
            "--max-lateness-s",
            "1000",
            "--client-id",
            f"flood-field-{size}",
        ),
        capture_output=True,
        text=True,
    )
    truth = pd.read_parquet(work / "flood-field" / "truth.parquet")
    expected = int((truth["copies"] > 0).sum())
    deadline = time.time() + 120
    # nothing else of this process runs while the ingest works (the bare file is read after)
    while time.time() < deadline and sim.ingestor.counts.values < expected:
        time.sleep(0.2)
    time.sleep(2.0)
    done.set()
    watcher.join()
    bare.stop()
    sim.finalize()
    # sensor packs only (the ingest's read-access probe is a message too)
    packs = [(t, p) for t, (_, p) in zip(bare.arrivals, bare.messages, strict=True)]
    packs = [(t, p) for t, p in packs if p.startswith("[")]
    values = [len(json.loads(p)) for _, p in packs]
    arrivals = np.array([t for t, _ in packs])
    bare_s = float(arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    seen = np.array([c for _, c, _ in counted])
    times = np.array([t for t, _, _ in counted])
    cpu = np.array([p for _, _, p in counted])
    moving = np.flatnonzero(np.diff(seen) > 0)
    ingest_s = float(times[moving[-1] + 1] - times[moving[0]]) if len(moving) else float("nan")
    ingest_values = int(seen[-1]) if len(seen) else 0
    bare_rate = sum(values) / bare_s
    ingest_rate = ingest_values / ingest_s
    return {
        "field_exit": field.returncode,
        "published_values": expected,
        "bare_values": int(sum(values)),
        "bare_values_per_s": bare_rate,
        "ingest_values": ingest_values,
        "ingest_values_per_s": ingest_rate,
        "ratio": ingest_rate / bare_rate,
        # CPU of this process (the ingest's threads: MQTT, store, InfluxDB writer) per value
        "ingest_cpu_us_per_value": (
            float(cpu[moving[-1] + 1] - cpu[moving[0]]) / ingest_values * 1e6
            if len(moving)
            else float("nan")
        ),
        # wall seconds after the bare subscriber's first pack: when each began and ended
        "bare_span_s": (0.0, bare_s),
        "ingest_span_s": (
            float(times[moving[0]] - arrivals[0]) if len(moving) else float("nan"),
            float(times[moving[-1] + 1] - arrivals[0]) if len(moving) else float("nan"),
        ),
    }


def print_table(rows: list[dict]) -> None:
    """The benchmark's table (markdown, for BENCHMARKS.md)."""
    print(f"\nmachine: {machine()}")
    print(
        "| sensors | run, twin / field exit | lost | duplicated | latency p50 / p99 s "
        "| lateness p50 / p99 ms | V within 3 sigma | bias flagged after (others flagged) "
        "| ingest vs mosquitto_sub |"
    )
    print("|---:|---|---:|---:|---|---|---:|---:|---|")
    for r in rows:
        d, lat, late = r["delivery"], r["latency"], r["lateness"]
        acc = r["accuracy"]
        fl = r.get("flood") or {"ingest_values_per_s": 0, "bare_values_per_s": 0, "ratio": 0}
        print(
            f"| {r['sensors']:,} | {r['status']}, {r['twin_exit']} / {r['field_exit']} "
            f"| {d['lost']:,} | {d['duplicated']:,} "
            f"| {lat['p50_s']:.3f} / {lat['p99_s']:.3f} "
            f"| {late.get('lateness_p50_s', float('nan')) * 1e3:.1f} / "
            f"{late.get('lateness_p99_s', float('nan')) * 1e3:.1f} "
            f"| {acc['within_3_sigma']:.1%} (max {acc['max_sigma']:.1f}) "
            f"| {r['bias_flagged_after_steps']} windows ({len(r['other_sensors_flagged'])}) "
            f"| {fl['ingest_values_per_s']:,.0f} / {fl['bare_values_per_s']:,.0f} values/s "
            f"= {fl['ratio']:.2f} |"
        )


def main() -> None:
    """Parse the options, run each size, print the table and the raw figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument(
        "--flood-s",
        type=int,
        default=None,
        help=f"plant seconds of the flood (default: {FLOOD_VALUES:,} values' worth per size)",
    )
    parser.add_argument("--no-restarts", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep")
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        keep = args.keep / str(size) if args.keep else None
        flood_s = -(-FLOOD_VALUES // size) if args.flood_s is None else args.flood_s
        rows.append(run_size(size, args.minutes, not args.no_restarts, flood_s, keep))
        print(json.dumps(rows[-1], indent=2, default=str), flush=True)
    print_table(rows)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
