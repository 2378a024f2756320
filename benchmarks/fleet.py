"""Many plants: N LV sites for a day at 15 min, in one world vs split, in one run.

Usage: python -m benchmarks.fleet [--sites 50] [--duration 1d] [--workers N]
       python -m benchmarks.fleet --sweep 1,5,10,20,50 [--duration 6h]
       TWIN_EXECUTOR=mosaik python -m benchmarks.fleet ...  (the one world on mosaik's
       scheduler; default: auto, the direct executor for these sites, :mod:`twin.executor`)

The fleet is N copies of the demo day (1-LV-rural1, two PV plants, a battery, the
feeder's 13 loads, the rule controller, sensors on), each site with its own PV size
and seed. Each mode runs ``twin.fleet.run_fleet`` in a fresh process (fleet file
validation included, imports excluded from "run", included in "process"): "world" puts
every site in one mosaik world in that process, "split" runs each site as a run of its
own on a dask ``LocalCluster`` (``--workers``, default one per CPU; cluster start-up
included). The table gives the process's wall seconds, of which validating the fleet
file and running it, CPU (the process and the workers it reaped), the largest
process's peak RSS and the peak of the whole process tree's summed RSS, one world's
set-up and loop, and the ratio world / split. Both modes' results are compared.
``--sweep`` runs one world of each size in a fresh process: its loop per step and per
site-step (how one world's cost grows with its sites).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.machine import machine
from benchmarks.process import measure_process

ROOT = Path(__file__).resolve().parents[1]


def fleet_file(work: Path, sites: int, duration: str) -> Path:
    """A fleet of ``sites`` demo-day sites with PV sizes of 20..79 kW."""
    template = ROOT / "scenarios" / "microgrid_day.yaml"
    raw = {
        "kind": "fleet",
        "name": f"lv{sites}",
        "start": "2016-06-21T00:00:00-04:00",
        "duration": duration,
        "step": "15min",
        "seed": 17,
        "sites": [
            {
                "site": f"lv{i:03d}",
                "scenario": str(template),
                "set": [f"assets.pv[0].p_dc_kw={20 + (7 * i) % 60}"],
            }
            for i in range(sites)
        ],
    }
    path = work / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def child(path: str, out: str, mode: str, workers: int | None) -> None:
    """One mode in this process: validate the fleet file, run it, print a JSON line."""
    started = time.perf_counter()
    from twin.fleet import load_fleet, run_fleet

    fleet = load_fleet(path)
    validated = time.perf_counter()
    result = run_fleet(fleet, out, mode=mode, n_workers=workers)
    first = json.loads((Path(out) / "sites" / fleet.sites[0].name / "run.json").read_text())
    print(
        json.dumps(
            {
                "status": result.status,
                "validate_s": validated - started,
                "run_s": time.perf_counter() - validated,
                "setup_s": first.get("setup_s"),
                "loop_s": first.get("loop_s"),
                "executor": first.get("executor"),
            }
        )
    )


def same_results(left: Path, right: Path) -> float:
    """The largest difference between two fleet runs' values (same rows required)."""
    import numpy as np

    from twin.results import load_results

    keys = ["time", "site", "source", "asset", "kind", "quantity"]
    frames = []
    for run in (left, right):
        frame = load_results(run).drop(columns="run_id")
        for key in keys[1:]:
            frame[key] = frame[key].astype(str)
        frames.append(frame.sort_values(keys).reset_index(drop=True))
    if not frames[0][keys].equals(frames[1][keys]):
        raise SystemExit("world and split hold different rows")
    a, b = frames[0]["value"].to_numpy(), frames[1]["value"].to_numpy()
    both = ~(np.isnan(a) & np.isnan(b))
    return float(np.abs(a[both] - b[both]).max())


def sweep(work: Path, sizes: list[int], duration: str) -> None:
    """One world of each size, each in a fresh process: loop per step and per site-step."""
    from twin.units import parse_duration_s

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    steps = parse_duration_s(duration) // 900
    executor = os.environ.get("TWIN_EXECUTOR", "auto")
    print(f"one world, {duration} at 15 min ({steps} steps), executor {executor}; {machine()}")
    print(f"{'sites':>5} {'simulators':>10} {'setup s':>8} {'loop s':>7} {'ms/step':>8}", end="")
    print(f" {'ms/site-step':>13}")
    for n in sizes:
        here = work / f"n{n}"
        here.mkdir()
        cmd = [sys.executable, "-m", "benchmarks.fleet", "--child"]
        cmd += [str(fleet_file(here, n, duration)), str(here / "out"), "world"]
        row = measure_process(cmd, env, ROOT)
        if row.get("status") != "finished":
            raise SystemExit(f"{n} sites: fleet {row.get('status')}")
        site = json.loads((here / "out" / "sites" / "lv000" / "run.json").read_text())
        sims = sum(1 for key in site["component_s"] if ":" not in key)  # one per simulator
        per_step = row["loop_s"] / steps * 1e3
        print(
            f"{n:>5} {n * sims:>10} {row['setup_s']:8.1f} {row['loop_s']:7.1f} "
            f"{per_step:8.1f} {per_step / n:13.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--duration", default="1d")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--child", nargs=3, metavar=("FLEET", "OUT", "MODE"), help="internal")
    parser.add_argument("--sweep", help="one world of each of these sizes (1,5,10)")
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    if args.sweep:
        sweep(work, [int(n) for n in args.sweep.split(",")], args.duration)
        return
    path = fleet_file(work, args.sites, args.duration)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = {}
    for mode in ("world", "split"):
        cmd = [sys.executable, "-m", "benchmarks.fleet", "--child", str(path)]
        cmd += [str(work / mode), mode]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        rows[mode] = measure_process(cmd, env, ROOT, tree=True)
        if rows[mode].get("status") != "finished":
            raise SystemExit(f"{mode}: fleet {rows[mode].get('status')}")
    diff = same_results(work / "world", work / "split")
    workers = args.workers or len(os.sched_getaffinity(0))
    print(f"{args.sites} LV sites, {args.duration} at 15 min; split on {workers} workers")
    print(f"executor of the one world and of each split site: {rows['world']['executor']}")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end")
    head = f"{'mode':<6} {'process s':>9} {'validate s':>10} {'run s':>7} {'CPU s':>7}"
    print(head + f" {'RSS MB':>7} {'tree MB':>8} {'setup s':>8} {'loop s':>7}")
    for mode, row in rows.items():
        setup = f"{row['setup_s']:8.1f}" if mode == "world" else f"{'-':>8}"
        loop = f"{row['loop_s']:7.1f}" if mode == "world" else f"{'-':>7}"
        print(
            f"{mode:<6} {row['wall_s']:9.1f} {row['validate_s']:10.1f} {row['run_s']:7.1f} "
            f"{row['cpu_s']:7.1f} {row['rss_mb']:7.0f} {row['tree_rss_mb']:8.0f} {setup} {loop}"
        )
    world, split = rows["world"], rows["split"]
    print(
        f"world / split: wall {world['wall_s'] / split['wall_s']:.2f}x, "
        f"CPU {world['cpu_s'] / split['cpu_s']:.2f}x; results equal to {diff:.1e}"
    )


if __name__ == "__main__":
    main()
