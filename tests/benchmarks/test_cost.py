"""The cost table's pieces: the exponent fit and the cells (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os

import pytest

from benchmarks import cost
from twin.scenario import validate_scenario

GRID_LOADS = [
    {"bus": 4, "p_kw": 430.0, "q_kvar": 100.0, "profile": "G0-A"},
    {"bus": 11, "p_kw": 243.0, "q_kvar": 60.0, "profile": "lv_semiurb4"},
    {"bus": 13, "p_kw": 441.0, "q_kvar": 90.0, "profile": "lv_urban6"},
]


def test_fit_recovers_a_power_law():
    xs = [10.0, 100.0, 1_000.0, 10_000.0]
    a, k = cost.fit_power(xs, [0.5 * x**0.8 for x in xs])
    assert a == pytest.approx(0.5, rel=1e-9)
    assert k == pytest.approx(0.8, rel=1e-9)
    assert cost.fit_within(xs, [0.5 * x**0.8 for x in xs], (a, k)) == pytest.approx(1.0)


def test_fit_is_least_squares_on_log_log():
    # log y = [0, 1, 3] against log x = [0, 1, 2] (base e): slope 1.5, intercept -1/6
    xs = [1.0, math.e, math.e**2]
    ys = [1.0, math.e, math.e**3]
    a, k = cost.fit_power(xs, ys)
    assert k == pytest.approx(1.5)
    assert a == pytest.approx(math.exp(-1 / 6))
    # the middle point is furthest from the line: |1 - (1.5 - 1/6)| = 1/3 in log
    assert cost.fit_within(xs, ys, (a, k)) == pytest.approx(math.exp(1 / 3))


def test_flat_memory_fits_exponent_zero():
    assert cost.fit_power([96, 96_000, 2_592_000], [300.0, 300.0, 300.0])[1] == pytest.approx(0)


@pytest.mark.parametrize(
    ("xs", "ys"),
    [
        ([], []),
        ([10.0], [1.0]),
        ([10.0, 10.0], [1.0, 2.0]),
        ([10.0, 0.0], [1.0, 2.0]),
        ([10.0, 20.0], [1.0, float("nan")]),
    ],
)
def test_fit_needs_two_distinct_positive_points(xs, ys):
    assert cost.fit_power(xs, ys) is None


def test_step_cells_count_steps():
    cells = {c.label: c for c in cost.cells(["steps"], quick=False, grid_loads=[])}
    assert cells["1d at 1s"].x == 86_400
    assert cells["7d at 1s"].x == 604_800
    assert cells["30d at 1s"].x == 2_592_000
    assert cells["365d at 15min"].x == 35_040
    assert cells["365d at 1min"].x == 525_600
    assert cells["1d at 1s"].raw["grid"] == "1-LV-rural1--0-sw"  # the demo site
    assert cells["1d at 1s"].raw["controller"] == "rule"
    assert all(c.steps == c.x for c in cells.values())


def test_quick_cells_are_day_scale():
    quick = cost.cells(cost.AXES, quick=True, grid_loads=GRID_LOADS)
    full = cost.cells(cost.AXES, quick=False, grid_loads=GRID_LOADS)
    assert {c.id for c in quick} < {c.id for c in full}
    assert {c.raw["duration"] for c in quick} == {"1d"}
    assert {c.axis for c in quick} == set(cost.AXES)
    assert max(c.steps for c in quick) == 1_440


def test_grid_cells_take_buses_once_extracted():
    cell = cost.grid_cell("1-MVLV-urban-all-0-sw")
    assert cell.x is None and cell.steps == 96
    assert cell.raw["assets"]["load"] == [{"from_grid": True}]
    assert cost.with_buses(cell, 10_458).x == 10_458


@pytest.mark.parametrize("n", [2, 10, 11, 2000])
def test_asset_cells_hold_n_assets_with_the_same_totals(n):
    cell = cost.asset_cell(n, GRID_LOADS)
    pv, loads = cell.raw["assets"]["pv"], cell.raw["assets"]["load"]
    assert len(pv) + len(loads) == n == cell.x
    assert "battery" not in cell.raw["assets"]
    assert sum(u["p_kw"] for u in loads) == pytest.approx(1_114.0, rel=1e-6)
    assert sum(u["q_kvar"] for u in loads) == pytest.approx(250.0, rel=1e-6)
    assert sum(u["p_dc_kw"] for u in pv) == pytest.approx(cost.PV_SHARE * 1_114.0, rel=1e-6)
    names = [u["name"] for u in pv + loads]
    assert len(set(names)) == n
    assert {u["bus"] for u in pv + loads} <= {g["bus"] for g in GRID_LOADS}
    assert {u["profile"] for u in loads} <= {g["profile"] for g in GRID_LOADS}


def test_asset_cell_is_a_valid_scenario_on_the_mv_grid():
    loads = cost.grid_loads_of(cost.ASSET_GRID)
    assert len(loads) == 139
    scenario = validate_scenario(cost.asset_cell(50, loads).raw)
    assert len(scenario.units("pv")) == 25
    assert len(scenario.units("load")) == 25


def steps_row(x: float, wall_s: float, cpu_s: float, rss_mb: float) -> dict:
    """A measured cell of the steps axis with a loop of 1 ms per step."""
    return {
        "id": f"steps:{x}",
        "axis": "steps",
        "label": str(x),
        "x": x,
        "steps": x,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "rss_mb": rss_mb,
        "loop_s": 1e-3 * x,
    }


def test_skipped_cells_are_extrapolated_from_the_fit():
    rows = [
        steps_row(x, wall_s=2.0 * x**0.5, cpu_s=1e-3 * x, rss_mb=200.0) for x in (100.0, 10_000.0)
    ]
    rows.append({"id": "steps:1e6", "axis": "steps", "label": "1e6", "x": 1e6, "steps": 1e6})
    text = cost.table(rows)
    assert "~2,000*" in text  # wall 2 x 1e6^0.5
    assert "~1,000*" in text  # CPU 1e-3 x 1e6
    exponents = cost.exponent_table(rows)
    assert "| steps | steps | CPU s | 1.00 |" in exponents
    assert "| steps | steps | peak RSS MB | 0.00 |" in exponents


def test_failed_cells_are_shown_and_left_out_of_the_fit():
    rows = [
        {
            "id": "grid:a",
            "axis": "grid",
            "label": "a",
            "x": 15.0,
            "steps": 96,
            "wall_s": 1.0,
            "cpu_s": 1.0,
            "rss_mb": 100.0,
            "loop_s": 0.1,
        },
        {
            "id": "grid:b",
            "axis": "grid",
            "label": "b",
            "x": 150.0,
            "steps": 96,
            "wall_s": 10.0,
            "cpu_s": 10.0,
            "rss_mb": 100.0,
            "loop_s": 1.0,
        },
        {
            "id": "grid:c",
            "axis": "grid",
            "label": "c",
            "x": 1500.0,
            "steps": 96,
            "error": "grid c: refused",
        },
    ]
    assert "failed: grid c: refused" in cost.table(rows)
    assert cost.fits(rows)[("grid", "cpu_s")][1] == pytest.approx(1.0)


def test_saved_rows_combine_measured_wins_over_skipped(tmp_path):
    measured = {
        "id": "steps:b",
        "axis": "steps",
        "label": "b",
        "x": 2.0,
        "steps": 2,
        "wall_s": 1.0,
        "cpu_s": 1.0,
        "rss_mb": 1.0,
        "loop_s": 1.0,
    }
    skipped = {"id": "steps:b", "axis": "steps", "label": "b", "x": 2.0, "steps": 2}
    grid = {
        "id": "grid:a",
        "axis": "grid",
        "label": "a",
        "x": 15.0,
        "steps": 96,
        "error": "refused",
    }
    first = {"id": "steps:a", "axis": "steps", "label": "a", "x": 1.0, "steps": 1}
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text("\n".join(json.dumps(r) for r in (grid, measured)) + "\n")
    two.write_text("\n".join(json.dumps(r) for r in (skipped, first)) + "\n")
    rows = cost.latest_rows([one, two])
    assert [r["id"] for r in rows] == ["steps:a", "steps:b", "grid:a"]
    assert rows[1] == measured


def test_the_larger_half_sees_past_a_fixed_start_up():
    xs = [10.0, 100.0, 10_000.0, 1_000_000.0]
    rows = [steps_row(x, wall_s=2.0 + 1e-3 * x, cpu_s=2.0 + 1e-3 * x, rss_mb=100.0) for x in xs]
    every = cost.fits(rows)[("steps", "cpu_s")][1]
    large = cost.fits(rows, largest=True)[("steps", "cpu_s")][1]
    assert every < 0.6 < large
    assert large == pytest.approx(math.log(1002 / 12) / math.log(100))
    rows.append({"id": "steps:1e7", "axis": "steps", "label": "1e7", "x": 1e7, "steps": 1e7})
    a, k, _ = cost.fits(rows, largest=True)[("steps", "cpu_s")]
    assert f"~{a * 1e7**k:,.0f}*" in cost.table(rows)


def test_a_cell_runs_in_its_own_process_and_a_failing_one_is_a_row(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(cost.ROOT)}
    cell = cost.steps_cell("1h", "15min")
    row = cost.measure_cell(cell, tmp_path / "work", env, tmp_path / "cache")
    assert row["status"] == "finished" and row["steps"] == 4 == row["x"]
    assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["rss_mb"] > 0
    assert row["run_setup_s"] > 0 and row["loop_s"] > 0 and row["run_first_step_process_s"] > 0
    assert not (tmp_path / "work" / "steps_1h_at_15min").exists()  # its run is removed
    broken = cost.Cell("steps", "broken", {**cell.raw, "grid": "1-LV-nowhere--0-sw"}, 4.0)
    failed = cost.measure_cell(broken, tmp_path / "work", env, tmp_path / "cache")
    assert "1-LV-nowhere--0-sw" in failed["error"] and "wall_s" not in failed
