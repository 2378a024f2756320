"""What sensors and the diagnostics engine cost a run: loop time per step, side by side.

Usage: python -m benchmarks.sensors [--duration 7d] [--step 15min] [--repeat 3]

The same scenario (the shipped day scenario stretched to ``--duration``) runs in fresh
processes three ways: without sensors (the baseline: observers read the truth), with the
default sensors on every reported quantity, and with the sensors plus the diagnostics
engine in the loop. Each configuration runs ``--repeat`` times; the table gives the
median loop time per step (``loop_s`` of ``run.json`` / steps), the median wall time,
the engine's own share (``diagnostics.engine_s``) and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.machine import machine

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "no sensors (baseline)": {"sensors": {"enabled": False}},
    "sensors (default)": {},
    "sensors + diagnostics": {"diagnostics": {}},
}


def run_once(raw: dict, out: Path) -> dict:
    """One ``twin run`` in a fresh process; its ``run.json``."""
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", str(path), "--out", str(out)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return json.loads((out / "run.json").read_text())


def main(argv: list[str] | None = None) -> None:
    """Run every configuration; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="7d")
    parser.add_argument("--step", default="15min")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    base = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    base.update(duration=args.duration, step=args.step)
    print(f"# {machine()}")
    print(f"# microgrid_day over {args.duration} at {args.step}, median of {args.repeat}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, changes in CONFIGS.items():
            loops, walls, engines = [], [], []
            for i in range(args.repeat):
                raw = {**base, **changes}
                meta = run_once(raw, Path(tmp) / f"{len(rows)}-{i}")
                steps = meta["diagnostics"]["steps"] if "diagnostics" in meta else None
                n = steps or _steps(meta)
                loops.append(meta["loop_s"] / n * 1e6)
                walls.append(meta["wall_s"])
                engines.append(meta.get("diagnostics", {}).get("engine_s", 0.0) / n * 1e6)
            rows.append(
                (
                    label,
                    statistics.median(loops),
                    statistics.median(walls),
                    statistics.median(engines),
                )
            )
    loop0, wall0 = rows[0][1], rows[0][2]
    print(
        f"{'configuration':<24} {'loop us/step':>13} {'x base':>7} {'wall s':>7} {'x base':>7} "
        f"{'engine us/step':>15} {'engine/wall':>11}"
    )
    for label, loop, wall, engine in rows:
        n_wall = engine * _steps_of(args) / 1e6 / wall if engine else 0.0
        print(
            f"{label:<24} {loop:>13,.0f} {loop / loop0:>7.2f} {wall:>7.2f} {wall / wall0:>7.2f} "
            f"{engine:>15,.0f} {n_wall:>10.1%}"
        )


def _steps(meta: dict) -> int:
    from twin.units import parse_duration_s

    scenario = meta["scenario"]
    return parse_duration_s(scenario["duration"]) // parse_duration_s(scenario["step"])


def _steps_of(args: argparse.Namespace) -> int:
    from twin.units import parse_duration_s

    return parse_duration_s(args.duration) // parse_duration_s(args.step)


if __name__ == "__main__":
    main()
