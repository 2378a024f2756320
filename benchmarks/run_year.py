"""Time a year of 15-minute steps (scenarios/microgrid_year.yaml) and split the cost.

Usage: python benchmarks/run_year.py [--scenario FILE] [--set path=value ...]

Prints wall time and, per component, total seconds and microseconds per step:
the power flow (grid model), the other models, the generic wrapper's input/output
handling, recording into arrays, and mosaik's own scheduling and data exchange (the rest
of the loop, measured as loop time minus everything above).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.machine import machine
from twin.run import run_scenario
from twin.scenario import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/microgrid_year.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    scenario = load_scenario(args.scenario, args.overrides)
    steps = scenario.clock().n_steps
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = run_scenario(scenario, out, progress=True)
    wall = time.perf_counter() - started
    meta = result.metadata
    parts = meta["component_s"]
    grid = parts.get("grid", 0.0)
    models = sum(v for k, v in parts.items() if ":" not in k and k != "grid")
    wrapper = sum(v for k, v in parts.items() if k.endswith(":wrapper"))
    recording = sum(v for k, v in parts.items() if k.endswith(":recording"))
    sensors = sum(v for k, v in parts.items() if k.endswith(":sensors"))
    mosaik = meta["loop_s"] - grid - models - wrapper - recording - sensors
    rows = [
        ("power flow (grid model)", grid),
        ("other models (pv, load, battery, tariff, controller)", models),
        ("generic wrapper (inputs/outputs)", wrapper),
        ("sensors (measuring every reported output)", sensors),
        ("recording (arrays; Parquet parts at finalize)", recording),
        ("mosaik scheduling and data exchange", mosaik),
        ("loop total", meta["loop_s"]),
        ("setup (grid, weather, PV precompute, world)", meta["setup_s"]),
        ("merge Parquet parts, KPIs", meta["wall_s"] - meta["setup_s"] - meta["loop_s"]),
    ]
    print(f"\n{scenario.name}: {steps} steps, solver={scenario.grid.solver}")
    print(f"machine: {machine()}")
    print(f"{'component':<55} {'total s':>9} {'us/step':>9}")
    for label, seconds in rows:
        print(f"{label:<55} {seconds:>9.2f} {seconds / steps * 1e6:>9.0f}")
    print(f"{'wall (whole run incl. process work)':<55} {wall:>9.2f}")


if __name__ == "__main__":
    main()
