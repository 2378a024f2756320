import pytest

from models.window import window_steps
from tests.conftest import ROOT
from twin.errors import ScenarioError
from twin.limits import (
    BYTES_PER_UNIT_STEP,
    BYTES_PER_VALUE_DISK,
    BYTES_PER_VALUE_MEMORY,
    KPI_WINDOW_STEPS,
    run_size,
)
from twin.scenario import load_scenario

DAY = ROOT / "scenarios" / "microgrid_day.yaml"


def test_a_week_at_one_second_fits_the_default_memory_limit():
    """Refused before results streamed to disk (604,800 x 185 values x 48 B = 5.4 GB)."""
    scenario = load_scenario(DAY, ["duration=7d", "step=1s"])
    size = run_size(scenario, 15, 13, 1)
    assert size.steps == 604_800
    assert size.memory_bytes < 4e9 < size.steps * size.series * 48
    assert size.disk_bytes == size.values * BYTES_PER_VALUE_DISK


def test_memory_stays_flat_past_a_window_of_steps():
    """KPIs and exogenous series are computed a window at a time: a month at 1 s fits."""
    day, week, month = (
        run_size(load_scenario(DAY, [f"duration={d}", "step=1s"]), 15, 13, 1)
        for d in ("1d", "7d", "30d")
    )
    assert month.steps == 2_592_000
    assert day.memory_bytes < week.memory_bytes == month.memory_bytes < 0.5e9
    assert month.memory_bytes == pytest.approx(
        KPI_WINDOW_STEPS * month.kpi_series * BYTES_PER_VALUE_MEMORY
        + window_steps(load_scenario(DAY, ["duration=30d", "step=1s"]).clock(), 32)
        * month.units
        * BYTES_PER_UNIT_STEP
    )
    load_scenario(DAY, ["duration=30d", "step=1s"])  # not refused


def test_a_grid_too_large_for_memory_is_refused_naming_the_limit():
    """What grows is the series the KPIs read at once: buses and lines, times a window."""
    size = run_size(load_scenario(DAY, ["duration=30d", "step=1s"]), 20_000, 20_000, 1)
    assert size.memory_bytes > 4e9


def test_results_too_large_for_the_disk_are_refused_naming_the_limit():
    with pytest.raises(ScenarioError, match=r"GB of disk.*outputs\.max_disk_gb") as caught:
        load_scenario(DAY, ["duration=7d", "step=1s", "outputs.max_disk_gb=1"])
    assert "604,800 steps" in str(caught.value)
    assert "GB of memory" not in str(caught.value)
    load_scenario(DAY, ["duration=7d", "step=1s", "outputs.max_disk_gb=2"])
