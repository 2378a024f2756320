import numpy as np
import pandas as pd
import pytest

from twin.forecast import FORECASTERS


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
