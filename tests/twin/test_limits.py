import pytest

from tests.conftest import ROOT
from twin.errors import ScenarioError
from twin.limits import BYTES_PER_VALUE_DISK, run_size
from twin.scenario import load_scenario

DAY = ROOT / "scenarios" / "microgrid_day.yaml"


def test_a_week_at_one_second_fits_the_default_memory_limit():
    """Refused before results streamed to disk (604,800 x 185 values x 48 B = 5.4 GB)."""
    scenario = load_scenario(DAY, ["duration=7d", "step=1s"])
    size = run_size(scenario, 15, 13, 1)
    assert size.steps == 604_800
    assert size.memory_bytes < 4e9 < size.steps * size.series * 48
    assert size.disk_bytes == size.values * BYTES_PER_VALUE_DISK


def test_results_too_large_for_the_disk_are_refused_naming_the_limit():
    with pytest.raises(ScenarioError, match=r"GB of disk.*outputs\.max_disk_gb") as caught:
        load_scenario(DAY, ["duration=7d", "step=1s", "outputs.max_disk_gb=1"])
    assert "604,800 steps" in str(caught.value)
    assert "GB of memory" not in str(caught.value)
    load_scenario(DAY, ["duration=7d", "step=1s", "outputs.max_disk_gb=2"])
