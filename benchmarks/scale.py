"""Loop time and set-up against grid size: per-element vs per-fleet exchange.

Usage: python -m benchmarks.scale [--grids CODE,CODE...] [--duration 1d]
                                  [--timeseries-grid CODE | --no-timeseries]
                                  [--runs element:mosaik,fleet:mosaik,fleet:direct]

The day scenario (``scenarios/microgrid_day.yaml``: two PV plants, a battery and every
load of the grid with its SimBench profile, sensors on) at 15-minute steps, without a
controller (the controller's per-element measurement connections belong to the
controllers), on each grid. Each grid runs twice, each run its own fresh process:
``TWIN_EXCHANGE=element`` (one mosaik connection per asset element and bus, the world
before fleet exchange) and ``fleet`` (one connection per asset fleet), each on an executor
(``TWIN_EXECUTOR``: ``mosaik``'s scheduler or the ``direct`` one, :mod:`twin.executor`;
``--runs`` lists the exchange:executor pairs). Reported per run:
``setup_s`` and ``loop_s`` of ``run.json`` (loop in us per step) with the process CPU
time of each in brackets (the machine may be shared: CPU is the steadier figure), the
process's wall, CPU and peak RSS, and the plan's connections. A warm-up process
validates each scenario first, so SimBench extraction is in the disk cache
(``TWIN_CACHE_DIR``, a temporary directory) and no timed run pays it.

pandapower's ``run_timeseries`` (its default recycling; ``ConstControl`` on one static
generator per bus, the twin's recorded bus injections) runs on ``--timeseries-grid`` in
its own process from a pandapower JSON of the net as the twin prepares it: its set-up
(JSON load, controllers) and loop, and the max voltage difference to the twin's.

``twin.bounds.MAX_UNITS`` is raised to 100,000 in the twin's process (SimBench's
1-MVLV-urban-all-0-sw has 11,542 loads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.process import measure_process
from benchmarks.scenarios import day_scenario

ROOT = Path(__file__).resolve().parents[1]
GRIDS = [
    "1-LV-rural1--0-sw",  # 15 buses
    "1-MV-urban--0-sw",  # 144 buses
    "1-HVMV-mixed-all-0-sw",  # 1,942 buses
    "1-MVLV-urban-all-0-sw",  # 10,458 buses, 11,542 loads
]
TIMESERIES_GRID = "1-MVLV-urban-all-0-sw"


def measure(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Wall, CPU (user + system) seconds and peak RSS (MB) of one fresh process."""
    return measure_process(args, env, ROOT)


def scenario_raw(grid: str, duration: str) -> dict[str, Any]:
    """The day scenario on ``grid`` over ``duration``, without a controller."""
    return day_scenario(grid=grid, duration=duration, controller="none", name="scale_bench")


# ---------------------------------------------------------------- workers (subprocesses)


def twin_worker(grid: str, duration: str, out: Path, validate_only: bool) -> None:
    """Validate (and run) the scenario on ``grid``; print run.json's figures."""
    import twin.bounds

    twin.bounds.MAX_UNITS = 100_000
    from twin.run import run_scenario
    from twin.scenario import validate_scenario
    from twin.world import plan_world

    started = time.perf_counter()
    scenario = validate_scenario(scenario_raw(grid, duration))
    validated = time.perf_counter() - started
    if validate_only:
        print(json.dumps({"validate_s": validated}))
        return
    cpu = _time_the_loop()
    cpu["before_s"] = time.process_time()
    run_scenario(scenario, out, compare_uncontrolled=False)
    meta = json.loads((out / "run.json").read_text())
    plan = plan_world(scenario, out / "plan", "plan")
    grid_sim = plan.fleets["grid"]
    report = {
        "validate_s": validated,
        "setup_s": meta["setup_s"],
        "loop_s": meta["loop_s"],
        "setup_cpu_s": cpu["started_s"] - cpu["before_s"],
        "loop_cpu_s": cpu["loop_s"],
        "steps": scenario.clock().n_steps,
        "buses": sum(1 for e in grid_sim.entities if e.type == "bus"),
        "loads": len(scenario.units("load")),
        "connections": len(plan.connections),
        "executor": meta["executor"],
        "element_connections": len(plan.element_edges()),
    }
    print(json.dumps(report))


def _time_the_loop() -> dict[str, float]:
    """Process CPU seconds of the world's ``run`` (the loop), filled in when it returns.

    mosaik's ``World.run`` or the direct executor's ``DirectWorld.run``.
    """
    import mosaik

    from twin.executor import DirectWorld

    cpu: dict[str, float] = {}
    for cls in (mosaik.World, DirectWorld):

        def timed(self: Any, *args: Any, _run: Any = cls.run, **kwargs: Any) -> Any:
            cpu["started_s"] = time.process_time()
            try:
                return _run(self, *args, **kwargs)
            finally:
                cpu["loop_s"] = time.process_time() - cpu["started_s"]

        cls.run = timed
    return cpu


