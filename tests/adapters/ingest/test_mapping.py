import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.ingest.mapping import MappingError, compile_pattern, read_mapping_csv
from adapters.ingest.units import UnitError, conversion
from tests.adapters.ingest.conftest import make_mapper


def test_a_pattern_matches_within_one_level_with_literal_text_around_placeholders():
    regex = compile_pattern("field/{asset}/{quantity}-{n}")
    assert regex.match("field/bus_7/v-2").groupdict() == {
        "asset": "bus_7",
        "quantity": "v",
        "n": "2",
    }
    assert regex.match("field/bus_7/v") is None
    assert regex.match("field/a/b/v-2") is None  # {asset} never spans a '/'
    assert compile_pattern("plant/{asset}/{quantity}").match("plant/x.y/p+q") is not None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("field/{asset/{quantity}", "is not closed"),
        ("field/{asset}}/x", "closes no"),
        ("field/{asset}/{colour}", "unknown placeholder {colour}"),
        ("field/{asset}/{asset}", "used twice"),
        ("field/{asset}{quantity}", "literal text between"),
        ("field/+/{quantity}", "no MQTT wildcards"),
        ("", "empty pattern"),
    ],
)
def test_bad_patterns_are_named_errors_with_the_field_path(pattern, expected):
    with pytest.raises(MappingError, match=expected) as caught:
        compile_pattern(pattern, "ingest.mapping[3].pattern")
    assert caught.value.path == "ingest.mapping[3].pattern"


def test_a_rule_without_an_asset_is_refused_by_the_scenario_with_its_path(day_scenario):
    from twin.errors import ScenarioError

    ingest = {"mapping": [{"pattern": "field/x/{quantity}"}, {"pattern": "f/{asset}/{bad}"}]}
    with pytest.raises(ScenarioError) as caught:
        day_scenario(ingest=ingest)
    paths = {p.path for p in caught.value.problems}
    assert "ingest.mapping[0]" in paths and "ingest.mapping[1]" in paths
    text = str(caught.value)
    assert "no {asset} in the pattern" in text and "unknown placeholder {bad}" in text


def test_unknown_elements_quantities_and_units_are_scenario_problems(day_scenario, tmp_path):
    from twin.errors import ScenarioError

    table = tmp_path / "map.csv"
    table.write_text("topic,asset,quantity,unit,scale\nx/1,nowhere,p_kw,W,1\nx/2,bus_1,p_kw,W,1\n")
    ingest = {
        "mapping": [
            {
                "pattern": "f/{asset}/{quantity}",
                "quantities": {"v": {"quantity": "v_pu", "unit": "A"}},
            },
            {"pattern": "g/{quantity}", "asset": "nobody"},
            {"pattern": "h/{asset}/{quantity}", "quantities": {"x": {"quantity": "warp_kw"}}},
        ],
        "mapping_csv": str(table),
    }
    with pytest.raises(ScenarioError) as caught:
        day_scenario(ingest=ingest)
    problems = {p.path: p.message for p in caught.value.problems}
    assert "cannot be converted" in problems["ingest.mapping[0].quantities.v"]
    assert "no element named 'nobody'" in problems["ingest.mapping[1].asset"]
    assert "unknown twin quantity 'warp_kw'" in problems["ingest.mapping[2].quantities.x"]
    assert "no element named 'nowhere'" in problems["ingest.mapping_csv[x/1]"]
    assert "bus_1 has no quantity 'p_kw'" in problems["ingest.mapping_csv[x/2]"]


def test_the_mapper_maps_converts_and_caches_per_key(elements):
    mapper = make_mapper(elements)
    sensor = mapper.lookup("field/bus_7/v")
    assert (sensor.element, sensor.kind, sensor.quantity) == ("bus_7", "bus", "v_pu")
    vn = elements["bus_7"].vn_kv
    assert sensor.a == pytest.approx(math.sqrt(3) / (vn * 1000))
    redundant = mapper.lookup("field/bus_7/v-2")
    assert redundant.id == 1 and redundant.quantity == "v_pu"  # a sensor of its own
    assert mapper.lookup("field/bus_7/v") is sensor  # cached
    assert mapper.lookup("field/pv_roof/p").a == pytest.approx(1e-3)
    assert mapper.lookup("field/nowhere/p") is None  # unknown element
    assert mapper.lookup("field/bus_7/colour") is None  # unknown channel
    assert [s.key for s in mapper.sensors] == [
        "field/bus_7/v",
        "field/bus_7/v-2",
        "field/pv_roof/p",
    ]


def test_a_load_in_the_field_sign_is_turned_by_scale(elements):
    rules = [{"pattern": "m/{asset}/p", "quantity": "p_kw", "unit": "kW", "scale": -1}]
    sensor = make_mapper(elements, rules).lookup("m/load_3/p")
    assert (sensor.a, sensor.b) == (-1.0, -0.0)


