"""The sensor bank: noise, resolution, reporting interval and dropouts on analytic cases."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.sensors import SENSOR_CLASSES, Imperfection, SensorBank


def _bank(imperfection, n=1, seed=0, initial=None):
    return SensorBank(n, imperfection, np.random.default_rng(seed), initial)


def test_a_perfect_sensor_reports_the_truth_every_step():
    bank = _bank(Imperfection())
    for t in range(0, 900 * 5, 900):
        measured, value = bank.measure(np.array([3.21]), t)
        assert measured[0] == value[0] == 3.21


def test_noise_is_a_share_of_the_reading_plus_a_floor():
    bank = _bank(Imperfection(noise_pct=1.0, noise_abs=0.3), n=20_000)
    measured, _ = bank.measure(np.full(20_000, 40.0), 0)
    assert np.std(measured - 40.0) == pytest.approx(np.hypot(0.4, 0.3), rel=0.03)
    assert np.mean(measured) == pytest.approx(40.0, abs=0.02)


def test_readings_are_rounded_to_the_resolution():
    measured, _ = _bank(Imperfection(resolution=0.1)).measure(np.array([1.234]), 0)
    assert measured[0] == pytest.approx(1.2)


def test_a_sensor_reports_once_per_interval_and_observers_hold_the_last_value():
    bank = _bank(Imperfection(interval_s=60))
    reports = []
    for t in range(0, 180):
        measured, value = bank.measure(np.array([float(t)]), t)
        reports.append(measured[0])
        assert value[0] == 60 * (t // 60)  # the last report
    assert [t for t, m in enumerate(reports) if not np.isnan(m)] == [0, 60, 120]


def test_a_step_longer_than_the_interval_reports_every_step():
    bank = _bank(Imperfection(interval_s=5))
    assert all(not np.isnan(bank.measure(np.array([1.0]), t)[0][0]) for t in range(0, 9000, 900))


def test_dropouts_happen_at_their_probability():
    bank = _bank(Imperfection(dropout_p=0.01), n=100_000)
    measured, value = bank.measure(np.ones(100_000), 0)
    assert np.isnan(measured).mean() == pytest.approx(0.01, rel=0.1)
    assert np.all(value == 1.0)  # nothing measured yet: observers see the truth


def test_fault_modifiers_act_after_the_imperfection():
    bank = _bank(Imperfection(resolution=0.01))
    assert bank.measure(np.array([1.0]), 0, {"offset": np.array([0.5])})[0][0] == 1.5
    held = bank.measure(np.array([9.0]), 900, {"stuck": np.array([1.0])})[0][0]
    assert held == 1.5
    measured, value = bank.measure(np.array([2.0]), 1800, {"dropout": np.array([1.0])})
    assert np.isnan(measured[0]) and value[0] == 1.5


def test_the_same_seed_gives_the_same_readings():
    def readings(seed):
        bank = _bank(SENSOR_CLASSES["power"], n=5, seed=seed)
        return np.array([bank.measure(np.arange(5.0), t)[0] for t in range(0, 60, 5)])

    np.testing.assert_array_equal(readings(1), readings(1))
    assert not np.array_equal(readings(1), readings(2))


@settings(max_examples=60, deadline=None)
@example(true=1.0, imperfection=Imperfection(noise_abs=1.0, resolution=5e-324))  # overflowed
@given(
    true=st.floats(-1e4, 1e4),
    imperfection=st.builds(
        Imperfection,
        noise_pct=st.floats(0, 10),
        noise_abs=st.floats(0, 10),
        resolution=st.floats(0, 1),
        interval_s=st.integers(0, 3600),
        dropout_p=st.floats(0, 0.5),
    ),
)
def test_readings_are_finite_or_missing_and_near_the_truth(true, imperfection):
    bank = _bank(imperfection, n=50)
    measured, value = bank.measure(np.full(50, true), 0)
    ok = measured[~np.isnan(measured)]
    assert np.all(np.isfinite(ok)) and np.all(np.isfinite(value))
    spread = np.hypot(imperfection.noise_pct / 100 * abs(true), imperfection.noise_abs)
    assert np.all(np.abs(ok - true) <= 7 * spread + imperfection.resolution + 1e-9)


def _pair(imperfections, initial, offsets, seed=3):
    """The same bank twice: one told each element's offset, one given per-element times."""
    n = len(imperfections)
    one = SensorBank(n, imperfections, np.random.default_rng(seed), initial, offsets)
    each = SensorBank(n, imperfections, np.random.default_rng(seed), initial)
    return one, each


@pytest.mark.parametrize(
    "classes", [("power", "soc", "soh", "temperature"), ("power", "frequency")]
)
def test_one_time_with_offsets_measures_as_per_element_times(classes):
    """Between reports a bank given one time skips its checks; the readings are the same."""
    imperfections = [SENSOR_CLASSES[c] for c in classes for _ in range(2)]
    n = len(imperfections)
    initial = np.where(np.arange(n) % 2 == 0, np.nan, 0.5)  # some states known at the start
    offsets = np.where(np.arange(n) % 3 == 1, 1, 0)  # a state's: at the step's end
    one, each = _pair(imperfections, initial, offsets)
    rng = np.random.default_rng(9)
    times = [*range(0, 4000), 3990, 3995, *range(4000, 4100, 7)]  # back in time once
    for t in times:
        true = rng.normal(10.0, 3.0, n)
        modifiers = {}
        if 1000 <= t < 1500:
            modifiers = {"stuck": np.ones(n), "offset": np.full(n, 0.5)}
        elif 2000 <= t < 2100:
            modifiers = {"dropout": np.ones(n), "noise_std": np.full(n, 2.0)}
        got = one.measure(true, t, modifiers)
        expected = each.measure(true, t + offsets, modifiers)
        for left, right in zip(got, expected, strict=True):
            np.testing.assert_array_equal(left, right)


def test_a_silent_step_returns_arrays_of_its_own():
    bank = _bank(SENSOR_CLASSES["power"], n=2)
    bank.measure(np.array([1.0, 2.0]), 0)
    for t in (1, 2, 3):
        measured, value = bank.measure(np.array([1.0, 2.0]), t)
        assert np.isnan(measured).all()
        measured[:] = 7.0  # a caller writing into what it got changes nothing of the bank
        value[:] = 7.0
    measured, value = bank.measure(np.array([1.0, 2.0]), 4)
    assert np.isnan(measured).all() and (value != 7.0).all()


def test_offsets_are_one_per_element_and_not_negative():
    with pytest.raises(ValueError, match="expected 2 offsets"):
        SensorBank(2, Imperfection(), np.random.default_rng(0), offsets=np.array([0, -1]))
    with pytest.raises(ValueError, match="expected 2 offsets"):
        SensorBank(2, Imperfection(), np.random.default_rng(0), offsets=np.array([0]))
