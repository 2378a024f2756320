"""The rule controller's own logic, unit by unit (no co-simulation)."""

import numpy as np
import pandas as pd
import pytest

from models.base import Clock
from twin.control.rule import RuleController
from twin.objective import objective_for

BATTERY = {
    "name": "b", "e_kwh": 10.0, "p_max_kw": 5.0, "eta_ch": 0.95, "eta_dis": 0.95,
    "soc_min": 0.1, "soc_max": 0.9, "soc_init": 0.5, "cycle_life_efc": 6000.0,
    "replacement_eur_kwh": 300.0,
}  # fmt: skip
CLOCK = Clock(pd.Timestamp("2016-01-11T00:00Z"), 900, 8)
#: Export price at the charge threshold: absorbing surplus is a tie with exporting it.
PRICES = {"price_eur_kwh": np.array([0.3]), "price_export_eur_kwh": np.array([0.0])}


def rule(**context) -> RuleController:
    objective = objective_for([BATTERY], [0.3])
    return RuleController([dict(BATTERY)], CLOCK, {"objective": objective, **context})


def step(controller, surplus_kw, soc=0.5, **inputs):
    given = {**controller.default_inputs(), **PRICES, "p_kw": np.array([surplus_kw]),
             "soc": np.array([soc]), **inputs}  # fmt: skip
    return controller.step(CLOCK.start, 900, given)["p_set_kw"]


def test_without_loss_information_the_rule_absorbs_the_whole_surplus():
    # What the RL baseline sees: no POC measurement, no standing loss in the context.
    assert step(rule(), 2.0) == pytest.approx([-2.0])


def test_the_standing_loss_is_left_to_the_grid_before_the_poc_is_measured():
    assert step(rule(standing_loss_kw=0.5), 2.0) == pytest.approx([-1.5])
    assert step(rule(standing_loss_kw=0.5), 0.4) == pytest.approx([0.0])
    # A deficit: the battery covers what the loads need, never more (no export).
    assert step(rule(standing_loss_kw=0.5), -2.0) == pytest.approx([2.0])


def test_the_loss_is_estimated_from_the_last_steps_poc_import():
    controller = rule(standing_loss_kw=0.5)
    assert step(controller, 2.0) == pytest.approx([-1.5])
    # Last step: surplus 2.0, battery took 1.5, POC imported 0.1 -> the grid lost 0.6.
    assert step(controller, 2.0, p_poc_kw=np.array([0.1])) == pytest.approx([-1.4])


def test_ev_charging_takes_the_cheapest_steps_of_the_stay():
    from twin.control.rule import cheapest_share, ev_setpoints

    flat = np.full(8, 0.3)
    assert cheapest_share(4.0, 11.0, flat, 0.25) == pytest.approx(4.0 / (8 * 0.25))
    tou = np.array([0.45, 0.45, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2])
    assert cheapest_share(4.0, 11.0, tou, 0.25) == 0.0  # dear now: wait for the night
    assert cheapest_share(4.0, 11.0, tou[4:], 0.25) == pytest.approx(4.0)  # even over 4
    # 11 kWh fit in the four cheap steps: the 2 kWh left are spread over the two at 0.3.
    assert cheapest_share(13.0, 11.0, tou[2:], 0.25) == pytest.approx(4.0)
    assert cheapest_share(3.0, 11.0, np.array([0.2, 0.3, 0.3]), 0.25) == 11.0  # full now
    # Through the rule's EV logic: the price-blind even share without prices ahead.
    args = (0.0, np.array([True]), np.array([3.68]), np.array([2.25]), np.array([11.0]),
            np.array([0.92]), 0.25)  # fmt: skip
    blind, _ = ev_setpoints(*args)
    assert blind == pytest.approx([4.0 / 2.0])
    aware, _ = ev_setpoints(*args, prices_ahead=tou)
    assert aware == pytest.approx([0.0])


def test_headroom_is_on_the_usable_capacity():
    """A battery at half health holds half the energy at the same SoC."""
    worn = {**BATTERY, "p_max_kw": 100.0, "soh_init": 0.5}
    controller = RuleController([worn], CLOCK, {"objective": objective_for([worn], [0.3])})
    usable_out = (0.5 - 0.1) * 10.0 * 0.5 * 0.95 / 0.25  # kW over the step
    assert step(controller, -100.0) == pytest.approx([usable_out])
    # The measured SoH, when connected, replaces the initial one.
    assert step(controller, -100.0, soh=np.array([0.25])) == pytest.approx([usable_out / 2])
