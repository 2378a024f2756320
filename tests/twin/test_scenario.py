from pathlib import Path

import pytest
import yaml

from twin.errors import ScenarioError
from twin.scenario import apply_overrides, load_scenario, validate_scenario


def problems_of(raw) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        validate_scenario(raw)
    return {p.path: p.message for p in info.value.problems}


def test_shipped_scenarios_are_valid():
    for path in Path("scenarios").glob("*.yaml"):
        scenario = load_scenario(path)
        assert scenario.clock().n_steps > 0


def test_from_grid_loads_are_expanded_with_their_profiles(day_raw):
    scenario = validate_scenario(day_raw)
    loads = scenario.units("load")
    assert len(loads) == 13
    assert {u["profile"] for u in loads} <= {"H0-A", "H0-B", "H0-C", "L1-A", "L2-A"}
    assert all(isinstance(u["bus"], int) for u in loads)


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        (
            lambda r: r["assets"]["battery"][0].update(e_kwh=-5),
            "assets.battery[0].e_kwh",
            "greater than or equal to 0.01",
        ),
        (
            lambda r: r["assets"]["battery"][0].update(soc_min=0.95),
            "assets.battery[0]",
            "soc_min < soc_max",
        ),
        (lambda r: r.update(step="15 mins"), "step", "expected a duration like"),
        (lambda r: r.update(duration="1dd"), "duration", "expected a duration like"),
        (lambda r: r.update(start="2016-06-21T00:00:00"), "start", "timezone"),
        (lambda r: r["site"].update(tz="Europe/Berlinn"), "site.tz", "IANA time zone"),
        (lambda r: r["site"].update(lat=123), "site.lat", "less than or equal to 90"),
        (lambda r: r["assets"]["pv"][1].pop("bus"), "assets.pv[1].bus", "required"),
        (
            lambda r: r["assets"]["pv"][0].update(temperature_model="rack"),
            "assets.pv[0].temperature_model",
            "open_rack_glass_polymer",
        ),
        (lambda r: r.update(controller="fuzzy"), "controller", "'rl' or 'schedule'"),
        (
            lambda r: r["tariff"]["periods"][0].update(start="25:00"),
            "tariff.periods[0].start",
            "pattern",
        ),
        (lambda r: r.update(duration="100min"), "", "not a whole number of steps"),
    ],
)
def test_schema_errors_name_their_field(day_raw, change, path, expected):
    change(day_raw)
    problems = problems_of(day_raw)
    assert path in problems, problems
    assert expected in problems[path]


@pytest.mark.parametrize(
    ("change", "path", "suggestion"),
    [
        (
            lambda r: r["assets"]["battery"][0].update(e_kwhh=5),
            "assets.battery[0].e_kwhh",
            "did you mean 'e_kwh'",
        ),
        (lambda r: r.update(controler="rule"), "controler", "did you mean 'controller'"),
        (lambda r: r["site"].update(latitude=3), "site.latitude", "expected one of"),
        (
            lambda r: r["tariff"].update(export_eur_mwh=0.1),
            "tariff.export_eur_mwh",
            "did you mean 'export_eur_kwh'",
        ),
    ],
)
def test_unknown_keys_are_errors_with_suggestions(day_raw, change, path, suggestion):
    change(day_raw)
    problems = problems_of(day_raw)
    assert suggestion in problems[path]


def test_all_problems_are_reported_at_once(day_raw):
    day_raw["assets"]["battery"][0]["e_kwhh"] = 3
    day_raw["assets"]["pv"][0]["p_dc_kw"] = -1
    day_raw["step"] = "fast"
    assert {"assets.battery[0].e_kwhh", "assets.pv[0].p_dc_kw", "step"} <= set(problems_of(day_raw))


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        (
            lambda r: r["assets"]["pv"][0].update(bus=99),
            "assets.pv[0].bus",
            "bus 99 does not exist",
        ),
        (
            lambda r: r["assets"]["battery"][0].update(bus="LV1.101 Bus 77"),
            "assets.battery[0].bus",
            "'LV1.101 Bus 77' does not exist",
        ),
        (lambda r: r.update(grid="1-LV-nowhere--0-sw"), "grid.source", "could not be loaded"),
        (lambda r: r.update(grid="no_such_net"), "grid.source", "neither a SimBench code"),
        (lambda r: r.update(weather="missing.csv"), "weather", "723170TYA.CSV"),
        (
            lambda r: r["assets"]["load"].append({"bus": 3, "p_kw": 2, "profile": "H0-Z"}),
            "assets.load[13].profile",
            "did you mean",
        ),
        (
            lambda r: r["assets"]["pv"][1].update(name="pv_roof"),
            "assets.pv[1].name",
            "already used",
        ),
    ],
)
def test_grid_and_data_references_are_checked(day_raw, change, path, expected):
    change(day_raw)
    problems = problems_of(day_raw)
    assert path in problems, problems
    assert expected in problems[path]


def test_bus_by_name_resolves_to_its_index(day_raw):
    day_raw["assets"]["battery"][0]["bus"] = "LV1.101 Bus 8"
    assert validate_scenario(day_raw).units("battery")[0]["bus"] == 7


def test_overrides_set_nested_fields_and_parse_values(day_raw):
    apply_overrides(day_raw, ["assets.battery[0].e_kwh=20", "controller=none", "duration=2d"])
    scenario = validate_scenario(day_raw)
    assert scenario.units("battery")[0]["e_kwh"] == 20.0
    assert scenario.controller == "none"
    assert scenario.clock().n_steps == 192


@pytest.mark.parametrize("override", ["assets.battery[5].e_kwh=1", "nonsense"])
def test_bad_overrides_are_clear(day_raw, override):
    with pytest.raises(ScenarioError, match="--set"):
        apply_overrides(day_raw, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    bad.write_text(yaml.safe_dump(["a", "list"]))
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(bad)


def test_readme_example_is_a_valid_scenario():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = validate_scenario(yaml.safe_load(block))
    assert scenario.units("load")[-1]["bus"] == 4