def bus_injections(grid: str, duration: str, run_dir: Path, work: Path) -> None:
    """The twin's recorded injections per bus and the net as the twin prepares it."""
    import twin.bounds

    twin.bounds.MAX_UNITS = 100_000
    from benchmarks.pandapower_side import save_bus_injections
    from twin.scenario import validate_scenario

    save_bus_injections(validate_scenario(scenario_raw(grid, duration)), run_dir, work)


def timeseries_worker(work: Path) -> None:
    """pandapower ``run_timeseries`` on the prepared net and injections; save voltages."""
    started, started_cpu = time.perf_counter(), time.process_time()
    import numpy as np
    from pandapower.timeseries import run_timeseries

    from benchmarks.pandapower_side import load_prepared, timeseries_controllers

    net, injection, p_mw, q_mvar = load_prepared(work)
    n_steps = len(p_mw)
    writer = timeseries_controllers(net, injection, p_mw, q_mvar)
    looped, looped_cpu = time.perf_counter(), time.process_time()
    run_timeseries(net, time_steps=range(n_steps), verbose=False)
    loop, loop_cpu = time.perf_counter() - looped, time.process_time() - looped_cpu
    np.save(work / "vm_timeseries.npy", writer.output["res_bus.vm_pu"].to_numpy())
    setup_cpu = looped_cpu - started_cpu
    report = {"setup_s": looped - started, "setup_cpu_s": setup_cpu, "loop_s": loop}
    print(json.dumps({**report, "loop_cpu_s": loop_cpu, "steps": n_steps}))


# ---------------------------------------------------------------- the parent


def _times(r: dict[str, Any]) -> str:
    """Set-up s and loop us/step, wall with CPU in brackets (where measured)."""
    per_step = 1e6 / r["steps"]
    setup_cpu, loop_cpu = r.get("setup_cpu_s", float("nan")), r.get("loop_cpu_s", float("nan"))
    return (
        f"{r['setup_s']:.2f} ({setup_cpu:.2f}) | {r['loop_s'] * per_step:,.0f} "
        f"({loop_cpu * per_step:,.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default=",".join(GRIDS))
    parser.add_argument("--duration", default="1d")
    parser.add_argument("--timeseries-grid", default=TIMESERIES_GRID)
    parser.add_argument("--no-timeseries", action="store_true")
    parser.add_argument("--runs", default="element:mosaik,fleet:mosaik,fleet:direct")
    parser.add_argument("--worker", choices=["twin", "warm", "injections", "timeseries"])
    parser.add_argument("--grid", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker in ("twin", "warm"):
        twin_worker(args.grid, args.duration, args.work, args.worker == "warm")
        return
    if args.worker == "injections":
        runs = [args.work / "run-fleet-mosaik", args.work / "run-fleet-direct"]
        done = next(r for r in runs if (r / "results.parquet").exists())
        bus_injections(args.grid, args.duration, done, args.work)
        return
    if args.worker == "timeseries":
        timeseries_worker(args.work)
        return

    import numpy as np

    from benchmarks.machine import machine

    print(f"machine: {machine()}")
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    python = sys.executable
    rows = []
    timeseries: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="twin-scale-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_CACHE_DIR": str(Path(tmp, "cache"))}
        for grid in args.grids.split(","):
            work = Path(tmp, grid)
            work.mkdir()

            def worker(kind: str, where: Path, grid: str = grid) -> list[str]:
                return [python, "-m", "benchmarks.scale", "--grid", grid, "--work", str(where),
                        "--duration", args.duration, "--worker", kind]  # fmt: skip

            warm = measure(worker("warm", work), env)
            print(f"{grid}: warm-up validation {warm['wall_s']:.1f} s", flush=True)
            for pair in args.runs.split(","):
                exchange, executor = pair.split(":")
                run_env = {**env, "TWIN_EXCHANGE": exchange, "TWIN_EXECUTOR": executor}
                row = measure(worker("twin", work / f"run-{exchange}-{executor}"), run_env)
                rows.append((grid, f"{exchange}, {row['executor']}", row))
                print(f"  {pair}: {json.dumps(row)}", flush=True)
            if not args.no_timeseries and grid == args.timeseries_grid:
                measure(worker("injections", work), env)
                timeseries = measure(worker("timeseries", work), env)
                twin_vm = np.load(work / "vm_twin.npy")
                vm = np.load(work / "vm_timeseries.npy")
                timeseries["max_dv_pu"] = float(np.nanmax(np.abs(vm - twin_vm)))
                print(f"  run_timeseries: {json.dumps(timeseries)}", flush=True)
    print()
    print(
        "| grid | buses | loads | exchange, executor | connections | set-up s (CPU) "
        "| loop us/step (CPU) | process wall s | CPU s | RSS MB |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for grid, exchange, r in rows:
        print(
            f"| {grid} | {r['buses']:,} | {r['loads']:,} | {exchange} | {r['connections']:,} "
            f"| {_times(r)} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['rss_mb']:.0f} |"
        )
    if timeseries:
        t = timeseries
        print(
            f"| {args.timeseries_grid} | | | pandapower run_timeseries | | {_times(t)} "
            f"| {t['wall_s']:.1f} | {t['cpu_s']:.1f} | {t['rss_mb']:.0f} |"
        )
        print(f"max |dV| run_timeseries vs twin: {t['max_dv_pu']:.1e} pu")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
