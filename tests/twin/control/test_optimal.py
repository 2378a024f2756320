"""Oracle and MPC in the co-simulation."""

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT
from twin.results import load_results, wide
from twin.run import run_scenario
from twin.scenario import validate_scenario


def day(controller: str, **control):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw["controller"] = controller
    raw["control"] = control
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    return run_scenario(day("oracle"), tmp_path_factory.mktemp("oracle"))


def test_oracle_keeps_limits_and_the_terminal_rule(oracle):
    results = load_results(oracle.out_dir)
    soc = wide(results, "battery", "soc")["bess"]
    p = wide(results, "battery", "p_kw")["bess"]
    assert soc.min() >= 0.1 - 1e-9 and soc.max() <= 0.9 + 1e-9
    assert p.abs().max() <= 20.0 + 1e-9
    assert oracle.kpis["e_battery_delta_kwh"] >= -1e-3  # ends with what it started with


def test_oracle_beats_every_other_controller_on_scored_cost(oracle, tmp_path):
    for controller in ("none", "rule", "mpc"):
        other = run_scenario(day(controller), tmp_path / controller)
        assert oracle.kpis["cost_scored_eur"] <= other.kpis["cost_scored_eur"] + 1e-6


def no_ageing(scenario):
    """Perfect knowledge also of the battery: no capacity fade the LP does not model, and
    perfect sensors (MPC re-plans from the SoC it reads; a noisy reading is not perfect)."""
    for battery in scenario.assets.battery:
        battery.cycle_life_efc = battery.calendar_life_years = 1e12
    return scenario.model_copy(
        update={"sensors": scenario.sensors.model_copy(update={"enabled": False})}
    )


def test_mpc_with_perfect_forecasts_over_the_whole_run_equals_the_oracle(tmp_path):
    runs = {}
    for name, scenario in (
        ("oracle", day("oracle")),
        ("mpc", day("mpc", forecaster="perfect", horizon="1d")),
    ):
        runs[name] = run_scenario(no_ageing(scenario), tmp_path / name)
    assert runs["mpc"].kpis["cost_eur"] == pytest.approx(runs["oracle"].kpis["cost_eur"], abs=1e-6)
    np.testing.assert_allclose(
        wide(load_results(runs["mpc"].out_dir), "battery", "soc").to_numpy(),
        wide(load_results(runs["oracle"].out_dir), "battery", "soc").to_numpy(),
        atol=1e-9,
    )


def test_import_limit_is_part_of_the_plan(tmp_path):
    run = run_scenario(day("oracle", p_import_max_kw=30.0), tmp_path)
    results = load_results(run.out_dir)
    poc = wide(results, "grid", "p_kw")["poc"] - wide(results, "grid", "losses_kw")["poc"]
    assert poc.max() <= 30.0 + 1e-3  # kW; the plan ignores the slow SoH fade


