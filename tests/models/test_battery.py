import math

import numpy as np
import pytest

from models.base import differs
from models.battery import Battery, thermal_step
from tests.conftest import make_clock

BASE = {
    "name": "b",
    "e_kwh": 10.0,
    "p_max_kw": 5.0,
    "eta_ch": 0.9,
    "eta_dis": 0.95,
    "soc_min": 0.1,
    "soc_max": 0.9,
    "soc_init": 0.2,
    "soh_init": 1.0,
    "t_init_c": 25.0,
    "t_ambient_c": 25.0,
    "r_th_k_per_kw": 10.0,
    "c_th_kj_per_k": 200.0,
    "cycle_life_efc": math.inf,
    "calendar_life_years": math.inf,
    "soh_eol": 0.8,
}


def battery(**changes) -> Battery:
    return Battery([{**BASE, **changes}], make_clock(step_s=60, n=600))


def run(b: Battery, p_set_kw: float, steps: int, dt_s: int = 60) -> list[dict]:
    now = b.clock.time_at(0)
    return [b.step(now, dt_s, {"p_set_kw": np.array([p_set_kw])}) for _ in range(steps)]


def test_constant_charge_reaches_analytic_soc():
    b = battery()
    out = run(b, -2.0, 60)  # 2 kW for one hour
    expected = 0.2 + 2.0 * 1.0 * 0.9 / 10.0
    assert out[-1]["soc"][0] == pytest.approx(expected, abs=1e-12)
    assert all(o["p_kw"][0] == pytest.approx(-2.0) for o in out)


def test_constant_discharge_reaches_analytic_soc():
    b = battery(soc_init=0.8)
    out = run(b, 3.0, 30)  # 3 kW for half an hour
    expected = 0.8 - 3.0 * 0.5 / 0.95 / 10.0
    assert out[-1]["soc"][0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("p_set_kw", [-50.0, -5.0, 5.0, 50.0])
def test_limits_are_respected(p_set_kw):
    b = battery(soc_init=0.5)
    out = run(b, p_set_kw, 200)
    p = np.array([o["p_kw"][0] for o in out])
    soc = np.array([o["soc"][0] for o in out])
    assert np.all(np.abs(p) <= 5.0 + 1e-12)
    assert np.all(soc >= 0.1 - 1e-12) and np.all(soc <= 0.9 + 1e-12)
    # It ends exactly at the limit in the direction it was pushed.
    assert soc[-1] == pytest.approx(0.9 if p_set_kw < 0 else 0.1, abs=1e-9)


def test_losses_heat_the_battery_to_the_analytic_steady_state():
    b = battery(soc_init=0.15)
    out = run(b, -5.0, 20)
    p_loss = 5.0 * (1 - 0.9)
    assert out[-1]["p_loss_kw"][0] == pytest.approx(p_loss)
    tau = 10.0 * 200.0
    expected = 25.0 + 10.0 * p_loss * (1 - math.exp(-20 * 60 / tau))
    assert out[-1]["t_c"][0] == pytest.approx(expected, rel=1e-12)


def test_thermal_step_is_exact_over_split_steps():
    args = (np.array([40.0]), np.array([20.0]), np.array([0.3]), np.array([8.0]), np.array([90.0]))
    once = thermal_step(*args, 600.0)
    t = args[0]
    for _ in range(10):
        t = thermal_step(t, *args[1:], 60.0)
    assert t[0] == pytest.approx(once[0], rel=1e-12)


def test_cycle_ageing_reaches_end_of_life_after_cycle_life():
    # Cycle fade is (1 - soh_eol) / cycle_life per EFC of the nominal capacity. Full
    # cycles of the *faded* capacity S move S/2 EFC per half cycle, so each half cycle
    # multiplies S by (1 - 0.2 / 100 / 2): after 100 cycles S = 0.999 ** 200.
    b = battery(
        cycle_life_efc=100.0, p_max_kw=100.0, eta_ch=1.0, eta_dis=1.0, soc_min=0.0, soc_max=1.0
    )
    b.soc[:] = 0.0
    dt_s = 3600
    for _ in range(100):
        cap = b.e_kwh * b.soh
        b.step(b.clock.time_at(0), dt_s, {"p_set_kw": -cap})  # full charge in 1 h
        cap = b.e_kwh * b.soh
        b.step(b.clock.time_at(0), dt_s, {"p_set_kw": cap * b.soc})
    assert b.soh[0] == pytest.approx(0.999**200, rel=1e-12)


def test_calendar_ageing_doubles_every_10_kelvin():
    fades = []
    for t_c in (25.0, 35.0):
        b = battery(calendar_life_years=10.0, t_init_c=t_c, t_ambient_c=t_c)
        b.step(b.clock.time_at(0), 86400, {"p_set_kw": np.zeros(1)})
        fades.append(1.0 - b.soh[0])
    assert fades[0] == pytest.approx(0.2 / (10 * 365.25), rel=1e-9)
    assert fades[1] / fades[0] == pytest.approx(2.0, rel=1e-9)


def test_sign_convention_discharge_is_positive():
    b = battery(soc_init=0.5)
    (out,) = run(b, 2.0, 1)
    assert out["p_kw"][0] > 0 and out["soc"][0] < 0.5


def test_the_states_a_step_reports_are_the_state_after_it():
    """The end row of a run is state(): a step must report the very same values."""
    b = battery(cycle_life_efc=50)  # fast fade: SoH moves visibly every step
    for p_set in (-20.0, 20.0, -5.0):
        out = run(b, p_set, 3)[-1]
        after = b.state()
        for name in ("soc", "soh", "t_c", "e_kwh"):
            assert out[name] == pytest.approx(after[name], rel=0, abs=0), name


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0, 2.0], [1.0, 2.0]),
        ([1.0, 2.0], [1.0, 2.5]),
        ([np.nan], [np.nan]),
        ([1.0], [1.0, 1.0]),
        ([0.0], [-0.0]),
    ],
)
def test_differs_is_not_array_equal(a, b):
    a, b = np.array(a), np.array(b)
    assert differs(a, b) is (not np.array_equal(a, b))


def test_a_capacity_step_keeps_the_stored_energy_once():
    b = battery(soc_init=0.5)
    now = b.clock.time_at(0)
    inputs = {"p_set_kw": np.array([0.0]), "capacity_factor": np.array([0.8])}
    first = b.step(now, 60, inputs)
    assert first["soc"][0] == pytest.approx(0.5 / 0.8)
    again = b.step(now, 60, {**inputs, "capacity_factor": np.array([0.8])})  # a new array
    assert again["soc"][0] == first["soc"][0]  # the same factor: not rescaled again
