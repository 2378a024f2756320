"""Memory of long runs at 1 s: peak RSS and CPU of a day and a week on the demo site.

Usage: python -m benchmarks.memory [--durations 1d,7d] [--step 1s] [--out DIR]
       TWIN_EXECUTOR=mosaik python -m benchmarks.memory ...  (mosaik's scheduler; default:
       auto, the direct executor on this scenario, :mod:`twin.executor`)

Each run is ``scenarios/microgrid_day.yaml`` with ``duration`` and ``step`` overridden,
in a fresh subprocess (this module with ``--child``): peak RSS and CPU (user + system)
come from ``wait4`` of that process, so nothing of one run stays in the next. The child
also reports the peak RSS reached before the run's finish (``VmHWM`` when the last step
is done: the loop's peak, imports and set-up included), ``run.json``'s ``setup_s`` and
``loop_s``, the size of ``results.parquet`` and the bytes of the numpy arrays each
model holds with a value per step (at least as many values as the run has steps): the
exogenous series (load profiles, PV, tariff), computed a window of steps at a time
(:mod:`models.window`, a day at 1 s), so a week holds what a day does. The results are
recorded in chunks (:mod:`twin.recorder`) and the KPIs summed a window at a time
(:func:`twin.kpi.compute_kpis`), so neither grows with the steps. The grid and PV caches
are the user's (``~/.cache/twin``): warm after the first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import machine

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "microgrid_day.yaml"


def _vm_hwm_mb() -> float:
    """This process's peak resident set so far (MB), from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _step_arrays(model: Any, n_steps: int) -> int:
    """Bytes of the numpy arrays a model holds with a value per step (or more)."""
    import numpy as np

    seen: set[int] = set()
    total = 0

    def visit(value: Any, depth: int) -> None:
        nonlocal total
        if isinstance(value, np.ndarray):
            base = value if value.base is None else value.base
            if id(base) not in seen and isinstance(base, np.ndarray) and base.size >= n_steps:
                seen.add(id(base))
                total += base.nbytes
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)
        elif depth < 3 and isinstance(value, list | tuple):
            for item in value:
                visit(item, depth + 1)
        elif depth < 3 and hasattr(value, "__dict__") and not isinstance(value, type):
            for item in vars(value).values():
                visit(item, depth + 1)

    visit(model, 0)
    return total


def child(duration: str, step: str, out: Path) -> dict[str, Any]:
    """One run in this process; what it measured about itself."""
    import twin.run
    from twin.run import run_scenario
    from twin.scenario import load_scenario
    from twin.wrapper import ModelSimulator

    arrays: dict[str, int] = {}
    finalize = ModelSimulator.finalize

    def measured_finalize(self: ModelSimulator) -> None:
        if self.model is not None:
            arrays[self.sid] = _step_arrays(self.model, self.clock.n_steps)
        finalize(self)

    ModelSimulator.finalize = measured_finalize  # type: ignore[method-assign]
    loop_peak: list[float] = []
    finish = twin.run._finish

    def measured_finish(*args: Any, **kwargs: Any) -> Any:
        loop_peak.append(_vm_hwm_mb())
        return finish(*args, **kwargs)

    twin.run._finish = measured_finish  # type: ignore[assignment]
    scenario = load_scenario(SCENARIO, [f"duration={duration}", f"step={step}"])
    run = run_scenario(scenario, out, compare_uncontrolled=False)
    meta = run.metadata
    return {
        "steps": scenario.clock().n_steps,
        "setup_s": meta["setup_s"],
        "loop_s": meta["loop_s"],
        "executor": meta["executor"],
        "loop_peak_mb": loop_peak[0] if loop_peak else float("nan"),
        "step_arrays_mb": sum(arrays.values()) / 2**20,
        "step_arrays_by_sim_mb": {sid: b / 2**20 for sid, b in sorted(arrays.items())},
        "results_mb": (out / "results.parquet").stat().st_size / 2**20,
    }


def measure(duration: str, step: str, out: Path) -> dict[str, Any]:
    """Run one case in a fresh process: its report plus peak RSS and CPU from ``wait4``."""
    args = [sys.executable, "-m", "benchmarks.memory", "--child", duration, step, str(out)]
    with tempfile.TemporaryFile() as stdout_file, tempfile.TemporaryFile() as stderr_file:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, stdout=stdout_file, stderr=stderr_file)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout_file.seek(0)
        stderr_file.seek(0)
        stdout, stderr = stdout_file.read().decode(), stderr_file.read().decode()
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report.update(
        duration=duration,
        step=step,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
    )
    return report


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the runs."""
    lines = [
        "| run | steps | peak RSS (MB) | peak before finish (MB) | CPU (s) | wall (s) "
        "| loop (us/step) | step arrays in models (MB) | results.parquet (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['duration']} at {r['step']} | {r['steps']:,} | {r['peak_rss_mb']:.0f} "
            f"| {r['loop_peak_mb']:.0f} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} "
            f"| {1e6 * r['loop_s'] / r['steps']:.0f} | {r['step_arrays_mb']:.1f} "
            f"| {r['results_mb']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Measure every duration, print the table, the ratios and the machine line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", default="1d,7d")
    parser.add_argument("--step", default="1s")
    parser.add_argument("--out", type=Path, help="keep the run directories here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        duration, step, out = args.child
        print(json.dumps(child(duration, step, Path(out))))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="twin-memory-") as tmp:
        base = args.out or Path(tmp)
        for duration in args.durations.split(","):
            load = os.getloadavg()[0]
            row = measure(duration, args.step, base / duration)
            row["load_before"] = load
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(table(rows))
    first = rows[0]
    for row in rows[1:]:
        print(
            f"peak RSS {row['duration']} / {first['duration']}: "
            f"{row['peak_rss_mb'] / first['peak_rss_mb']:.3f}"
        )
    loads = ", ".join(f"{r['load_before']:.1f}" for r in rows)
    print(f"load average before each run: {loads}")
    print(f"executor: {', '.join(sorted({r['executor'] for r in rows}))}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
