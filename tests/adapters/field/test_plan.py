import numpy as np
import pytest

from adapters.field.errors import FieldError
from adapters.field.plan import PlanOptions, Plant, sensor_plan


@pytest.fixture(scope="module")
def plant(tiny):
    return Plant.from_scenario(tiny)


def test_every_group_and_channel_is_planned(plant):
    net = plant.net
    s = sensor_plan(plant, PlanOptions())
    counts = s.groupby("kind").size().to_dict()
    assert counts["bus"] == len(net.bus)
    assert counts["line"] == 6 * int(net.line["in_service"].sum())
    assert counts["trafo"] == 6 * len(net.trafo)
    assert counts["load"] == 2 * len(net.load) and counts["battery"] == 4
    assert counts["pv"] == 2 * 2 and counts["grid"] == 3
    assert s["sensor"].is_unique
    bess = s[s["element"] == "bess"].set_index("channel")
    assert bess.loc["soc", "unit"] == "%" and bess.loc["soc", "factor"] == 100
    assert bess.loc["temp", "quantity"] == "t_c" and bess.loc["p", "unit"] == "W"
    assert set(s.loc[s["kind"] == "grid", "channel"]) == {"p", "q", "f"}
    assert s.loc[s["element"] == "line_0", "channel"].tolist() == [
        "p_from", "q_from", "i_from", "p_to", "q_to", "i_to"
    ]  # fmt: skip


def test_loads_are_metered_consumption_positive(plant):
    s = sensor_plan(plant, PlanOptions(groups=("assets",)))
    loads = s[s["kind"] == "load"]
    assert set(loads["channel"]) == {"p_load", "q_load"}
    assert (loads["scale"] == -1).all() and (loads["factor"] == -1000).all()
    assert (s.loc[s["kind"] != "load", "scale"] == 1).all()


def test_bus_voltage_is_phase_volts_on_lv_and_kv_line_above(plant):
    s = sensor_plan(plant, PlanOptions(groups=("bus",))).set_index("element")
    vn = plant.net.bus["vn_kv"]
    lv, mv = vn.idxmin(), vn.idxmax()
    assert vn[lv] < 1 < vn[mv]
    assert s.loc[f"bus_{lv}", "unit"] == "V" and s.loc[f"bus_{lv}", "voltage"] == "phase"
    assert s.loc[f"bus_{lv}", "factor"] == pytest.approx(vn[lv] * 1000 / np.sqrt(3))
    assert s.loc[f"bus_{mv}", "unit"] == "kV" and s.loc[f"bus_{mv}", "factor"] == vn[mv]


def test_redundancy_suffixes_channels_and_keeps_copies_apart(plant):
    one = sensor_plan(plant, PlanOptions(groups=("bus", "poc"), gateway_size=7))
    three = sensor_plan(plant, PlanOptions(groups=("bus", "poc"), redundancy=3, gateway_size=7))
    assert len(three) == 3 * len(one)
    assert "field/bus_7/v-2" in set(three["sensor"]) and "field/bus_7/v-3" in set(three["sensor"])
    by_key = three.set_index("sensor")
    assert by_key.loc["field/bus_7/v", "gateway"] != by_key.loc["field/bus_7/v-2", "gateway"]
    assert three.groupby("gateway").size().max() == 7


@pytest.mark.parametrize(
    ("fmt", "topic"),
    [("topic", "x/y/bus_3/v"), ("json", "x/y/gw/gw0"), ("senml", "x/y/gw/gw0/senml")],
)
def test_topics_per_format_and_the_key_is_the_same(plant, fmt, topic):
    s = sensor_plan(plant, PlanOptions(groups=("bus",), fmt=fmt, prefix="x/y", gateway_size=50))
    row = s[s["element"] == "bus_3"].iloc[0]
    assert row["sensor"] == "x/y/bus_3/v" and row["topic"] == topic


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PlanOptions(groups=("bus", "lines")), "--groups"),
        (PlanOptions(redundancy=0), "--redundancy"),
        (PlanOptions(gateway_size=0), "--gateway-size"),
        (PlanOptions(fmt="xml"), "--format"),
        (PlanOptions(prefix="field/#"), "--prefix"),
    ],
)
def test_bad_options_are_named(plant, options, message):
    with pytest.raises(FieldError, match=message):
        sensor_plan(plant, options)


def test_ev_chargers_are_metered_as_consumers_and_their_soc_as_is():
    from tests.adapters.field.conftest import ROOT
    from twin.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "ev_depot.yaml")
    s = sensor_plan(Plant.from_scenario(scenario), PlanOptions(groups=("assets",)))
    ev = s[s["kind"] == "ev"].set_index("sensor")
    park = scenario.units("ev")[0]
    assert len(ev) == 3 * park["chargers"]
    c0 = f"field/{park['name']}_c0"
    assert ev.loc[f"{c0}/p_load", "scale"] == -1 and ev.loc[f"{c0}/q_load", "scale"] == -1
    assert ev.loc[f"{c0}/soc", "factor"] == 100 and ev.loc[f"{c0}/soc", "scale"] == 1