def test_a_csv_table_maps_exact_keys_first(elements, tmp_path: Path):
    path = tmp_path / "map.csv"
    path.write_text(
        "topic,asset,quantity,unit,scale,min,max\n"
        "plant/meter 1/P,pv_roof,p_kw,kW,1,,50\n"
        "field/bus_7/v,bus_7,v_pu,kV,1,,\n"
    )
    table = read_mapping_csv(path)
    mapper = make_mapper(elements, table=table)
    meter = mapper.lookup("plant/meter 1/P")
    assert (meter.element, meter.quantity, meter.a, meter.high) == ("pv_roof", "p_kw", 1.0, 50.0)
    # the table wins over the pattern (kV line-to-line instead of V phase)
    assert mapper.lookup("field/bus_7/v").a == pytest.approx(1 / elements["bus_7"].vn_kv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("topic,asset,quantity\n", "missing column"),
        ("topic,asset,quantity,unit,scale,colour\n", "unknown column"),
        (
            "topic,asset,quantity,unit,scale\na,bus_1,v_pu,V,x\n",
            "line 2.*scale 'x' is not a number",
        ),
        ("topic,asset,quantity,unit,scale\na,bus_1,v_pu,V,1\na,bus_1,v_pu,V,1\n", "line 3.*twice"),
        ("topic,asset,quantity,unit,scale\n,bus_1,v_pu,V,1\n", "must not be empty"),
    ],
)
def test_a_bad_csv_is_a_named_error_naming_the_line(tmp_path: Path, text, expected):
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(MappingError, match=expected):
        read_mapping_csv(path)


@pytest.mark.parametrize(
    ("unit", "quantity", "value", "twin"),
    [
        ("W", "p_kw", 1500.0, 1.5),
        ("MW", "p_kw", 0.002, 2.0),
        ("var", "q_kvar", -250.0, -0.25),
        ("A", "i_from_ka", 120.0, 0.12),
        ("%", "soc", 55.0, 0.55),
        ("/", "soc", 0.55, 0.55),
        ("K", "t_c", 298.15, 25.0),
        ("Cel", "t_c", 25.0, 25.0),
        ("Hz", "f_hz", 50.0, 50.0),
        ("rad", "va_deg", math.pi, 180.0),
        (None, "p_kw", 3.0, 3.0),
    ],
)
def test_known_conversion_factors(unit, quantity, value, twin):
    a, b = conversion(unit, quantity)
    assert a * value + b == pytest.approx(twin)


def test_voltages_to_per_unit_line_and_phase():
    a, _ = conversion("V", "v_pu", vn_kv=0.4)
    assert a * 400.0 == pytest.approx(1.0)
    a, _ = conversion("V", "v_pu", vn_kv=0.4, voltage="phase")
    assert a * 400.0 / math.sqrt(3) == pytest.approx(1.0)
    a, _ = conversion("kV", "v_pu", vn_kv=20.0)
    assert a * 20.6 == pytest.approx(1.03)
    with pytest.raises(UnitError, match="needs the bus's nominal voltage"):
        conversion("V", "v_pu")
    with pytest.raises(UnitError, match="cannot be converted"):
        conversion("W", "v_pu", vn_kv=0.4)
    with pytest.raises(UnitError, match="unknown unit 'furlong'"):
        conversion("furlong", "p_kw")


SAME_DIMENSION = {
    "p_kw": ["W", "kW", "MW"],
    "q_kvar": ["var", "kvar", "Mvar"],
    "i_to_ka": ["A", "kA"],
    "t_c": ["Cel", "K"],
    "soh": ["%", "/"],
}


@given(
    st.sampled_from(sorted(SAME_DIMENSION)),
    st.data(),
    st.floats(-1e6, 1e6, allow_nan=False),
)
def test_a_value_converted_through_any_unit_of_its_dimension_comes_back(quantity, data, x):
    """twin -> unit u (inverse) -> twin is the identity, and two units agree on the twin value."""
    u, w = (
        data.draw(st.sampled_from(SAME_DIMENSION[quantity])),
        data.draw(st.sampled_from(SAME_DIMENSION[quantity])),
    )
    a, b = conversion(u, quantity)
    c, d = conversion(w, quantity)
    field_u = (x - b) / a
    field_w = (x - d) / c
    assert a * field_u + b == pytest.approx(x, rel=1e-9, abs=1e-6)
    assert c * field_w + d == pytest.approx(a * field_u + b, rel=1e-9, abs=1e-6)


@given(st.floats(0.1, 400.0), st.floats(0.5, 1.5))
def test_phase_and_line_voltages_give_the_same_per_unit(vn_kv, pu):
    line, _ = conversion("kV", "v_pu", vn_kv=vn_kv)
    phase, _ = conversion("kV", "v_pu", vn_kv=vn_kv, voltage="phase")
    assert line * (pu * vn_kv) == pytest.approx(phase * (pu * vn_kv / math.sqrt(3)))


def test_an_ev_parks_chargers_are_elements_with_their_rating_as_limit():
    import yaml

    from adapters.ingest.limits import element_table
    from models.gridnet import load_tables
    from tests.conftest import ROOT
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    scenario = validate_scenario(raw)
    table = element_table(scenario, load_tables(scenario.grid.source), 1.5)
    (park,) = scenario.units("ev")
    charger = table[f"{park['name']}_c0"]  # what twin field publishes and the estimate sums
    assert "p_kw" in charger.quantities
    assert charger.ranges["p_kw"][0] == pytest.approx(-1.5 * park["p_max_kw"])
