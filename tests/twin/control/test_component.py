"""The controller component wires what each controller reads: the prices for the rule."""

import pytest

from tests.conftest import ROOT
from twin.scenario import load_scenario
from twin.world import plan_world


def connections(controller: str, tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "microgrid_day.yaml")
    scenario = scenario.model_copy(update={"controller": controller})
    plan = plan_world(scenario, tmp_path, "test")
    return {(c.src.full_id, c.dst.full_id): c.attrs for c in plan.connections}


def test_the_rule_reads_the_steps_prices_from_the_tariff(tmp_path):
    attrs = connections("rule", tmp_path / "rule")
    assert attrs[("tariff.tariff", "rule.site")] == (
        ("price_import_eur_kwh", "price_eur_kwh"),
        ("price_export_eur_kwh", "price_export_eur_kwh"),
    )
    # Controllers that do not read prices get none.
    assert not [key for key in connections("mpc", tmp_path / "mpc") if key[0].startswith("tariff")]


def test_the_rule_reads_the_last_steps_poc_import_and_the_standing_loss(tmp_path):
    plan = plan_world(load_scenario(ROOT / "scenarios" / "microgrid_day.yaml"), tmp_path, "t")
    (poc,) = [
        c for c in plan.connections if c.dst.full_id == "rule.site" and "grid" in c.src.full_id
    ]
    assert poc.attrs[0][1] == "p_poc_kw" and poc.time_shifted  # (through the POC's sensor)
    from models.gridnet import load_tables
    from twin.control.component import standing_loss_kw

    assert standing_loss_kw(load_tables("1-LV-rural1--0-sw")) == pytest.approx(0.46)


def test_an_export_price_above_import_is_named_for_the_lp_controllers(day_raw):
    from twin.errors import ScenarioError
    from twin.scenario import validate_scenario

    day_raw["tariff"] = {"import_eur_kwh": 0.30, "export_eur_kwh": 0.35}
    for controller in ("oracle", "mpc"):
        day_raw["controller"] = controller
        with pytest.raises(ScenarioError, match=r"tariff\.export_eur_kwh"):
            validate_scenario(day_raw)
    day_raw["controller"] = "rule"  # the rule has no LP: a tariff above import is fine
    validate_scenario(day_raw)
