import math

import pytest

from adapters.mqtt.residuals import ResidualStats


def test_run_and_window_statistics_match_their_definitions():
    stats = ResidualStats(window=3)
    for r in [1.0, -3.0, math.nan, 2.0, 4.0]:
        stats.add(r)
    run = stats.run()
    assert run["n"] == 4
    assert run["bias"] == pytest.approx((1 - 3 + 2 + 4) / 4)
    assert run["rmse"] == pytest.approx(math.sqrt((1 + 9 + 4 + 16) / 4))
    assert run["max_abs"] == 4.0
    recent = stats.recent()  # window: nan, 2, 4
    assert recent["n"] == 2
    assert recent["bias"] == pytest.approx(3.0)
    assert recent["rmse"] == pytest.approx(math.sqrt(10.0))
    assert recent["max_abs"] == 4.0


def test_no_measurement_gives_nan_not_zero():
    stats = ResidualStats(window=2)
    stats.add(math.nan)
    assert math.isnan(stats.run()["rmse"]) and stats.run()["n"] == 0


def test_window_must_hold_a_step():
    with pytest.raises(ValueError, match="at least one step"):
        ResidualStats(window=0)
