"""EV parks: the simpy arrival process, charging physics and bookkeeping."""

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import simpy
from scipy import stats

from models.base import Clock
from models.ev import ARRIVAL_PROFILES, EVCharging, arrival_rate_per_h, arrivals_process, taper

FLEET = {
    "profile": "workplace",
    "arrivals_per_day": 12.0,
    "capacity_kwh": {"mean": 60.0, "std": 15.0, "min": 30.0, "max": 100.0},
    "arrival_soc": {"mean": 0.35, "std": 0.15, "min": 0.05, "max": 0.8},
    "target_soc": {"mean": 0.9, "std": 0.0, "min": 0.9, "max": 0.9},
    "dwell_h": {"mean": 8.5, "std": 1.5, "min": 2.0, "max": 11.0},
}
TZ = "America/New_York"


def park(chargers: int = 10, **fleet) -> dict:
    return {
        "name": "depot",
        "bus": 3,
        "chargers": chargers,
        "p_max_kw": 11.0,
        "efficiency": 0.92,
        "power_factor": 0.95,
        "fleet": {**FLEET, **fleet},
    }


def model(days: int = 3, step_s: int = 300, seed: int = 1, **park_args) -> EVCharging:
    clock = Clock(pd.Timestamp("2016-06-20T00:00:00-04:00"), step_s, days * 86400 // step_s)
    return EVCharging([park(**park_args)], clock, {"seed": seed, "site": {"tz": TZ}})


def run(m: EVCharging, p_set_kw: float = np.inf) -> list[dict]:
    n = len(m.elements["ev"])
    return [
        m.step(
            m.clock.time_at(k * m.clock.step_s), m.clock.step_s, {"p_set_kw": np.full(n, p_set_kw)}
        )
        for k in range(m.clock.n_steps)
    ]


def simulated_arrivals(profile: str, per_day: float, days: int, seed: int) -> np.ndarray:
    clock = Clock(pd.Timestamp("2016-01-04T00:00:00-05:00"), 3600, days * 24)
    env, queue = simpy.Environment(), []
    fleet = {**FLEET, "profile": profile, "arrivals_per_day": per_day}
    env.process(
        arrivals_process(env, np.random.default_rng(seed), fleet, clock, ZoneInfo(TZ), queue)
    )
    env.run(until=days * 86400)
    return np.array(
        [clock.time_at(int(ev.arrival_s)).astimezone(ZoneInfo(TZ)).hour for ev in queue]
    )


@pytest.mark.parametrize("profile", sorted(ARRIVAL_PROFILES))
def test_arrivals_follow_the_time_of_day_rates(profile):
    days, per_day = 400, 15.0
    hours = simulated_arrivals(profile, per_day, days, seed=3)
    observed = np.bincount(hours, minlength=24)
    expected = arrival_rate_per_h(profile, per_day, np.arange(24)) * days
    active = expected > 0
    assert observed[~active].sum() == 0  # nobody arrives in an hour of zero rate
    # Poisson counts per hour: chi-square goodness of fit on the hours with arrivals.
    scaled = expected[active] * observed.sum() / expected.sum()
    _, p_value = stats.chisquare(observed[active], scaled)
    assert p_value > 0.01
    # The daily total matches the configured rate (Poisson sd of the mean: sqrt(15/400)).
    assert observed.sum() / days == pytest.approx(per_day, abs=4 * np.sqrt(per_day / days))


def test_same_seed_same_fleet_other_seed_other_fleet():
    a, b, c = model(seed=5), model(seed=5), model(seed=6)
    out_a, out_b = run(a), run(b)
    run(c)
    assert a.departed == b.departed
    assert [o["n_arrived"][0] for o in out_a] == [o["n_arrived"][0] for o in out_b]
    assert a.departed != c.departed


def test_energy_delivered_equals_soc_gains_over_efficiency():
    m = model(days=4)
    out = run(m)
    delivered = sum(o["e_delivered_kwh"][0] for o in out)
    gains = sum((d["soc_departure"] - d["soc_arrival"]) * d["capacity_kwh"] for d in m.departed)
    gains += float(np.sum(np.where(m.connected, (m.soc - m.soc_arrival) * m.capacity, 0.0)))
    assert delivered == pytest.approx(gains / 0.92, rel=1e-12)
    assert delivered > 100.0
    # The bus sees the same energy (p_kw < 0 while charging).
    assert -sum(o["p_kw"].sum() for o in out) * 300 / 3600 == pytest.approx(delivered, rel=1e-12)


def test_no_ev_leaves_above_target_or_charges_above_the_rating():
    m = model(days=4)
    out = run(m)
    assert all(d["soc_departure"] <= d["target_soc"] + 1e-12 for d in m.departed)
    p = np.array([o["p_kw"] for o in out])
    assert p.min() >= -11.0 - 1e-12 and p.max() <= 0.0
    q = np.array([o["q_kvar"] for o in out])
    np.testing.assert_allclose(q, p * np.tan(np.arccos(0.95)))
    # Most EVs with 8.5 h dwell reach their target charging at full power.
    reached = [d["soc_departure"] >= d["target_soc"] - 1e-9 for d in m.departed]
    assert np.mean(reached) > 0.9


def test_full_plugs_turn_evs_away_and_every_ev_is_counted():
    m = model(days=3, chargers=2)
    out = run(m)
    arrived = sum(o["n_arrived"][0] for o in out)
    away = sum(o["n_turned_away"][0] for o in out)
    served = sum(o["n_departed"][0] for o in out)
    assert away > 0
    assert arrived == away + served + m.connected.sum()
    assert served == len(m.departed)


def test_acceptance_tapers_above_80_percent():
    np.testing.assert_allclose(taper(np.array([0.5, 0.8, 0.9, 1.0])), [1.0, 1.0, 0.5, 0.0])
    m = model(days=1)
    m.connected[0], m.soc[0], m.capacity[0], m.target[0], m.departure_s[0] = (
        True,
        0.9,
        1e6,
        1.0,
        1e9,
    )
    out = m.step(m.clock.time_at(0), 300, {"p_set_kw": np.full(10, np.inf)})
    assert -out["p_kw"][0] == pytest.approx(11.0 * 0.5)


def test_setpoints_limit_charging():
    m = model(days=2)
    out = run(m, p_set_kw=3.0)
    assert np.array([o["p_kw"] for o in out]).min() >= -3.0 - 1e-12
