"""How cost grows: time and peak memory of ``twin run`` against steps, grid size and assets.

Usage: python -m benchmarks.cost [--quick] [--axes steps,grid,assets] [--skip ID,...]
                                 [--only ID,...] [--executor auto|mosaik|direct]
                                 [--json FILE] [--cache DIR]
       python -m benchmarks.cost --from-json FILE[,FILE...]   (the tables of saved cells)

Three axes, each cell one ``twin run SCENARIO --no-progress`` in a fresh process
(:func:`benchmarks.process.measure_process`: the process's wall, CPU (user + system) and
peak RSS from ``wait4``, interpreter start to ``kpis.json`` written), plus ``run.json``'s
``setup_s``, ``first_step_process_s`` (process start to the first step done),
``loop_s`` and the finish (``wall_s - setup_s - loop_s``: results merged, KPIs):

- **steps**: the demo site (``scenarios/microgrid_day.yaml`` as shipped: 1-LV-rural1,
  two PV plants, a battery, 13 loads, the rule controller) over 1 day at 15, 5 and 1 min;
  in the full matrix also a year at 15 min and at 1 min and 1 day, 1 week and 1 month
  (30 days) at 1 s. x = steps.
- **grid**: the demo site's assets with every load of a SimBench grid (the scenario of
  :mod:`benchmarks.scale`, no controller), a day at 15 min, on grids of 15, 44 and 144
  buses; in the full matrix also the "all" grids of 1,791, 5,479 and 10,458 buses.
  x = buses.
- **assets**: N assets on 1-MV-urban--0-sw (144 buses), a day at 15 min, no controller:
  N/2 PV plants and N/2 loads on the buses where SimBench puts loads, with the same
  totals at every N (the grid's load, split evenly, each load on the SimBench profile of
  a grid load taken in turn; PV of a quarter of that in kWp in four orientations), so
  only the count changes. N = 10, 50, 200; in the full matrix also 500, 1,000, 2,000.

``--quick`` runs the day-scale cells only (seconds each). Per axis and per figure (wall,
CPU, peak RSS, loop) a least-squares line on log-log gives ``figure ~ a x^k``: the
exponent ``k`` and factor ``a`` predict a study's cost before it runs; "fit within" is the
largest factor between a measured cell and the line. ``--skip`` leaves cells out (e.g.
``steps:30d at 1s``): the table shows them extrapolated from their axis's fit, marked.
``--only`` runs some cells; ``--json`` appends each row as it is measured and
``--from-json`` prints the tables of rows saved by one or more runs (the last row of
each cell wins), so a matrix can be measured in parts.

Cache (``TWIN_CACHE_DIR``, ``--cache``, default a temporary directory): a one-step
warm-up run per grid first extracts the grid and builds its solver model (untimed); the
PV series are removed before every cell, so each cell derives its own (a new study's
period), grids and solver models warm. The repository is byte-compiled first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.process import byte_compile, measure_process
from benchmarks.scale import scenario_raw as grid_scenario
from benchmarks.scenarios import day_scenario, write_scenario

ROOT = Path(__file__).resolve().parents[1]
AXES = ("steps", "grid", "assets")
#: What x is on each axis.
X_NAME = {"steps": "steps", "grid": "buses", "assets": "assets"}
#: (duration, step) of the demo site; the first three are day-scale (``--quick``).
STEPS_QUICK = [("1d", "15min"), ("1d", "5min"), ("1d", "1min")]
STEPS_FULL = [
    *STEPS_QUICK,
    ("365d", "15min"),
    ("1d", "1s"),
    ("365d", "1min"),
    ("7d", "1s"),
    ("30d", "1s"),
]
GRIDS_QUICK = ["1-LV-rural1--0-sw", "1-LV-semiurb4--0-sw", "1-MV-urban--0-sw"]
GRIDS_FULL = [
    *GRIDS_QUICK,
    "1-HVMV-urban-all-0-sw",  # 1,791 buses, 1,476 loads
    "1-MVLV-rural-all-0-sw",  # 5,479 buses, 5,373 loads
    "1-MVLV-urban-all-0-sw",  # 10,458 buses, 11,542 loads
]
ASSETS_QUICK = [10, 50, 200]
ASSETS_FULL = [*ASSETS_QUICK, 500, 1000, 2000]
ASSET_GRID = "1-MV-urban--0-sw"
#: PV of the asset axis: this share of the grid's total load, in kWp.
PV_SHARE = 0.25
PV_ORIENTATIONS = [(30, 180), (15, 240), (20, 120), (35, 200)]  # (tilt, azimuth) degrees
FIGURES = {"wall_s": "wall s", "cpu_s": "CPU s", "rss_mb": "peak RSS MB", "loop_s": "loop s"}


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix: a scenario and where it sits on its axis.

    ``x`` is the axis's variable (steps, buses, assets); a grid's buses are known once
    the grid is extracted (``None`` until then, see :func:`with_buses`).
    """

    axis: str
    label: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    x: float | None = None

    @property
    def id(self) -> str:
        """``axis:label``, what ``--skip`` names."""
        return f"{self.axis}:{self.label}"

    @property
    def grid(self) -> str:
        """The scenario's grid."""
        return str(self.raw["grid"])

    @property
    def steps(self) -> int:
        """The scenario's steps (duration / step)."""
        from twin.units import parse_duration_s

        return parse_duration_s(self.raw["duration"]) // parse_duration_s(self.raw["step"])


