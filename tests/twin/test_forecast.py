"""Forecasters: perfect, persistence, regression and the modelled day-ahead service."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.forecast import (
    DAY_AHEAD_ERROR,
    DAY_AHEAD_TRUST,
    FORECASTERS,
    RATIO_FLOOR,
    DayAheadForecaster,
    day_ahead_error,
    day_ahead_log_ratio,
    day_ahead_seed,
    day_ahead_trust,
)


def series(days: int, steps_per_day: int = 24, noise: float = 0.0, seed: int = 0):
    times = pd.date_range("2016-05-01", periods=days * steps_per_day, freq="h", tz="UTC")
    hour = times.hour.to_numpy()
    clean = 10 * np.sin(2 * np.pi * hour / 24) + 3
    rng = np.random.default_rng(seed)
    return times, clean + noise * rng.normal(size=len(times)), clean


def build(name: str, noise: float = 0.0):
    times, values, clean = series(30, noise=noise)
    history, run = values[: 28 * 24], values[28 * 24 :]
    return FORECASTERS[name](history, times, 24, run), run, clean[28 * 24 :]


def test_perfect_returns_the_truth():
    fc, run, _ = build("perfect")
    np.testing.assert_array_equal(fc.predict(5, 10), run[5:15])


def test_persistence_repeats_yesterday_including_measurements():
    fc, run, _ = build("persistence", noise=1.0)
    for k in range(30):
        fc.observe(k, run[k])
    np.testing.assert_array_equal(fc.predict(30, 18), run[6:24])


def test_regression_beats_persistence_on_noisy_periodic_data():
    reg, run, clean = build("regression", noise=2.0)
    per, _, _ = build("persistence", noise=2.0)
    errors = {}
    for name, fc in (("regression", reg), ("persistence", per)):
        for k in range(24):
            fc.observe(k, run[k])
        errors[name] = np.mean(np.abs(fc.predict(24, 24) - clean[24:48]))
    assert errors["regression"] < 0.7 * errors["persistence"]


def test_regression_needs_history():
    times, values, _ = series(2)
    with pytest.raises(ValueError, match="two days of history"):
        FORECASTERS["regression"](values[:24], times, 24)


# -- the modelled day-ahead forecast ---------------------------------------------------
def day_ahead_case(days: int = 6, seed: int = 3, error=(0.0, 0.0), scale=None, trust=1.0):
    """PV and load over ``days`` days (two of history), hourly; PV scaled per day."""
    times = pd.date_range("2024-02-26", periods=days * 24, freq="h", tz="Europe/Berlin")
    hour = times.hour.to_numpy()
    scale = np.linspace(0.5, 1.5, days) if scale is None else np.asarray(scale)
    pv = np.clip(np.sin(np.pi * (hour - 6) / 12), 0, None) * 10 * np.repeat(scale, 24)
    load = -(4 + np.cos(2 * np.pi * hour / 24)) * np.repeat(scale[::-1], 24)
    n_hist = 48
    fc = DayAheadForecaster(pv, load, n_hist, times, 24, seed, error, trust)
    return fc, pv, load, n_hist


def test_day_ahead_without_error_knows_each_days_energy():
    fc, pv, load, n_hist = day_ahead_case()
    for d in range(2, 6):
        today, before = slice(24 * d, 24 * d + 24), slice(24 * d - 24, 24 * d)
        for part, series in enumerate((pv, load)):
            floor = RATIO_FLOOR * abs(series[before].sum()) + 1e-9
            energy = fc.factors[d, part] * (abs(series[before].sum()) + floor)
            assert energy == pytest.approx(abs(series[today].sum()) + floor, rel=1e-12)


def test_day_ahead_is_yesterdays_profile_times_the_days_factor_across_midnight():
    fc, pv, load, n_hist = day_ahead_case(error=(0.3, 0.1))
    for k in range(30):  # metered: the run's own values
        fc.observe(k, pv[n_hist + k] + load[n_hist + k])
    k, horizon = 30, 24  # 06:00 of the run's second day to 06:00 of its third
    steps = n_hist + k + np.arange(horizon)
    day = steps // 24  # the forecaster's day index (the series starts at midnight)
    expected = fc.factors[day, 0] * pv[steps - 24] + fc.factors[day, 1] * load[steps - 24]
    np.testing.assert_allclose(fc.predict(k, horizon), expected, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), permutation_seed=st.integers(0, 1000))
def test_day_ahead_reads_the_future_only_through_each_days_energy(seed, permutation_seed):
    fc, pv, load, n_hist = day_ahead_case(seed=seed, error=(0.3, 0.1))
    shuffled_pv, shuffled_load = pv.copy(), load.copy()
    future = slice(n_hist + 24, n_hist + 48)  # the run's second day, reshuffled in time
    order = np.random.default_rng(permutation_seed).permutation(24)
    shuffled_pv[future] = pv[future][order]
    shuffled_load[future] = load[future][order]
    times = pd.date_range("2024-02-26", periods=len(pv), freq="h", tz="Europe/Berlin")
    other = DayAheadForecaster(shuffled_pv, shuffled_load, n_hist, times, 24, seed, (0.3, 0.1), 1.0)
    np.testing.assert_allclose(other.predict(0, 48), fc.predict(0, 48), rtol=1e-12)


def test_day_ahead_errors_are_seeded_by_date_and_log_normal_of_their_size():
    first = day_ahead_case(seed=11, error=(0.3, 0.1))[0]
    again = day_ahead_case(seed=11, error=(0.3, 0.1))[0]
    other = day_ahead_case(seed=12, error=(0.3, 0.1))[0]
    np.testing.assert_array_equal(first.factors, again.factors)
    assert not np.allclose(first.factors[2:], other.factors[2:])
    flat, before = np.ones(24), np.ones(24)  # a flat day equal to the one before: truth 0
    draws = np.array(
        [
            day_ahead_log_ratio((flat, -flat), (before, -before), 5, 738_000 + d, (0.3, 0.1))
            for d in range(2000)
        ]
    )
    np.testing.assert_allclose(draws.mean(axis=0), [0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(draws.std(axis=0), [0.3, 0.1], rtol=0.05)


def test_day_ahead_error_reads_control_options():
    assert day_ahead_error(None) == DAY_AHEAD_ERROR
    assert day_ahead_error({"day_ahead_error_pv": 0.5}) == (0.5, DAY_AHEAD_ERROR[1])
    assert day_ahead_error({"day_ahead_error_pv": 0, "day_ahead_error_load": 0}) == (0.0, 0.0)


def test_day_ahead_seed_is_the_runs_unless_pinned():
    assert day_ahead_seed(None, {"seed": 9}) == 9
    assert day_ahead_seed({"day_ahead_seed": 3}, {"seed": 9}) == 3
    assert day_ahead_seed({"day_ahead_seed": None}, {}) == 0


def test_day_ahead_trust_moves_persistence_part_of_the_way_in_log_terms():
    full = day_ahead_case(error=(0.3, 0.1))[0]
    half = day_ahead_case(error=(0.3, 0.1), trust=0.5)[0]
    none = day_ahead_case(error=(0.3, 0.1), trust=0.0)[0]
    np.testing.assert_allclose(np.log(half.factors), 0.5 * np.log(full.factors), atol=1e-12)
    np.testing.assert_array_equal(none.factors, np.ones_like(none.factors))  # persistence
    assert day_ahead_trust(None) == DAY_AHEAD_TRUST
    assert day_ahead_trust({"day_ahead_trust": 1}) == 1.0
