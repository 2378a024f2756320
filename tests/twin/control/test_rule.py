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
