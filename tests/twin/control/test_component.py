"""The controller component wires what each controller reads: the prices for the rule."""

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