def test_demand_charge_makes_the_oracle_shave_the_peak(oracle, tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw["controller"] = "oracle"
    raw["tariff"]["demand_charge_eur_kw"] = 2.0
    shaved = run_scenario(validate_scenario(raw), tmp_path)
    assert shaved.kpis["peak_import_kw"] < oracle.kpis["peak_import_kw"] - 5.0
    # The charge is part of the cost: 2 EUR per kW of the run's peak import. Without it,
    # the shaving plan scores no better than the oracle's (which minimises the scored
    # cost, its end state valued: the shaving plan ends lower, so compare scored costs).
    energy_only = shaved.kpis["cost_scored_eur"] - 2.0 * shaved.kpis["peak_import_kw"]
    assert energy_only >= oracle.kpis["cost_scored_eur"] - 1e-6


def test_oracle_and_mpc_dispatch_ev_chargers(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw["duration"] = "1d"
    kpis = {}
    for controller in ("none", "oracle", "mpc"):
        raw["controller"] = controller
        run = run_scenario(
            validate_scenario(raw), tmp_path / controller, compare_uncontrolled=False
        )
        kpis[controller] = run.kpis
        results = load_results(run.out_dir)
        p_ev = -wide(results, "ev", "p_kw")
        assert p_ev.max().max() <= 11.0 + 1e-9
    for planner in ("oracle", "mpc"):
        # The import limit (60 kW) holds where uncontrolled charging peaks far above it,
        # and nearly all the energy the EVs need is still delivered.
        assert kpis["none"]["peak_import_kw"] > 100.0
        assert kpis[planner]["peak_import_kw"] <= 62.0
        delivered = kpis[planner]["e_ev_delivered_kwh"]
        assert delivered >= 0.95 * kpis["none"]["e_ev_delivered_kwh"]


THREE_LEVEL = {
    "import_eur_kwh": 0.30,
    "export_eur_kwh": 0.05,
    "periods": [
        {"start": "23:00", "end": "07:00", "import_eur_kwh": 0.20},
        {"start": "17:00", "end": "21:00", "import_eur_kwh": 0.45},
    ],
}
SITES = {
    "day": {},
    "winter_week_three_level": {
        "start": "2016-01-11T00:00:00-05:00",
        "duration": "7d",
        "tariff": THREE_LEVEL,
    },
    "semiurban_spring_three_level": {
        "start": "2016-03-14T00:00:00-04:00",
        "duration": "3d",
        "grid": "1-LV-semiurb4--0-sw",
        "tariff": {**THREE_LEVEL, "demand_charge_eur_kw": 0.5},
    },
}


@pytest.mark.parametrize("site", SITES)
def test_no_controller_scores_below_the_oracle_beyond_its_grid_losses(site, tmp_path):
    """The oracle minimises the scored cost save the grid losses its LP leaves out.

    So no controller's scored cost is below the oracle's by more than the oracle's
    losses at the dearest price (and the demand charge on its largest loss); and the
    price-aware rule never scores worse than no battery.
    """
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(SITES[site])
    runs = {}
    for controller in ("oracle", "none", "rule", "mpc"):
        raw["controller"] = controller
        runs[controller] = run_scenario(validate_scenario(raw), tmp_path / controller)
    results = load_results(runs["oracle"].out_dir)
    price_max = wide(results, "tariff", "price_import_eur_kwh").to_numpy().max()
    loss_max = wide(results, "grid", "losses_kw")["poc"].max()
    demand_charge = raw["tariff"].get("demand_charge_eur_kw", 0.0)
    oracle = runs["oracle"].kpis
    tolerance = price_max * oracle["losses_kwh"] + demand_charge * loss_max
    scored = {name: run.kpis["cost_scored_eur"] for name, run in runs.items()}
    for name in ("none", "rule", "mpc"):
        assert scored[name] >= scored["oracle"] - tolerance, name
    assert scored["rule"] <= scored["none"]
    # Wear is part of the score, and reported on its own.
    for run in runs.values():
        k = run.kpis
        assert k["cost_scored_eur"] == pytest.approx(k["cost_scored_no_wear_eur"] + k["wear_eur"])
    # (an idle battery's stored energy shrinks only by calendar fade: next to no wear)
    assert runs["none"].kpis["wear_eur"] < 1e-3 < runs["oracle"].kpis["wear_eur"]


def test_degradation_price_is_gone_wear_comes_from_the_battery(day_raw):
    from twin.errors import ScenarioError

    day_raw["control"] = {"degradation_eur_kwh": 0.02}
    with pytest.raises(ScenarioError, match="control.degradation_eur_kwh: unknown key"):
        validate_scenario(day_raw)
    day_raw["control"] = {}
    day_raw["assets"]["battery"][0]["replacement_eur_kwh"] = 6000.0
    with pytest.raises(ScenarioError, match=r"assets.battery\[0\].replacement_eur_kwh"):
        validate_scenario(day_raw)