def steps_cell(duration: str, step: str) -> Cell:
    """The demo site over ``duration`` at ``step``; x = its steps."""
    raw = day_scenario(duration=duration, step=step, name="cost_steps")
    cell = Cell("steps", f"{duration} at {step}", raw)
    return Cell(cell.axis, cell.label, raw, float(cell.steps))


def grid_cell(code: str) -> Cell:
    """The demo site's assets and every load of the SimBench grid ``code``, a day at 15 min."""
    return Cell("grid", code, {**grid_scenario(code, "1d"), "name": "cost_grid"})


def asset_cell(n: int, grid_loads: Sequence[dict[str, Any]]) -> Cell:
    """``n`` assets (n // 2 PV plants, the rest loads) on :data:`ASSET_GRID`, a day at 15 min.

    ``grid_loads``: the grid's loads (``bus``, ``p_kw``, ``q_kvar``, ``profile``). The
    loads share the grid's total load evenly, each on the bus and profile of a grid load
    taken in turn; the PV plants share :data:`PV_SHARE` of it (kWp) on the same buses,
    in :data:`PV_ORIENTATIONS` taken in turn. Totals do not depend on ``n``.
    """
    if n < 2 or not grid_loads:
        raise ValueError(f"expected at least 2 assets and a grid with loads, got {n}")
    n_pv, n_load = n // 2, n - n // 2
    total_p = sum(g["p_kw"] for g in grid_loads)
    total_q = sum(g["q_kvar"] for g in grid_loads)
    loads = []
    for i in range(n_load):
        g = grid_loads[i % len(grid_loads)]
        loads.append(
            {
                "name": f"load_{i:04d}",
                "bus": int(g["bus"]),
                "p_kw": round(total_p / n_load, 6),
                "q_kvar": round(total_q / n_load, 6),
                "profile": str(g["profile"]),
            }
        )
    pv = []
    for i in range(n_pv):
        tilt, azimuth = PV_ORIENTATIONS[i % len(PV_ORIENTATIONS)]
        bus = grid_loads[(i * 7 + 3) % len(grid_loads)]["bus"]  # spread over the feeders
        pv.append(
            {
                "name": f"pv_{i:04d}",
                "bus": int(bus),
                "p_dc_kw": round(PV_SHARE * total_p / n_pv, 6),
                "tilt_deg": tilt,
                "azimuth_deg": azimuth,
            }
        )
    raw = day_scenario(
        grid=ASSET_GRID, controller="none", name="cost_assets", assets={"pv": pv, "load": loads}
    )
    return Cell("assets", f"{n} assets", raw, float(n))


