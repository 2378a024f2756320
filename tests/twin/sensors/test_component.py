"""The sensors component: every reported quantity measured by default, both views kept."""

import numpy as np
import pandas as pd
import pytest

from twin.errors import ScenarioError
from twin.registry import get_model
from twin.results import load_results, wide
from twin.run import run_scenario
from twin.world import plan_world

REPORTED = {
    ("pv", "p_kw"),
    ("pv", "t_cell_c"),
    ("battery", "p_kw"),
    ("battery", "soc"),
    ("battery", "soh"),
    ("battery", "t_c"),
    ("load", "p_kw"),
    ("load", "q_kvar"),
    ("bus", "v_pu"),
    ("line", "loading_pct"),
    ("trafo", "trafo_loading_pct"),
    ("grid", "p_kw"),
    ("grid", "q_kvar"),
    ("grid", "f_hz"),
}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """The shipped day, run once with its default sensors."""
    import yaml

    from tests.conftest import ROOT
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    out = tmp_path_factory.mktemp("sensors") / "run"
    run_scenario(validate_scenario(raw), out)
    return load_results(out)


def test_every_reported_quantity_is_measured_beside_the_truth(day):
    measured = day[day["source"] == "measured"]
    pairs = set(measured.groupby(["kind", "quantity"], observed=True).groups)
    assert pairs == REPORTED
    # the same series as the twin's: every measured (asset, quantity) is a twin series too
    twin = day[day["source"] == "twin"]
    keys = ["asset", "kind", "quantity"]
    assert set(map(tuple, measured[keys].drop_duplicates().astype(str).values)) <= set(
        map(tuple, twin[keys].drop_duplicates().astype(str).values)
    )


def test_measurements_are_the_truth_within_their_class(day):
    for kind, quantity, sigma in (("load", "p_kw", 0.005), ("bus", "v_pu", 0.001)):
        true = wide(day, kind, quantity)
        meas = wide(day, kind, quantity, source="measured")
        rel = ((meas - true) / true.abs().clip(lower=1e-3)).stack()
        assert 0 < rel.abs().median() < 3 * sigma, (kind, quantity)
    # a state is stamped like the truth (one row more) and starts at the true value
    soc, soc_m = wide(day, "battery", "soc"), wide(day, "battery", "soc", source="measured")
    assert soc_m.index.equals(soc.index) and soc_m.iloc[0, 0] == soc.iloc[0, 0]
    # SoH is reported once an hour: 24 reports plus the initial value in a day
    assert wide(day, "battery", "soh", source="measured").notna().sum().iloc[0] == 25


def test_the_controller_acts_on_the_measurements(tmp_path, day_scenario):
    plan = plan_world(day_scenario(), tmp_path, "test")
    feeds = {(c.src.full_id, c.dst.full_id): c.attrs for c in plan.connections}
    assert feeds[("battery.bess", "rule.bess")] == (("soc.value", "soc"), ("soh.value", "soh"))
    assert feeds[("pv.pv_roof", "rule.site")] == (("p_kw.value", "p_kw"),)
    off = plan_world(day_scenario(sensors={"enabled": False}), tmp_path / "off", "test")
    feeds = {(c.src.full_id, c.dst.full_id): c.attrs for c in off.connections}
    assert feeds[("battery.bess", "rule.bess")] == (("soc", "soc"), ("soh", "soh"))
    assert not any(sim.params.get("sensors") for sim in off.simulators.values())


def test_classes_and_exclusions_are_configurable(tmp_path, small_raw):
    from twin.scenario import validate_scenario

    small_raw["sensors"] = {
        "classes": {"power": {"noise_pct": 0.0, "noise_abs": 0.0, "resolution": 0.0}},
        "exclude": ["line.loading_pct", "bus.v_pu"],
    }
    run_scenario(validate_scenario(small_raw), tmp_path / "run")
    results = load_results(tmp_path / "run")
    kinds = set(results[results["source"] == "measured"]["kind"].astype(str))
    assert "line" not in kinds and "bus" not in kinds
    true, meas = wide(results, "load", "p_kw"), wide(results, "load", "p_kw", "measured")
    lost = meas.isna()  # a perfect power sensor but for its dropouts
    assert lost.to_numpy().mean() < 0.01
    np.testing.assert_array_equal(meas[~lost].stack(), true[~lost].stack())


def test_same_seed_same_measurements_other_seed_other_noise(tmp_path, small_raw):
    from twin.scenario import validate_scenario

    def measured(seed, name):
        run_scenario(validate_scenario({**small_raw, "seed": seed}), tmp_path / name)
        return wide(load_results(tmp_path / name), "load", "p_kw", "measured")

    a, b, c = measured(1, "a"), measured(1, "b"), measured(2, "c")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


@pytest.mark.parametrize(
    ("sensors", "field"),
    [
        ({"classes": {"powr": {"noise_pct": 1}}}, "sensors.classes: unknown sensor class 'powr'"),
        ({"classes": {"power": {"noise_pctt": 1}}}, "sensors.classes.power.noise_pctt: unknown"),
        ({"classes": {"power": {"noise_pct": -1}}}, "sensors.classes.power.noise_pct"),
        ({"exclude": ["line.loading"]}, "sensors.exclude[0]"),
        ({"enabled": "sometimes"}, "sensors.enabled"),
    ],
)
def test_bad_sensor_settings_are_named(day_scenario, sensors, field):
    with pytest.raises(ScenarioError) as info:
        day_scenario(sensors=sensors)
    assert field in str(info.value)


def test_every_model_declares_known_sensor_classes():
    from models.sensors import SENSOR_CLASSES

    for name in ("pv", "battery", "load", "grid", "ev", "tariff", "rule"):
        cls = get_model(name)
        for port in cls.outputs.values():
            assert port.sensor is None or port.sensor in SENSOR_CLASSES, name


def test_measuring_one_quantity_less_leaves_the_other_readings_alone(tmp_path, small_raw):
    """Each output has its own random stream: excluding the module temperature does not
    change a single PV power reading (nor what the controller does with them)."""
    from twin.scenario import validate_scenario

    def pv_power(name, **sensors):
        run_scenario(validate_scenario({**small_raw, "sensors": sensors}), tmp_path / name)
        return wide(load_results(tmp_path / name), "pv", "p_kw", "measured")

    pd.testing.assert_frame_equal(pv_power("all"), pv_power("less", exclude=["pv.t_cell_c"]))
