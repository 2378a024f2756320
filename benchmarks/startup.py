"""Start-up of the command line: wall time and peak memory of fresh processes.

Usage: python -m benchmarks.startup [--repeat 5] [--scenarios 'scenarios/*.yaml']
       python -m benchmarks.startup --grid-setup 1-MVLV-urban-all-0-sw [--repeat 2]

Every command runs as a fresh subprocess (``python -m twin.cli ...``), as a user types
it. ``twin validate`` runs once on an empty disk cache ("cold": the grid is extracted
from SimBench's CSV files and stored) and then ``--repeat`` times on that cache
("warm"). The cache is a temporary directory (``TWIN_CACHE_DIR``), never the user's.
The baseline, measured in the same run, is what the cache saves: a fresh process that
imports pandapower and simbench and extracts the scenario's grid. The table gives the
median wall time, the largest peak RSS of the runs (from ``wait4``, per process) and the
ratio of the median to the baseline's.

``--grid-setup CODE`` instead times ``twin run`` of one hour of the day scenario on the
grid ``CODE`` with the grid's own loads (no PV, battery or controller): once on an empty
cache (cold: extraction, solver model), then ``--repeat`` times warm, with ``run.json``'s
``setup_s``, ``first_step_s``, ``first_step_process_s`` and the models' set-up seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.machine import machine

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timing:
    """Wall seconds and peak RSS (MB) of each run of one command."""

    label: str
    cache: str
    wall_s: list[float]
    rss_mb: list[float]

    @property
    def median_s(self) -> float:
        """Median wall time (s)."""
        return statistics.median(self.wall_s)


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh process; it must succeed."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    error = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{error}")
    return wall, usage.ru_maxrss / 1024.0  # Linux reports KiB


def repeat(label: str, cache: str, args: list[str], env: dict[str, str], n: int) -> Timing:
    """``n`` runs of ``args``."""
    runs = [measure(args, env) for _ in range(n)]
    return Timing(label, cache, [w for w, _ in runs], [r for _, r in runs])


def grid_of(scenario: Path) -> str:
    """The grid source a scenario file names."""
    grid = yaml.safe_load(scenario.read_text())["grid"]
    return grid["source"] if isinstance(grid, dict) else str(grid)


def grid_setup(code: str, repeat_n: int) -> None:
    """Set-up of ``twin run`` on grid ``code``: cold once, then warm (see the module doc)."""
    import json

    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(name="grid_setup", grid=code, duration="1h", controller="none")
    raw["assets"] = {"load": [{"from_grid": True}]}
    print(f"machine: {machine()}")
    print(f"twin run, 1 h at 15 min on {code}, the grid's own loads")
    print(f"{'cache':<5} {'wall s':>7} {'RSS MB':>7} {'setup_s':>8} {'first_step_s':>12} "
          f"{'first_step_process_s':>20}  models' set-up s")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="twin-grid-setup-") as tmp:
        scenario = Path(tmp) / "scenario.yaml"
        scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
        out = Path(tmp) / "run"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_CACHE_DIR": str(Path(tmp) / "c")}
        command = [sys.executable, "-m", "twin.cli", "run", str(scenario), "--out", str(out)]
        for cache in ["cold"] + ["warm"] * repeat_n:
            wall, rss = measure([*command, "--no-progress"], env)
            meta = json.loads((out / "run.json").read_text())
            models = {
                k.removesuffix(":setup"): round(v, 3)
                for k, v in meta["component_s"].items()
                if k.endswith(":setup")
            }
            print(f"{cache:<5} {wall:>7.2f} {rss:>7.0f} {meta['setup_s']:>8.2f} "
                  f"{meta['first_step_s']:>12.2f} {meta['first_step_process_s']:>20.2f}  "
                  f"{models}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Warm runs per command.")
    parser.add_argument("--scenarios", default="scenarios/*.yaml", help="Glob under the repo.")
    parser.add_argument("--grid-setup", metavar="CODE", help="Time twin run's set-up on CODE.")
    args = parser.parse_args()
    if args.grid_setup:
        grid_setup(args.grid_setup, args.repeat)
        return
    python, n = sys.executable, args.repeat
    cli = [python, "-m", "twin.cli"]
    print(f"machine: {machine()}")
    rows: list[tuple[Timing, str]] = []  # (timing, grid whose extraction is its baseline)
    baselines: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory(prefix="twin-startup-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_CACHE_DIR": str(Path(tmp) / "0")}
        for i, scenario in enumerate(sorted(ROOT.glob(args.scenarios))):
            grid = grid_of(scenario)
            if grid not in baselines:
                extract = f"import pandapower, simbench; simbench.get_simbench_net({grid!r})"
                label = f"baseline: extract {grid} (pandapower, simbench)"
                baselines[grid] = repeat(label, "-", [python, "-c", extract], env, min(n, 3))
            cold = {**env, "TWIN_CACHE_DIR": str(Path(tmp) / str(i + 1))}  # empty
            name = scenario.relative_to(ROOT)
            command = [*cli, "validate", str(name)]
            rows.append((repeat(f"twin validate {name}", "cold", command, cold, 1), grid))
            rows.append((repeat(f"twin validate {name}", "warm", command, cold, n), grid))
        first = next(iter(baselines))
        import_cli = [python, "-c", "import twin.cli"]
        rows.insert(0, (repeat("python -c 'import twin.cli'", "-", import_cli, env, n), first))
        rows.insert(1, (repeat("twin --help", "-", [*cli, "--help"], env, n), first))
    rows += [(timing, grid) for grid, timing in baselines.items()]
    header = (
        f"{'command':<56} {'cache':<5} {'runs':>4} {'wall s':>7} {'peak RSS MB':>11} "
        f"{'x baseline':>10}"
    )
    print(header)
    print("-" * len(header))
    for timing, grid in rows:
        print(
            f"{timing.label:<56} {timing.cache:<5} {len(timing.wall_s):>4} "
            f"{timing.median_s:>7.2f} {max(timing.rss_mb):>11.0f} "
            f"{timing.median_s / baselines[grid].median_s:>10.2f}"
        )


if __name__ == "__main__":
    main()
