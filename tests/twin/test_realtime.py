import logging

import pytest

from twin.run import run_scenario


@pytest.fixture
def two_hours(day_scenario):
    return day_scenario(duration="2h")  # 8 steps of 15 min


def test_realtime_paces_the_run_and_reports_lateness(two_hours, tmp_path):
    rt_factor = 2.0 / 7200  # two hours of simulated time in two seconds
    result = run_scenario(two_hours, tmp_path / "run", rt_factor=rt_factor)
    rt = result.metadata["realtime"]
    assert rt["steps"] == 8 and rt["rt_factor"] == rt_factor
    # The last step is due 7 x 900 s x rt_factor after the first: the run cannot be faster.
    assert result.metadata["loop_s"] >= 7 * 900 * rt_factor
    # No wall-clock bound on lateness (a busy machine may run late); only what must hold:
    # ordered percentiles, and no step later than the loop itself lasted.
    assert 0.0 <= rt["lateness_p50_s"] <= rt["lateness_p99_s"] <= rt["lateness_max_s"]
    assert rt["lateness_max_s"] <= result.metadata["loop_s"]


def test_a_run_that_falls_behind_warns_once(two_hours, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="twin.realtime")
    # Impossible pacing: every step is late. mosaik would warn at each step (and pytest
    # turns warnings into errors); the twin warns once and summarises.
    result = run_scenario(two_hours, tmp_path / "run", rt_factor=1e-9, warn_late_s=0.0)
    warnings = [r for r in caplog.records if "fell behind real time" in r.getMessage()]
    assert len(warnings) == 1
    rt = result.metadata["realtime"]
    assert rt["steps_late"] >= 7 and rt["lateness_max_s"] > 0.0


def test_fast_runs_report_no_lateness(two_hours, tmp_path):
    assert "realtime" not in run_scenario(two_hours, tmp_path / "run").metadata
