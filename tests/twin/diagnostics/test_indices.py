import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from twin.diagnostics.battery import BatteryTracker
from twin.diagnostics.expected import temperature_corrected
from twin.diagnostics.indices import (
    pv_performance,
    soc_consistency,
    thermal_stress,
    voltage_band,
)

floats = st.floats(-1e4, 1e4) | st.just(float("nan"))


def test_pv_shaded_by_30_percent_has_performance_index_070():
    rng = np.random.default_rng(3)
    p_model = np.linspace(4.0, 40.0, 50)
    t_model = np.linspace(20.0, 55.0, 50)
    gamma = np.full(50, -0.0037)
    t_meas = t_model + rng.normal(0, 0.3, 50)
    measured = 0.7 * p_model * (1 + rng.normal(0, 0.005, 50))
    expected = temperature_corrected(p_model, t_model, t_meas, gamma)
    index = pv_performance(measured, expected, np.full(50, 40.9))
    assert np.all(np.abs(index - 0.70) <= 0.02)


def test_pv_performance_undefined_at_night():
    assert np.isnan(pv_performance(np.array([0.0]), np.array([0.1]), np.array([40.0])))[0]


@given(floats, floats, st.floats(0.1, 1e3))
def test_indices_in_unit_interval_or_nan(a, b, c):
    for value in (
        pv_performance(np.array([a]), np.array([b]), np.array([c]))[0],
        thermal_stress(np.array([a]), np.array([45.0]), np.array([55.0]))[0],
        soc_consistency(np.array([a]))[0],
        voltage_band(np.array([a]), 0.9, 1.1)[0],
    ):
        assert np.isnan(value) or 0.0 <= value <= 1.0


def test_voltage_band_inner_and_limits():
    v = np.array([1.0, 0.95, 0.925, 0.9, 1.1, 1.075, np.nan])
    assert np.allclose(voltage_band(v, 0.9, 1.1), [1, 1, 0.5, 0, 0, 0.5, np.nan], equal_nan=True)


def _cycle(tracker, capacity, soc, p_kw, steps, rng):
    """Charge or discharge at p_kw for steps; return the SoC reached."""
    for _ in range(steps):
        p = p_kw
        de = (-p / 0.95 if p > 0 else -p * 0.95) * tracker.dt_h
        soc = soc + de / capacity
        reading = round(soc + rng.normal(0, 0.002), 3)
        tracker.update(
            np.array([p * (1 + rng.normal(0, 0.005))]), np.array([reading]), np.array([25.0])
        )
    return soc


def test_capacity_fade_of_20_percent_shows_within_5_percent_after_two_full_cycles():
    ratings = dict(e_kwh=60.0, p_max_kw=20.0, eta_ch=0.95, eta_dis=0.95, soc_min=0.1, soc_max=0.9)
    tracker = BatteryTracker([ratings], step_s=900)
    rng = np.random.default_rng(5)
    capacity, soc = 0.8 * 60.0, 0.1
    for _ in range(2):  # two full cycles 0.1 -> 0.9 -> 0.1 at 10 kW
        soc = _cycle(tracker, capacity, soc, -10.0, 16, rng)
        soc = _cycle(tracker, capacity, soc, 10.0, 16, rng)
    soh = tracker.capacity_kwh[0] / 60.0
    assert abs(soh - 0.8) <= 0.05 * 0.8
