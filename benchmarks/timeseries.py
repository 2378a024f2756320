"""A week at 15 min side by side: ``twin run`` end to end against pandapower's time series.

Usage: python -m benchmarks.timeseries [--duration 7d] [--repeat 2] [--no-runpp-loop]
                                       [--grid 1-LV-rural1--0-sw] [--executors direct,mosaik]

Every method runs as its own fresh process, timed from process start to its outputs
written (wall from the parent; CPU and peak RSS of the process from ``wait4``):

- ``twin run`` of the day scenario (``scenarios/microgrid_day.yaml``) stretched to
  ``--duration``: interpreter, CLI, scenario, world, the steps, results and KPIs
  (``kpis.json``). Cold: an empty disk cache (SimBench extraction, the solver model and
  the PV series derived); warm: the cache the cold run filled. Cold once, on the first of
  ``--executors``; warm on each (``TWIN_EXECUTOR``: the direct executor or mosaik's
  scheduler, :mod:`twin.executor`). Ratios are to the first executor's warm run.
- pandapower ``run_timeseries`` with its default recycling, on the same grid as the
  twin prepares it (its loads and generators out of service, one static generator per
  bus), loaded from a pandapower JSON file (neither side pays SimBench extraction when
  warm), with the twin's recorded bus injections fed through ``ConstControl`` /
  ``DFData``; an ``OutputWriter`` logs ``res_bus.vm_pu``.
- a plain ``runpp`` loop on the same net and injections (``--no-runpp-loop`` skips it).

The repository's own modules are byte-compiled first (``compileall``), as an installed
package is: with ``PYTHONDONTWRITEBYTECODE`` set, every process would otherwise compile
the twin's modules from source again (about 0.3 s CPU; pandapower's are compiled).

The injections are the twin's own: every asset's recorded ``p_kw`` (and ``q_kvar`` where
recorded) summed at its bus. The voltages of every method are compared with the twin's
(max |dV| in pu). The table gives the median of ``--repeat`` runs per method and the ratio
of each method's wall to the warm twin's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.process import byte_compile, measure_process
from benchmarks.scenarios import day_scenario, write_scenario

ROOT = Path(__file__).resolve().parents[1]


def measure(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall, CPU (user + system) seconds and peak RSS (MB) of one fresh process."""
    return measure_process(args, env, ROOT)


# ---------------------------------------------------------------- workers (subprocesses)


def pandapower_worker(method: str, work: Path) -> None:
    """Run ``method`` (``timeseries`` or ``runpp``) on the prepared net; save voltages."""
    import numpy as np
    import pandapower as pp

    from benchmarks.pandapower_side import load_prepared, timeseries_controllers

    net, injection, p_mw, q_mvar = load_prepared(work)
    n_steps = len(p_mw)
    started = time.perf_counter()
    if method == "timeseries":
        from pandapower.timeseries import run_timeseries

        writer = timeseries_controllers(net, injection, p_mw, q_mvar)
        run_timeseries(net, time_steps=range(n_steps), verbose=False)
        vm = writer.output["res_bus.vm_pu"].to_numpy()
    else:
        vm = np.empty((n_steps, len(net.bus)))
        for k in range(n_steps):
            net.sgen.loc[injection, "p_mw"] = p_mw[k]
            net.sgen.loc[injection, "q_mvar"] = q_mvar[k]
            pp.runpp(net)
            vm[k] = net.res_bus["vm_pu"].to_numpy()
    loop = time.perf_counter() - started
    np.save(work / f"vm_{method}.npy", vm)
    print(json.dumps({"loop_s": loop, "steps": n_steps}))


# ---------------------------------------------------------------- the parent


def week_scenario(work: Path, duration: str, grid: str) -> Path:
    """The day scenario over ``duration`` on ``grid``, written into ``work``."""
    raw = day_scenario(duration=duration, grid=grid, name="timeseries_bench")
    return write_scenario(raw, work / "scenario.yaml")


