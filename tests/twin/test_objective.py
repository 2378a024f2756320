"""The scored cost: wear from the battery model's ageing, the terminal value rule, parts."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.base import Clock
from models.battery import Battery
from twin.objective import (
    Objective,
    objective_for,
    rule_thresholds,
    scored_cost,
    terminal_values,
    wear_eur_kwh,
)


@settings(max_examples=40, deadline=None)
@given(
    e_kwh=st.floats(5.0, 500.0),
    c_rate=st.floats(0.2, 2.0),
    eta=st.floats(0.85, 0.99),
    cycle_life=st.floats(500.0, 10000.0),
    soh_eol=st.floats(0.5, 0.9),
    replacement=st.floats(0.0, 1000.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_wear_is_the_cost_of_the_battery_models_cycle_ageing(
    e_kwh, c_rate, eta, cycle_life, soh_eol, replacement, seed
):
    """w x cell throughput = (SoH lost to cycling) x replacement cost / (1 - SoH_eol)."""
    unit = {
        "name": "b",
        "e_kwh": e_kwh,
        "p_max_kw": c_rate * e_kwh,
        "eta_ch": eta,
        "eta_dis": eta,
        "soc_min": 0.1,
        "soc_max": 0.9,
        "soc_init": 0.5,
        "soh_init": 1.0,
        "t_init_c": 25.0,
        "t_ambient_c": 25.0,
        "r_th_k_per_kw": 1e-3,  # cells at ambient: no temperature-driven calendar fade
        "c_th_kj_per_k": 200.0,
        "cycle_life_efc": cycle_life,
        "calendar_life_years": 1e15,  # calendar fade does not depend on the dispatch
        "soh_eol": soh_eol,
        "t_derate_c": 1000.0,  # no thermal derating
        "t_trip_c": 2000.0,
    }
    clock = Clock(pd.Timestamp("2016-06-21T00:00Z"), 900, 96)
    battery = Battery([unit], clock, {})
    rng = np.random.default_rng(seed)
    throughput = 0.0
    for k, p_set in enumerate(rng.uniform(-1.2, 1.2, 96) * unit["p_max_kw"]):
        p = battery.step(clock.time_at(k * 900), 900, {"p_set_kw": np.array([p_set])})["p_kw"]
        throughput += abs(p[0] / eta if p[0] > 0 else p[0] * eta) * 0.25  # cell side
    soh_lost = 1.0 - battery.soh[0]
    model_cost = soh_lost * replacement * e_kwh / (1.0 - soh_eol)
    wear = wear_eur_kwh([replacement], [cycle_life])
    assert wear[0] * throughput == pytest.approx(model_cost, rel=1e-9, abs=1e-9)
    assert wear[0] == pytest.approx(replacement / (2.0 * cycle_life))


def test_300_eur_per_kwh_and_6000_cycles_cost_a_fortieth_per_kwh():
    assert wear_eur_kwh(300.0, 6000.0) == pytest.approx(0.025)
    assert objective_for([{"eta_ch": 0.95, "eta_dis": 0.95}], [0.3]).wear[0] == 0.0


def test_terminal_value_is_the_refill_cost_capped_by_what_a_kwh_displaces():
    eta_ch, eta_dis, w = np.array([0.9]), np.array([0.95]), np.array([0.02])
    two_level = np.r_[np.full(10, 0.20), np.full(4, 0.50)]
    # Refilling at the cheapest price: 0.20 / 0.9 + 0.02 (below 0.50 x 0.95 - 0.02).
    assert terminal_values(two_level, eta_ch, eta_dis, w)[0] == pytest.approx(0.2 / 0.9 + 0.02)
    # Flat: a kWh can only displace 0.30 x 0.95 - 0.02, less than refilling costs.
    flat = np.full(8, 0.30)
    assert terminal_values(flat, eta_ch, eta_dis, w)[0] == pytest.approx(0.3 * 0.95 - 0.02)
    # Never negative (wear dearer than anything the energy displaces).
    assert terminal_values(flat, eta_ch, eta_dis, [1.0])[0] == 0.0
    # control.terminal_price_eur_kwh overrides it for every battery.
    np.testing.assert_array_equal(
        terminal_values(flat, [0.9, 0.8], [0.9, 0.8], [0.0, 0.1], override=0.123), [0.123] * 2
    )
    batteries = [{"eta_ch": 0.9, "eta_dis": 0.95, "replacement_eur_kwh": 240.0}]
    objective = objective_for(batteries, two_level)
    assert objective.wear[0] == pytest.approx(0.02)
    assert objective.terminal_value[0] == pytest.approx(0.2 / 0.9 + 0.02)


def test_scored_cost_parts():
    objective = Objective(wear=np.array([0.025, 0.01]), terminal_value=np.array([0.3, 0.2]))
    imp, exp = np.array([10.0, 0.0, 4.0]), np.array([0.0, 6.0, 0.0])
    cost = scored_cost(
        imp,
        exp,
        [0.3, 0.3, 0.5],
        [0.1, 0.1, 0.1],
        0.5,
        2.0,
        throughput_cell_kwh=[8.0, 5.0],
        delta_e_kwh=[2.0, -1.0],
        objective=objective,
    )
    assert cost.energy == pytest.approx((10 * 0.3 - 6 * 0.1 + 4 * 0.5) * 0.5)
    assert cost.demand == pytest.approx(2.0 * 10.0)
    assert cost.wear == pytest.approx(0.025 * 8 + 0.01 * 5)
    assert cost.terminal == pytest.approx(0.3 * 2 - 0.2 * 1)
    assert cost.total == pytest.approx(cost.energy + cost.demand + cost.wear - cost.terminal)
    assert cost.without_wear == pytest.approx(cost.total - cost.wear)


def test_rule_thresholds_break_even():
    """At the thresholds, using the battery gains exactly nothing."""
    objective = Objective(wear=np.array([0.02]), terminal_value=np.array([0.25]))
    discharge, charge = rule_thresholds(objective, [0.9], [0.95])
    # Discharging 1 kWh (bus): saves the price, costs (v + w) / eta_dis of stored value.
    assert discharge[0] * 1.0 - (0.25 + 0.02) / 0.95 == pytest.approx(0.0)
    # Absorbing 1 kWh (bus): forgoes the export price, stores 0.9 kWh worth v - w each.
    assert 0.9 * (0.25 - 0.02) - charge[0] == pytest.approx(0.0)
