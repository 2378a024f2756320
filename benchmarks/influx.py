"""Points per second into a local InfluxDB 1.6: the adapter against the limit.

Usage: python -m benchmarks.influx [--days 120] [--single 2000]

One twin run (the year scenario cut to ``--days``) gives the points. In the same run,
against the same ``influxd`` (Debian's 1.6.7, free loopback port, own data directory),
each method writes them into a database of its own:

- raw loop: the lines encoded beforehand, POSTed 5,000 per request in a plain loop
  (no gzip): what the server takes, the limit;
- adapter: ``adapters.influx.write_results`` on the run's tidy frame, i.e. encoding,
  batching (5,000 lines), the background sender and its checks, without and with gzip;
- one point per request: the first ``--single`` lines, one POST each.

The table gives points (lines) per second, field values per second, and the ratio to the
raw loop. Goal: the adapter reaches >= 80 % of the raw loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import urllib3

from adapters.influx.lineprotocol import encode_frame
from adapters.influx.load import write_results
from adapters.influx.server import InfluxServer
from adapters.influx.writer import InfluxConfig
from benchmarks.run_year import machine
from twin.results import load_results
from twin.run import run_scenario
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
BATCH = 5000


def post_all(url: str, db: str, lines: list[str], batch: int) -> float:
    """POST ``lines`` ``batch`` at a time; return the wall seconds."""
    http = urllib3.PoolManager()
    http.request("POST", f"{url}/query", fields={"q": f'CREATE DATABASE "{db}"'})
    bodies = [
        ("\n".join(lines[i : i + batch]) + "\n").encode() for i in range(0, len(lines), batch)
    ]
    started = time.perf_counter()
    for body in bodies:
        response = http.request("POST", f"{url}/write?db={db}&precision=s", body=body)
        assert response.status == 204, response.data
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--single", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-influx-"))
    scenario = load_scenario(ROOT / "scenarios" / "microgrid_year.yaml", [f"duration={args.days}d"])
    run = run_scenario(scenario, work / "run")
    frame = load_results(run.out_dir)
    lines = [line for block in encode_frame(frame) for line in block]
    values = int(frame["value"].notna().sum())
    rows = []
    with InfluxServer(work / "influxdb") as server:
        raw_s = post_all(server.url, "raw", lines, BATCH)
        rows.append(("raw loop, 5,000 lines/POST", raw_s))
        for gzip in (False, True):
            config = InfluxConfig(
                url=server.url,
                db=f"adapter_gz{int(gzip)}",
                gzip=gzip,
                batch_size=BATCH,
                create_database=True,
            )
            started = time.perf_counter()
            stats = write_results(frame, config)
            elapsed = time.perf_counter() - started
            assert stats.points_written == len(lines) and stats.points_dropped == 0
            rows.append((f"adapter (encode + send), gzip {'on' if gzip else 'off'}", elapsed))
        single = lines[: args.single]
        single_s = post_all(server.url, "single", single, 1)
    print(f"machine: {machine()}; influxd 1.6.7; {len(lines):,} points, {values:,} field values")
    print(f"{'method':<40}{'points/s':>12}{'values/s':>12}{'vs raw':>8}")
    raw_rate = len(lines) / raw_s
    for name, seconds in rows:
        rate = len(lines) / seconds
        print(f"{name:<40}{rate:>12,.0f}{values / seconds:>12,.0f}{rate / raw_rate:>8.2f}")
    rate = len(single) / single_s
    print(f"{'one point per request':<40}{rate:>12,.0f}{'':>12}{rate / raw_rate:>8.3f}")


if __name__ == "__main__":
    main()
