"""EV parks in a full co-simulation: smart vs uncontrolled charging, validation."""

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT
from twin.errors import ScenarioError
from twin.results import load_results, wide
from twin.run import run_scenario
from twin.scenario import validate_scenario


@pytest.fixture
def ev_raw():
    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw["duration"] = "2d"
    return raw


@pytest.fixture(scope="module")
def smart_and_uncontrolled(tmp_path_factory):
    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw["duration"] = "2d"
    runs = {}
    for controller in ("rule", "none"):
        raw["controller"] = controller
        out = tmp_path_factory.mktemp(controller)
        runs[controller] = run_scenario(validate_scenario(raw), out, compare_uncontrolled=False)
    return runs


def test_smart_charging_serves_the_same_evs_with_a_lower_peak(smart_and_uncontrolled):
    smart, none = smart_and_uncontrolled["rule"], smart_and_uncontrolled["none"]
    arrivals = [wide(load_results(r.out_dir), "ev_park", "n_arrived") for r in (smart, none)]
    assert arrivals[0].equals(arrivals[1])  # the same seeded fleet in both runs
    assert arrivals[0].to_numpy().sum() > 10
    assert smart.kpis["peak_import_kw"] < 0.6 * none.kpis["peak_import_kw"]
    assert smart.kpis["ev_served"] == none.kpis["ev_served"]
    assert smart.kpis["ev_turned_away"] == none.kpis["ev_turned_away"]
    # Spreading the charge costs little unmet energy (EVs taper above 80% SoC).
    assert smart.kpis["e_ev_unmet_kwh"] <= 0.01 * smart.kpis["e_ev_delivered_kwh"]


def test_import_limit_is_kept_up_to_grid_losses(smart_and_uncontrolled):
    smart = smart_and_uncontrolled["rule"]
    results = load_results(smart.out_dir)
    poc = wide(results, "grid", "p_kw")["poc"]
    losses = wide(results, "grid", "losses_kw")["poc"]
    assert np.all(poc - losses <= 60.0 + 1e-6)


def test_ev_energy_closes_the_site_balance(smart_and_uncontrolled):
    for run in smart_and_uncontrolled.values():
        k = run.kpis
        assert k["e_ev_delivered_kwh"] > 100
        assert k["balance_residual_kwh"] <= 1e-6 * (k["e_import_kwh"] + k["e_ev_delivered_kwh"])


def test_run_compares_with_uncontrolled_charging(ev_raw, tmp_path):
    ev_raw["duration"] = "1d"
    result = run_scenario(validate_scenario(ev_raw), tmp_path)
    assert result.kpis["peak_import_uncontrolled_kw"] > result.kpis["peak_import_kw"]
    assert (tmp_path / "uncontrolled" / "results.parquet").is_file()


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        (lambda p: p.update(chargers=0), "assets.ev[0].chargers", "greater than or equal to 1"),
        (lambda p: p.update(chargers=2.5), "assets.ev[0].chargers", "valid integer"),
        (lambda p: p.update(p_max_kw=-11), "assets.ev[0].p_max_kw", "greater than 0"),
        (lambda p: p.update(efficiency=1.2), "assets.ev[0].efficiency", "less than or equal to 1"),
        (lambda p: p.update(power_factor=0), "assets.ev[0].power_factor", "greater than 0"),
        (
            lambda p: p["fleet"].update(profile="workplce"),
            "assets.ev[0].fleet.profile",
            "did you mean 'workplace'",
        ),
        (
            lambda p: p["fleet"]["arrival_soc"].update(max=1.2),
            "assets.ev[0].fleet.arrival_soc",
            "within 0..1",
        ),
        (
            lambda p: p["fleet"]["capacity_kwh"].update(min=80),
            "assets.ev[0].fleet.capacity_kwh",
            "min <= mean <= max",
        ),
        (lambda p: p.update(bus=77), "assets.ev[0].bus", "does not exist"),
        (lambda p: p.update(plugs=3), "assets.ev[0].plugs", "unknown key"),
    ],
)
def test_bad_charger_parameters_name_their_field(ev_raw, change, path, expected):
    change(ev_raw["assets"]["ev"][0])
    with pytest.raises(ScenarioError) as info:
        validate_scenario(ev_raw)
    problems = {p.path: p.message for p in info.value.problems}
    assert path in problems, problems
    assert expected in problems[path]
