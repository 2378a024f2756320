import numpy as np
import pytest

from models.pv import PVPlant
from tests.conftest import LV_GRID, ROOT, SITE, make_clock
from twin import assembly
from twin.errors import ScenarioError, TwinError
from twin.registry import get_model
from twin.scenario import load_scenario

DAY = ROOT / "scenarios" / "microgrid_day.yaml"
#: A PV line as the README's scenario writes it.
README_PV = {"name": "pv_roof", "bus": 7, "p_dc_kw": 45, "tilt_deg": 30, "azimuth_deg": 180}


def test_a_readme_unit_dict_alone_lacks_the_schema_defaults():
    """The problem the helper solves: the model has no defaults of its own."""
    context = {"site": SITE, "weather": "723170TYA.CSV"}
    with pytest.raises(KeyError, match="albedo"):
        PVPlant([README_PV], make_clock(n=4), context)


def test_units_fill_the_schema_defaults_and_the_model_runs():
    (unit,) = assembly.units("pv", [README_PV])
    assert unit["albedo"] == 0.25 and unit["temperature_model"] == "open_rack_glass_polymer"
    assert unit["p_ac_kw"] == pytest.approx(45 / 1.1)
    clock = make_clock(n=96)
    model = PVPlant([unit], clock, {"site": SITE, "weather": "723170TYA.CSV"})
    assert model.exogenous()["p_kw"].max() > 20.0


def test_plain_dicts_give_what_the_scenario_file_gives():
    from_file = assembly.from_scenario(DAY)
    raw_pv = [
        {"name": "pv_roof", "bus": 7, "p_dc_kw": 45, "tilt_deg": 30, "azimuth_deg": 180},
        {"name": "pv_barn", "bus": 12, "p_dc_kw": 30, "tilt_deg": 15, "azimuth_deg": 240},
    ]
    assert assembly.units("pv", raw_pv) == from_file.units["pv"]
    battery = [
        {
            "name": "bess",
            "bus": 7,
            "e_kwh": 60,
            "p_max_kw": 20,
            "soc_init": 0.3,
            "replacement_eur_kwh": 300,
        }
    ]
    assert assembly.units("battery", battery) == from_file.units["battery"]
    assert len(from_file.units["load"]) == 13  # the grid's own loads, expanded
    made = assembly.assemble(
        start="2016-06-21T00:00:00-04:00",
        step="15min",
        duration="1d",
        site={"lat": 36.1, "lon": -79.95, "altitude": 273, "tz": "America/New_York"},
        grid=LV_GRID,
        weather="723170TYA.CSV",
        seed=42,
        assets={"pv": raw_pv, "battery": battery},
        tariff={
            "import_eur_kwh": 0.28,
            "export_eur_kwh": 0.08,
            "periods": [{"start": "17:00", "end": "21:00", "import_eur_kwh": 0.42}],
        },
    )
    assert made.clock == from_file.clock
    assert made.context == from_file.context
    for kind in ("pv", "battery", "tariff", "grid"):
        assert made.units[kind] == from_file.units[kind], kind


def test_the_scenario_file_gives_what_the_twins_world_starts():
    scenario = load_scenario(DAY)
    made = assembly.from_scenario(scenario)
    assert made.clock == scenario.clock()
    assert made.units["grid"] == [{"name": "poc", "grid": LV_GRID, "solver": "fast"}]
    assert made.units["tariff"] == [{"name": "tariff", **scenario.tariff.model_dump()}]
    for kind in ("pv", "battery", "load"):
        assert made.units[kind] == scenario.units(kind)
    # every part builds its model
    for kind, values in made.units.items():
        model = get_model(kind)(values, made.clock, made.context)
        out = model.step(made.clock.time_at(0), made.clock.step_s, model.default_inputs())
        assert all(np.isfinite(v).all() for v in out.values()), kind


def test_bad_units_name_the_field_path_and_what_was_expected():
    with pytest.raises(assembly.SpecError) as info:
        assembly.units("pv", [{"name": "pv1", "bus": 1, "p_kwp": 10}, {"bus": 2, "p_dc_kw": -5}])
    assert isinstance(info.value, TwinError) and isinstance(info.value, ScenarioError)
    problems = {p.path: p.message for p in info.value.problems}
    assert "unknown key; did you mean 'p_dc_kw'?" in problems["pv[0].p_kwp"]
    assert problems["pv[0].p_dc_kw"] == "required field is missing"
    assert "pv[1].p_dc_kw" in problems and "-5" in problems["pv[1].p_dc_kw"]
    assert "pv[0].p_kwp" in str(info.value)


def test_unit_names_default_and_must_be_unique():
    made = assembly.units("load", [{"bus": 1, "p_kw": 2.0}, {"bus": 2, "p_kw": 1.0}])
    assert [u["name"] for u in made] == ["load_0", "load_1"]
    with pytest.raises(assembly.SpecError, match=r"load\[1\].name: name 'a' already used"):
        assembly.units("load", [{"name": "a", "bus": 1}, {"name": "a", "bus": 2}])


def test_bus_names_resolve_against_the_grid():
    (unit,) = assembly.units("pv", [{"bus": "bus2", "p_dc_kw": 5}], grid="simple_four_bus_system")
    assert unit["bus"] == 1
    with pytest.raises(assembly.SpecError, match=r"pv\[0\].bus: a bus name needs grid"):
        assembly.units("pv", [{"bus": "bus2", "p_dc_kw": 5}])
    with pytest.raises(assembly.SpecError, match=r"pv\[0\].bus"):
        assembly.units("pv", [{"bus": "nowhere", "p_dc_kw": 5}], grid="simple_four_bus_system")


def test_unknown_kind_suggests_the_nearest():
    with pytest.raises(assembly.SpecError, match="expected one of pv, battery, load, ev"):
        assembly.units("batery", [])
    with pytest.raises(assembly.SpecError, match="did you mean 'battery'"):
        assembly.spec_class("batery")


def test_context_and_clock_validate_like_the_scenario():
    ctx = assembly.context(site={"lat": 36.1, "lon": -79.95, "tz": "America/New_York"}, grid="x")
    assert ctx == {
        "site": {**ctx["site"], "altitude": 0.0},
        "weather": "723170TYA.CSV",
        "grid": "x",
        "seed": 0,
    }
    with pytest.raises(assembly.SpecError) as info:
        assembly.context(
            site={"lat": 136, "lon": 0, "tz": "Mars/Olympus"}, grid="x", weather="no.csv", seed=-1
        )
    paths = {p.path for p in info.value.problems}
    assert paths == {"site.lat", "site.tz", "weather", "seed"}
    clock = assembly.clock("2016-06-21T00:00-04:00", "15min", "1d")
    assert (clock.step_s, clock.n_steps) == (900, 96)
    assert assembly.clock("2016-06-21T00:00Z", 3600, 7200).n_steps == 2
    with pytest.raises(assembly.SpecError) as info:
        assembly.clock("2016-06-21T00:00", "7min", "1h")
    assert {p.path for p in info.value.problems} == {"start", "duration"}