def bus_injections(scenario_path: Path, run_dir: Path, work: Path) -> None:
    """The twin's recorded injections per bus and the net as the twin prepares it."""
    from benchmarks.pandapower_side import save_bus_injections
    from twin.scenario import load_scenario

    save_bus_injections(load_scenario(scenario_path), run_dir, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="7d")
    parser.add_argument("--grid", default="1-LV-rural1--0-sw")
    parser.add_argument("--repeat", type=int, default=2, help="Runs per method (median).")
    parser.add_argument("--no-runpp-loop", action="store_true")
    parser.add_argument("--executors", default="direct,mosaik", help="twin executors, in order")
    parser.add_argument("--worker", choices=["timeseries", "runpp"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        pandapower_worker(args.worker, args.work)
        return

    import numpy as np

    from benchmarks.machine import machine

    print(f"machine: {machine()}")
    byte_compile(ROOT)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    python = sys.executable
    rows: list[tuple[str, str, list[dict[str, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="twin-timeseries-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_CACHE_DIR": str(work / "cache")}
        scenario = week_scenario(work, args.duration, args.grid)
        run_dir = work / "run"
        twin = [python, "-m", "twin.cli", "run", str(scenario), "--out", str(run_dir)]
        twin.append("--no-progress")

        def twin_run(executor: str) -> dict[str, float]:
            timing = measure(twin, {**env, "TWIN_EXECUTOR": executor})
            meta = json.loads((run_dir / "run.json").read_text())
            assert meta["executor"] == executor, meta.get("executor_fallback")
            return {**timing, "loop_s": meta["loop_s"]}

        executors = args.executors.split(",")
        label = "twin run (fast solver, {})"
        rows.append((label.format(executors[0]), "cold", [twin_run(executors[0])]))
        for executor in executors:
            runs = [twin_run(executor) for _ in range(args.repeat)]
            rows.append((label.format(executor), "warm", runs))
        meta = json.loads((run_dir / "run.json").read_text())
        print(f"last warm twin run: executor {meta['executor']}")
        bus_injections(scenario, run_dir, work)
        n_steps = len(np.load(work / "p_mw.npy"))
        methods = ["timeseries"] + ([] if args.no_runpp_loop else ["runpp"])
        labels = {
            "timeseries": "pandapower run_timeseries (default recycle)",
            "runpp": "plain runpp loop",
        }
        worker = [python, "-m", "benchmarks.timeseries", "--work", str(work), "--worker"]
        for method in methods:
            runs = [measure([*worker, method], env) for _ in range(args.repeat)]
            rows.append((labels[method], "json", runs))
        twin_vm = np.load(work / "vm_twin.npy")
        dv = {m: float(np.nanmax(np.abs(np.load(work / f"vm_{m}.npy") - twin_vm))) for m in methods}
        print(f"run.json of the last warm twin run: setup_s {meta['setup_s']:.2f}, "
              f"first_step_s {meta.get('first_step_s', float('nan')):.2f}, "
              f"first_step_process_s {meta.get('first_step_process_s', float('nan')):.2f}, "
              f"loop_s {meta['loop_s']:.2f}, wall_s {meta['wall_s']:.2f}")  # fmt: skip
    reference = statistics.median(r["wall_s"] for r in rows[1][2])
    print(f"{args.duration} at 15 min on {args.grid} ({n_steps} steps), median of {args.repeat}")
    header = (
        f"{'method':<44} {'cache':<5} {'wall s':>7} {'CPU s':>6} {'RSS MB':>7} "
        f"{'loop us/step':>12} {'x twin warm':>11} {'max |dV| pu':>11}"
    )
    print(header)
    print("-" * len(header))
    keys = {labels[m]: m for m in labels}
    for label, cache, runs in rows:
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        loop = statistics.median(r.get("loop_s", float("nan")) for r in runs) / n_steps * 1e6
        diff = dv.get(keys.get(label, ""), 0.0)
        print(
            f"{label:<44} {cache:<5} {wall:>7.2f} {cpu:>6.2f} {rss:>7.0f} {loop:>12,.0f} "
            f"{wall / reference:>11.2f} {diff:>11.1e}"
        )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
