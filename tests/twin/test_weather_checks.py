import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT
from twin.cli import app
from twin.errors import ScenarioError
from twin.run import run_scenario
from twin.scenario import validate_scenario
from twin.weather_checks import great_circle_km

SYDNEY = {"lat": -33.87, "lon": 151.21, "altitude": 20, "tz": "Australia/Sydney"}
MIAMI = {"lat": 25.8, "lon": -80.27, "altitude": 2, "tz": "America/New_York"}


def problems_of(raw):
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(raw)
    return {p.path: p.message for p in caught.value.problems}


def test_site_far_from_the_weather_file_is_a_problem(small_raw):
    small_raw.update(site=SYDNEY, weather="703165TY.csv")  # Sitka, Alaska
    found = problems_of(small_raw)
    assert "km from the site" in found["weather"]
    assert "max_weather_distance_km" in found["weather"]


def test_distance_limit_can_be_raised_explicitly(small_raw):
    small_raw.update(site={**SYDNEY, "max_weather_distance_km": 20_000}, weather="703165TY.csv")
    validate_scenario(small_raw)


def test_time_zone_that_does_not_fit_the_longitude_is_a_problem(small_raw):
    small_raw["site"]["tz"] = "Europe/Berlin"  # site in North Carolina
    found = problems_of(small_raw)
    assert "does not fit the site's longitude" in found["site.tz"]


@pytest.mark.parametrize(
    ("tz", "lon"),
    [("Pacific/Apia", -171.8), ("Pacific/Tongatapu", -175.2), ("Pacific/Kiritimati", -157.4)],
)
def test_zones_across_the_date_line_fit_their_longitude(small_raw, tz, lon):
    small_raw["site"].update(tz=tz, lon=lon, lat=-13.8, max_weather_distance_km=40_000)
    validate_scenario(small_raw)  # UTC+13/+14 at longitude -172: 1-2 h apart, not 25 h


def test_tmy2_file_validates_and_runs(small_raw, tmp_path):
    small_raw.update(site=MIAMI, weather="12839.tm2", duration="2h")
    scenario = validate_scenario(small_raw)
    result = run_scenario(scenario, tmp_path / "run")
    assert result.kpis["e_pv_kwh"] > 1.0


def test_unreadable_weather_file_fails_validation_like_the_run(small_raw, tmp_path):
    bad = tmp_path / "weather.csv"
    bad.write_text("not,a,tmy\n1,2,3\n")
    small_raw["weather"] = str(bad)
    assert "could not be read as TMY3" in problems_of(small_raw)["weather"]


def test_validate_cli_reports_the_distance(small_raw, tmp_path):
    small_raw.update(site=SYDNEY, weather="703165TY.csv")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small_raw))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code != 0
    assert "km from the site" in " ".join(result.output.split())


def test_great_circle_distance():
    assert great_circle_km(0, 0, 0, 1) == pytest.approx(111.19, abs=0.01)
    assert great_circle_km(-33.87, 151.21, 57.05, -135.33) > 11_000


def test_shipped_scenarios_have_weather_for_their_site():
    for path in (ROOT / "scenarios").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        if "site" in raw:
            validate_scenario(raw)
