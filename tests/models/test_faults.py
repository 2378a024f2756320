"""Fault schedules, sensors, and the models' modifier inputs, on analytic cases."""

import numpy as np
import pandas as pd
import pytest

from models.base import Clock
from models.battery import Battery
from models.faults import FAULT_KINDS, FaultSchedule
from models.sensors import Sensors
from twin.assets.schema import BatterySpec

CLOCK = Clock(pd.Timestamp("2016-06-21T00:00:00Z"), 900, 8)


def _schedule(kind: str, severity: float, mode: str = "offset") -> FaultSchedule:
    unit = {
        "name": "f0",
        "kind": kind,
        "target": "x",
        "modifier": f"x:{FAULT_KINDS[kind].modifier}",
        "start_s": 1800,
        "end_s": 3600,
        "severity": severity,
        "mode": mode,
    }
    return FaultSchedule([unit], CLOCK)


EXPECTED = {
    "pv_shading": 0.6,
    "pv_string_outage": 0.6,
    "inverter_trip": 0.0,
    "battery_cooling_failure": 1 / 0.6,
    "capacity_fade": 0.6,
    "soc_misreport": 0.4,
    "sensor_noise": 0.4,
    "sensor_dropout": 1.0,
    "sensor_stuck": 1.0,
    "voltage_sag": 0.6,
    "voltage_spike": 1.4,
    "frequency_event": 0.4,
    "line_outage": 0.0,
    "grid_outage": 1.0,
    "load_spike": 1.4,
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_kind_emits_its_modifier_inside_its_window_only(kind):
    schedule = _schedule(kind, 0.4)
    spec = FAULT_KINDS[kind]
    values, labels = [], []
    for k in range(CLOCK.n_steps):
        out = schedule.step(CLOCK.time_at(k * 900), 900, {})
        values.append(out["value"][0])
        labels.append(out["active"][0])
    assert labels == [0, 0, 1, 1, 0, 0, 0, 0]
    inside = np.array(values)[[2, 3]]
    np.testing.assert_allclose(inside, EXPECTED[kind])
    outside = np.array(values)[[0, 1, 4, 5, 6, 7]]
    np.testing.assert_array_equal(outside, np.full(6, spec.neutral))


def test_drift_grows_with_time_active():
    schedule = _schedule("sensor_drift", 2.0)  # 2 units per hour
    offsets = [schedule.step(CLOCK.time_at(k * 900), 900, {})["value"][0] for k in range(5)]
    np.testing.assert_allclose(offsets, [0.0, 0.0, 0.0, 0.5, 0.0])


def test_faults_on_one_input_combine():
    units = [
        {
            "name": f"f{i}",
            "kind": "pv_shading",
            "target": "pv",
            "modifier": "pv:derate",
            "start_s": 0,
            "end_s": 900,
            "severity": s,
            "mode": "offset",
        }
        for i, s in enumerate((0.5, 0.2))
    ]
    out = FaultSchedule(units, CLOCK).step(CLOCK.time_at(0), 900, {})
    assert out["value"][0] == pytest.approx(0.5 * 0.8)


def _sensor(**inputs):
    sensors = Sensors([{"name": "bess.soc"}], CLOCK, {"seed": 1})
    base = {
        "true": np.array([0.5]),
        "offset": np.zeros(1),
        "noise_std": np.zeros(1),
        "dropout": np.zeros(1),
        "stuck": np.zeros(1),
    }
    return sensors, base


def test_sensor_offset_dropout_and_stuck():
    sensors, base = _sensor()

    def step(**values):
        changed = {k: np.array([v]) for k, v in values.items()}
        return sensors.step(CLOCK.time_at(0), 900, {**base, **changed})

    assert step(true=0.5)["measured"][0] == 0.5
    assert step(true=0.55, offset=0.3)["measured"][0] == pytest.approx(0.85)
    out = step(true=0.6, dropout=1.0)
    assert np.isnan(out["measured"][0]) and out["value"][0] == pytest.approx(0.85)  # held
    assert step(true=0.7, stuck=1.0)["measured"][0] == pytest.approx(0.85)
    assert step(true=0.7)["measured"][0] == 0.7


def test_sensor_noise_has_the_severity_as_its_spread():
    sensors, base = _sensor()
    values = [
        sensors.step(CLOCK.time_at(0), 900, {**base, "noise_std": np.array([0.1])})["measured"][0]
        for _ in range(4000)
    ]
    assert np.std(values) == pytest.approx(0.1, rel=0.05)
    assert np.mean(values) == pytest.approx(0.5, abs=0.01)


def _battery(**params):
    """A 10 kWh / 5 kW battery without losses or SoC limits (schema defaults otherwise)."""
    lossless = {"eta_ch": 1.0, "eta_dis": 1.0, "soc_min": 0.0, "soc_max": 1.0}
    unit = BatterySpec(name="b", bus=0, e_kwh=10.0, p_max_kw=5.0, **{**lossless, **params})
    return Battery([unit.model_dump()], CLOCK)


def test_battery_derates_linearly_then_trips_on_temperature():
    battery = _battery(t_init_c=50.0, t_derate_c=45.0, t_trip_c=55.0)
    out = battery.step(CLOCK.time_at(0), 900, {"p_set_kw": np.array([5.0])})
    assert out["power_avail"][0] == pytest.approx(0.5) and out["p_kw"][0] == pytest.approx(2.5)
    hot = _battery(t_init_c=56.0)
    out = hot.step(CLOCK.time_at(0), 900, {"p_set_kw": np.array([5.0])})
    assert out["p_kw"][0] == 0.0 and out["tripped"][0] == 1.0


def test_inverter_trip_and_capacity_fade_on_a_battery():
    battery = _battery()
    off = battery.step(
        CLOCK.time_at(0), 900, {"p_set_kw": np.array([5.0]), "derate": np.array([0.0])}
    )
    assert off["p_kw"][0] == 0.0
    faded = battery.step(
        CLOCK.time_at(900), 900, {"p_set_kw": np.array([0.0]), "capacity_factor": np.array([0.5])}
    )
    assert faded["e_kwh"][0] == pytest.approx(5.0)  # the stored 5 kWh are kept ...
    assert faded["soc"][0] == pytest.approx(1.0)  # ... in half the usable capacity


def test_cooling_failure_multiplies_the_thermal_resistance():
    """One step with constant losses: T = Ta + P R (1 - exp(-dt / (R C)))."""
    battery = _battery(eta_dis=0.9)
    out = battery.step(
        CLOCK.time_at(0), 900, {"p_set_kw": np.array([5.0]), "cooling_factor": np.array([10.0])}
    )
    loss_kw, r_th, c_th = out["p_loss_kw"][0], 10.0 * 10.0, 200.0
    expected = 25.0 + loss_kw * r_th * (1.0 - np.exp(-900.0 / (r_th * c_th)))
    assert out["t_c"][0] == pytest.approx(expected, rel=1e-9)
