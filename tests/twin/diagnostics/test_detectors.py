import numpy as np
import pandas as pd
import pytest
from pvanalytics.quality.gaps import stale_values_diff

from twin.diagnostics.detectors import Cusum, DetectorSettings, Ewma
from twin.diagnostics.quality import Quality, QualitySettings


def test_cusum_alarms_after_h_over_shift_minus_k_steps_and_resets():
    cusum = Cusum(2, k=1.0, h=10.0)
    steps = []
    for n in range(1, 10):
        alarm = cusum.update(np.array([3.0, 0.0]))
        if alarm[0] and not steps:
            steps.append(n)
        assert not alarm[1]
    assert steps == [6]  # S = 2 n > 10 first at n = 6
    cusum.reset(np.array([True, False]))
    assert cusum.pos[0] == 0.0


def test_cusum_is_two_sided_and_skips_nan():
    cusum = Cusum(1, k=1.0, h=10.0)
    for _ in range(6):
        cusum.update(np.array([-3.0]))
    before = cusum.statistic.copy()
    cusum.update(np.array([np.nan]))
    assert cusum.statistic[0] == before[0] == -12.0


def test_ewma_alarms_above_its_asymptotic_limit():
    s = DetectorSettings()
    ewma = Ewma(1, s.lam, s.ewma_limit)
    assert not ewma.update(np.array([1.0]))[0]
    assert ewma.update(np.array([20.0]))[0]
    ewma.reset(np.array([True]))
    assert ewma.mean[0] == 0.0


def test_stale_flag_equals_pvanalytics_on_the_same_series():
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(5.0, 1.0, 200), 2)
    values[50:60] = values[50]
    values[120:124] = values[120]
    settings = QualitySettings(window=6, max_window=6)
    quality = Quality(np.array([1]), settings, step_s=900)
    flags = []
    for v in values:
        quality.update(np.array([v]), np.array([6]))
        flags.append(bool(quality.stale[0]))
    reference = stale_values_diff(pd.Series(values), window=6, mark="end")
    assert flags == reference.tolist()
    assert any(flags)


def test_gap_after_two_missed_reports():
    quality = Quality(np.array([1, 2]), QualitySettings(), step_s=900)
    gaps = []
    for v in [1.0, np.nan, np.nan, np.nan, np.nan]:
        quality.update(np.array([v, v]), np.array([4, 4]))
        gaps.append(quality.gap.tolist())
    assert gaps == [[False, False], [False, False], [True, False], [True, False], [True, True]]


@pytest.mark.parametrize("k", [0.5, 1.0])
def test_cusum_quiet_on_healthy_residuals(k):
    rng = np.random.default_rng(0)
    cusum = Cusum(100, k=k, h=10.0)
    alarms = sum(cusum.update(rng.standard_normal(100)).sum() for _ in range(500))
    assert alarms == 0
