"""The rules of the what-if money and carbon: what is scaled, replaced, paid back, removed."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.twin.whatif_support import day, whatif_registered  # noqa: F401 - the fixture
from twin.errors import ScenarioError
from twin.scenario import validate_scenario
from twin.whatif import finance
from twin.whatif.carbon import stored_energy_kg
from twin.whatif.economics import (
    EconomicsError,
    battery_replacements,
    operating_cost_year_eur,
)
from twin.whatif.reference import reference_removed, reference_scenario

# --- 1, 2: the operating cost of a year ---------------------------------------------------


def test_operating_cost_counts_the_stored_energy_and_a_monthly_demand_charge():
    # energy 10 EUR, demand 2 EUR/kW x 5 kW, the battery ended 3 EUR lower
    kpis = {"cost_eur": 20.0, "cost_scored_no_wear_eur": 23.0, "peak_import_kw": 5.0}
    year = operating_cost_year_eur(kpis, 2.0, 365.0)
    assert year == pytest.approx((10.0 + 3.0) * 365 + 10.0 * 12)
    assert year != pytest.approx(kpis["cost_eur"] * 365)


def test_a_battery_that_empties_itself_saves_nothing_it_did_not_pay_for():
    # same energy bill, one run drew 5 EUR of stored energy: no saving from it
    spent = {"cost_scored_no_wear_eur": 15.0, "peak_import_kw": 0.0}
    bill = {"cost_scored_no_wear_eur": 15.0, "peak_import_kw": 0.0}
    assert operating_cost_year_eur(spent, 0.0, 365) == operating_cost_year_eur(bill, 0.0, 365)


def test_kpis_of_an_older_run_are_named():
    with pytest.raises(EconomicsError, match="no cost_scored_no_wear_eur"):
        operating_cost_year_eur({"cost_eur": 1.0, "peak_import_kw": 2.0}, 0.0, 365)


def test_stored_energy_counts_in_the_emissions():
    assert stored_energy_kg({"e_battery_delta_kwh": -12.0}, np.full(4, 500.0)) == -6.0
    assert stored_energy_kg({}, np.full(4, 500.0)) == 0.0


# --- 4, 14: replacements ------------------------------------------------------------------

UNIT = {"name": "b", "e_kwh": 10.0, "soh_init": 1.0, "soh_eol": 0.8, "replacement_eur_kwh": 0.0}


def test_replacement_falls_back_to_the_capital_cost():
    flows, life = battery_replacements([UNIT], {"b": 0.999}, 100.0, 20, fallback_eur_kwh=300)
    assert life == pytest.approx(2.0)
    assert flows and all(cost == pytest.approx(3000.0) for _, cost in flows)


@pytest.mark.parametrize(
    ("unit", "soh_end", "message"),
    [
        ({**UNIT, "soh_init": 0.8}, 0.79, r"assets.battery\[0\] \(b\).soh_init: 0.8 is at or"),
        (UNIT, math.nan, r"assets.battery\[0\] \(b\): the run recorded no final state"),
    ],
)
def test_a_battery_that_cannot_age_is_an_error(unit, soh_end, message):
    with pytest.raises(EconomicsError, match=message):
        battery_replacements([unit], {"b": soh_end}, 365.0, 20)


def test_an_invested_battery_at_its_end_of_life_is_refused():
    raw = day(economics={})
    raw["assets"]["battery"][0]["soh_init"] = 0.8
    with pytest.raises(ScenarioError) as info:
        validate_scenario(raw)
    assert [p.path for p in info.value.problems] == ["assets.battery[0].soh_init"]


# --- 5: payback with replacements ---------------------------------------------------------


@given(
    capex=st.floats(1.0, 1e5),
    saving=st.floats(1.0, 1e4),
    replacements=st.lists(st.tuples(st.floats(0.5, 20.0), st.floats(1.0, 1e5)), max_size=4),
    rate=st.floats(0.0, 0.3),
)
def test_after_the_payback_the_total_never_drops_below_zero(capex, saving, replacements, rate):
    flows = finance.cash_flows(capex, saving, 20, replacements)
    payback = finance.discounted_payback_years(flows, rate)
    total, after = 0.0, []
    for t, amount in flows:
        total += finance.discount(amount, rate, t)
        if t >= payback:
            after.append(total)
    if math.isinf(payback):
        assert total < 0
    else:
        assert all(value >= -1e-6 * capex for value in after)


def test_a_late_replacement_undoes_an_early_payback():
    flows = finance.cash_flows(100.0, 60.0, 5, [(2.5, 200.0)])
    # cumulative: -100, -40, +20, -180 (replacement), -120, -60, 0
    assert finance.discounted_payback_years(flows, 0.0) == pytest.approx(5.0)
    assert finance.discounted_payback_years(finance.cash_flows(100, 60, 4, [(2.5, 200)]), 0) == (
        math.inf
    )


# --- 3: the reference removes only the investment ------------------------------------------

FAULTS = [
    {"kind": "pv_shading", "target": "pv_roof", "start": "6h", "severity": 0.5},
    {"kind": "inverter_trip", "target": "bess", "start": "8h", "duration": "1h"},
]


def test_the_reference_removes_only_the_invested_assets_and_their_faults():
    scenario = validate_scenario(day(economics={"invest": ["pv_roof"]}, faults=FAULTS))
    reference = reference_scenario(scenario)
    assert [u["name"] for u in reference.units("battery")] == ["bess"]
    assert [u["name"] for u in reference.units("pv")] == ["pv_barn"]
    assert reference.controller == scenario.controller != "none"
    assert [f.target for f in reference.faults] == ["bess"]
    assert reference_removed(scenario) == ["pv pv_roof", "fault pv_shading on pv_roof"]


def test_the_default_reference_removes_every_battery_pv_and_the_controller():
    scenario = validate_scenario(day(economics={}, faults=FAULTS))
    reference = reference_scenario(scenario)
    assert reference.units("battery") == reference.units("pv") == []
    assert reference.controller == "none" and reference.faults == []
    removed = reference_removed(scenario)
    assert removed[:3] == ["battery bess", "pv pv_roof", "pv pv_barn"]
    assert "controller rule (no battery or EV left to drive)" in removed