def cells(axes: Iterable[str], quick: bool, grid_loads: Sequence[dict[str, Any]]) -> list[Cell]:
    """The matrix's cells on ``axes`` (day-scale only when ``quick``), axis by axis."""
    out: list[Cell] = []
    for axis in axes:
        if axis == "steps":
            out += [steps_cell(d, s) for d, s in (STEPS_QUICK if quick else STEPS_FULL)]
        elif axis == "grid":
            out += [grid_cell(code) for code in (GRIDS_QUICK if quick else GRIDS_FULL)]
        elif axis == "assets":
            out += [asset_cell(n, grid_loads) for n in (ASSETS_QUICK if quick else ASSETS_FULL)]
        else:
            raise ValueError(f"--axes: expected some of {', '.join(AXES)}, got {axis!r}")
    return out


def with_buses(cell: Cell, buses: int) -> Cell:
    """A grid cell with x = the grid's buses."""
    return Cell(cell.axis, cell.label, cell.raw, float(buses))


def grid_loads_of(code: str) -> list[dict[str, Any]]:
    """The loads of grid ``code`` (bus, p_kw, q_kvar, profile), from the disk cache."""
    from models.gridnet import load_tables

    load = load_tables(code).load
    return [
        {"bus": int(b), "p_kw": 1e3 * p, "q_kvar": 1e3 * q, "profile": prof}
        for b, p, q, prof in zip(load.bus, load.p_mw, load.q_mvar, load.profile, strict=True)
    ]


# ---------------------------------------------------------------- the fit


def fit_power(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """``(a, k)`` of the least-squares line ``log y = log a + k log x``.

    ``None`` with fewer than two distinct positive ``x`` (points with a non-positive or
    non-finite ``x`` or ``y`` are left out).
    """
    import numpy as np

    pairs = [
        (float(x), float(y))
        for x, y in zip(xs, ys, strict=True)
        if x is not None and y is not None and x > 0 and y > 0
        and math.isfinite(x) and math.isfinite(y)
    ]  # fmt: skip
    if len({x for x, _ in pairs}) < 2:
        return None
    lx, ly = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    k, log_a = np.polyfit(lx, ly, 1)
    return float(math.exp(log_a)), float(k)


def fit_within(xs: Sequence[float], ys: Sequence[float], fit: tuple[float, float]) -> float:
    """The largest factor between a point and the fitted line (1.0: every point on it)."""
    a, k = fit
    factors = [max(y / (a * x**k), a * x**k / y) for x, y in zip(xs, ys, strict=True)]
    return max(factors, default=float("nan"))


def fits(
    rows: Sequence[dict[str, Any]], *, largest: bool = False
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Per (axis, figure): ``(a, k, fit within)`` over the measured rows.

    ``largest``: over the larger half of each axis's cells by x only (at least two): the
    exponent where a fixed start-up no longer hides how the cost grows, the one to
    extrapolate with.
    """
    out = {}
    for axis in AXES:
        measured = [r for r in rows if r["axis"] == axis and "wall_s" in r and r.get("x")]
        measured.sort(key=lambda r: r["x"])
        if largest:
            measured = measured[-max(2, math.ceil(len(measured) / 2)) :]
        for key in FIGURES:
            points = [(r["x"], r[key]) for r in measured if r.get(key)]
            fit = fit_power([p[0] for p in points], [p[1] for p in points])
            if fit is not None:
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                out[(axis, key)] = (*fit, fit_within(xs, ys, fit))
    return out


# ---------------------------------------------------------------- running the cells


def _row(cell: Cell) -> dict[str, Any]:
    """What a row says about its cell before it is measured."""
    return {"id": cell.id, "axis": cell.axis, "label": cell.label, "x": cell.x, "steps": cell.steps}


def warm_up(cell: Cell, work: Path, env: dict[str, str]) -> None:
    """One step of ``cell``'s scenario: its grid extracted, its solver model built."""
    raw = {**cell.raw, "duration": cell.raw["step"], "name": "cost_warmup"}
    scenario = write_scenario(raw, work / "warmup.yaml")
    args = [sys.executable, "-m", "twin.cli", "run", str(scenario), "--out", str(work / "warmup")]
    subprocess.run([*args, "--no-progress"], cwd=ROOT, env=env, check=True, capture_output=True)
    shutil.rmtree(work / "warmup", ignore_errors=True)


def measure_cell(cell: Cell, work: Path, env: dict[str, str], cache: Path) -> dict[str, Any]:
    """Run ``cell`` in a fresh process: its row (an ``error`` instead if it failed)."""
    shutil.rmtree(cache / "pv", ignore_errors=True)  # every cell derives its PV series
    here = work / cell.id.replace(":", "_").replace(" ", "_")
    here.mkdir(parents=True, exist_ok=True)
    scenario = write_scenario(cell.raw, here / "scenario.yaml")
    out = here / "run"
    args = [sys.executable, "-m", "twin.cli", "run", str(scenario), "--out", str(out)]
    row = _row(cell)
    row["load_before"] = os.getloadavg()[0]
    try:
        measured = measure_process([*args, "--no-progress"], env, ROOT)
        meta = json.loads((out / "run.json").read_text())
    except (SystemExit, OSError, ValueError) as exc:
        row["error"] = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)
        return row
    finally:
        shutil.rmtree(here, ignore_errors=True)
    row.update({key: measured[key] for key in ("wall_s", "cpu_s", "rss_mb")})
    for key in ("setup_s", "first_step_s", "first_step_process_s", "loop_s", "wall_s"):
        row[f"run_{key}"] = meta.get(key)
    row["loop_s"] = meta.get("loop_s")
    row["executor"] = meta.get("executor", "mosaik")
    row["status"] = meta.get("status")
    return row


def run_matrix(
    selected: Sequence[Cell], skip: set[str], cache: Path, work: Path, out_json: Path | None
) -> list[dict[str, Any]]:
    """Warm up each grid once, then measure every cell not skipped, in order."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    warm: set[str] = set()
    for cell in selected:
        if cell.id in skip:
            rows.append(_row(cell))
            _save(rows[-1], out_json)
            continue
        if cell.grid not in warm:
            warm_up(cell, work, env)
            warm.add(cell.grid)
        if cell.axis == "grid":
            from models.gridnet import load_tables  # the parent reads the warm cache

            cell = with_buses(cell, len(load_tables(cell.grid).bus))
        row = measure_cell(cell, work, env, cache)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        _save(row, out_json)
    return rows


def _save(row: dict[str, Any], out_json: Path | None) -> None:
    """Append ``row`` to ``out_json`` (JSON lines), if given."""
    if out_json is not None:
        with out_json.open("a") as stream:
            stream.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------- the tables


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The cells as a Markdown table; skipped cells extrapolated from their axis's fit.

    The extrapolation uses the fit over the larger half of the axis's cells.
    """
    fitted = fits(rows, largest=True)
    lines = [
        "| axis | cell | x | wall s | CPU s | peak RSS MB | set-up s | first step s "
        "| loop s | loop us/step | finish s | executor | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        x = f"{r['x']:,.0f}" if r.get("x") else "-"
        head = f"| {r['axis']} | {r['label']} | {x} "
        if "error" in r:
            lines.append(head + f"| failed: {r['error']} |" + " |" * 9)
            continue
        if "wall_s" not in r:  # skipped: from the fit
            est = []
            for key in ("wall_s", "cpu_s", "rss_mb"):
                fit = fitted.get((r["axis"], key))
                est.append(f"~{fit[0] * r['x'] ** fit[1]:,.0f}*" if fit and r.get("x") else "-")
            lines.append(head + "| " + " | ".join(est) + " | - | - | - | - | - | - | - |")
            continue
        steps = r["steps"]
        loop, setup = r.get("loop_s"), r.get("run_setup_s")
        finish = None
        if r.get("run_wall_s") is not None and loop is not None and setup is not None:
            finish = r["run_wall_s"] - setup - loop
        per_step = 1e6 * loop / steps if loop is not None and steps else None
        lines.append(
            head + f"| {_num(r['wall_s'])} | {_num(r['cpu_s'])} | {_num(r['rss_mb'], 0)} "
            f"| {_num(setup, 2)} | {_num(r.get('run_first_step_process_s'), 2)} "
            f"| {_num(loop)} | {_num(per_step, 0)} | {_num(finish, 2)} "
            f"| {r.get('executor', '-')} | {_num(r.get('load_before'))} |"
        )
    return "\n".join(lines)


def exponent_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per axis: ``figure ~ a x^k`` for wall, CPU, peak RSS and loop, and how well it fits.

    Over all of the axis's measured cells, and over the larger half of them.
    """
    every, large = fits(rows), fits(rows, largest=True)
    lines = [
        "| axis | x | figure | k | a | fit within | larger half: k | a | fit within |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for axis in AXES:
        for key, name in FIGURES.items():
            if (axis, key) not in every:
                continue
            a, k, within = every[(axis, key)]
            a2, k2, within2 = large[(axis, key)]
            lines.append(
                f"| {axis} | {X_NAME[axis]} | {name} | {k:.2f} | {a:.3g} | {within:.2f}x "
                f"| {k2:.2f} | {a2:.3g} | {within2:.2f}x |"
            )
    return "\n".join(lines)


def latest_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The rows saved in ``paths`` (JSON lines): the last of each cell, measured first.

    A skipped cell's row (no figures) never replaces a measured one. In axis order, then x.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "wall_s" in row or "error" in row or row["id"] not in by_id:
                    by_id[row["id"]] = row
    return sorted(by_id.values(), key=_order)


def _order(row: dict[str, Any]) -> tuple[int, float]:
    """Axis, then x (unknown x last)."""
    return AXES.index(row["axis"]), row.get("x") or math.inf


def _report(rows: Sequence[dict[str, Any]]) -> None:
    from benchmarks.machine import machine

    print(table(rows))
    print()
    print("figure ~ a x^k, least squares on log-log over each axis's measured cells:")
    print(exponent_table(rows))
    if any("wall_s" not in r and "error" not in r for r in rows):
        print("* not measured (--skip): extrapolated from the fit over the larger half")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"machine: {machine()}; commit {commit or '?'}; load average now {os.getloadavg()[0]:.2f}"
    )


def _ids(text: str, selected: Sequence[Cell], option: str) -> set[str]:
    """The cell ids listed in ``text`` (comma-separated), each one of ``selected``."""
    ids = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(ids - {c.id for c in selected})
    if unknown:
        raise SystemExit(f"{option}: no cell {unknown}; cells: {[c.id for c in selected]}")
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="day-scale cells only")
    parser.add_argument("--axes", default=",".join(AXES))
    parser.add_argument("--skip", default="", help="cell ids to extrapolate, comma-separated")
    parser.add_argument("--only", default="", help="run only these cell ids, comma-separated")
    parser.add_argument("--executor", help="TWIN_EXECUTOR of the runs (default: as set)")
    parser.add_argument("--json", type=Path, help="append each cell's row to this file")
    parser.add_argument("--from-json", help="print the tables of saved rows (files, commas)")
    parser.add_argument("--cache", type=Path, help="TWIN_CACHE_DIR (default: a temporary one)")
    args = parser.parse_args()
    if args.from_json:
        _report(latest_rows(Path(p) for p in args.from_json.split(",")))
        return
    axes = [a for a in args.axes.split(",") if a]
    if args.executor:
        os.environ["TWIN_EXECUTOR"] = args.executor
    byte_compile(ROOT)
    with tempfile.TemporaryDirectory(prefix="twin-cost-") as tmp:
        work = Path(tmp)
        cache = args.cache or work / "cache"
        os.environ["TWIN_CACHE_DIR"] = str(cache)  # the runs' and this process's reads
        grid_loads: list[dict[str, Any]] = []
        if "assets" in axes:  # the grid's loads, for the scenarios of the asset axis
            warm_up(grid_cell(ASSET_GRID), work, {**os.environ, "PYTHONPATH": str(ROOT)})
            grid_loads = grid_loads_of(ASSET_GRID)
        selected = cells(axes, args.quick, grid_loads)
        skip, only = _ids(args.skip, selected, "--skip"), _ids(args.only, selected, "--only")
        if only:
            selected = [c for c in selected if c.id in only]
        executor = os.environ.get("TWIN_EXECUTOR", "auto")
        print(f"cost matrix: {len(selected)} cells, executor {executor}", flush=True)
        rows = run_matrix(selected, skip, cache, work, args.json)
    _report(rows)


if __name__ == "__main__":
    main()
