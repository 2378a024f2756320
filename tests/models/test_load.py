import numpy as np
import pandas as pd
import pytest
import simbench

from models.base import Clock
from models.gridnet import load_net
from models.load import Load

SPEC = "1-LV-rural1--0-sw"


@pytest.mark.parametrize("start", ["2016-03-01T00:00:00", "2016-08-15T06:00:00"])
def test_simbench_loads_equal_simbench_absolute_values(start):
    net = load_net(SPEC)
    absolute = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    units = [
        {
            "name": f"load_{i}",
            "p_kw": row.p_mw * 1000,
            "q_kvar": row.q_mvar * 1000,
            "profile": row.profile,
        }
        for i, row in net.load.iterrows()
    ]
    clock = Clock(pd.Timestamp(start, tz="Europe/Berlin"), 900, 8)
    model = Load(units, clock, {"site": {"tz": "Europe/Berlin"}, "grid": SPEC})
    first_row = (pd.Timestamp(start) - pd.Timestamp("2016-01-01")) // pd.Timedelta("15min")
    for k in range(8):
        out = model.step(clock.time_at(k * 900), 900, {"scale": np.ones(len(units))})
        expected_p = absolute[("load", "p_mw")].iloc[first_row + k].to_numpy() * 1000
        expected_q = absolute[("load", "q_mvar")].iloc[first_row + k].to_numpy() * 1000
        np.testing.assert_allclose(-out["p_kw"], expected_p, rtol=1e-12)
        np.testing.assert_allclose(-out["q_kvar"], expected_q, rtol=1e-12)


def test_constant_load_is_negative_and_scaled():
    clock = Clock(pd.Timestamp("2016-01-01", tz="UTC"), 900, 4)
    model = Load([{"name": "l", "p_kw": 3.0, "q_kvar": 1.0, "profile": None}], clock)
    out = model.step(clock.time_at(0), 900, {"scale": np.array([2.0])})
    assert out["p_kw"][0] == pytest.approx(-6.0)
    assert out["q_kvar"][0] == pytest.approx(-2.0)


def test_csv_profile(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("time,p_pu\n2016-01-01T00:00:00Z,0.5\n2016-01-01T00:30:00Z,1.0\n")
    clock = Clock(pd.Timestamp("2016-01-01", tz="UTC"), 900, 4)
    model = Load([{"name": "l", "p_kw": 4.0, "q_kvar": 0.0, "profile": str(path)}], clock)
    p = [
        model.step(clock.time_at(k * 900), 900, {"scale": np.ones(1)})["p_kw"][0] for k in range(4)
    ]
    assert p == pytest.approx([-2.0, -2.0, -4.0, -4.0])


def test_absolute_power_inputs_replace_the_profile_step_by_step(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "time,p_pu,q_pu\n2016-01-01T00:00:00Z,0.5,0.25\n2016-01-01T01:00:00Z,0.5,0.25\n"
    )
    clock = Clock(pd.Timestamp("2016-01-01", tz="UTC"), 900, 4)
    units = [{"name": f"l{i}", "p_kw": 4.0, "q_kvar": 2.0, "profile": str(path)} for i in (1, 2)]
    model = Load(units, clock)
    inputs = {
        "scale": np.ones(2),
        "p_kw": np.array([3.5, np.nan]),  # consumed: > 0
        "q_kvar": np.array([np.nan, 0.7]),
    }
    out = model.step(clock.time_at(900), 900, inputs)
    # seen from the bus, a consumption is negative; NaN keeps the profile's value
    np.testing.assert_array_equal(out["p_kw"], [-3.5, -2.0])
    np.testing.assert_array_equal(out["q_kvar"], [-0.5, -0.7])
    doubled = model.step(clock.time_at(900), 900, {**inputs, "scale": np.full(2, 2.0)})
    np.testing.assert_array_equal(doubled["p_kw"], [-7.0, -4.0])


def test_nothing_connected_means_the_profile():
    clock = Clock(pd.Timestamp("2016-01-01", tz="UTC"), 900, 4)
    model = Load([{"name": "l", "p_kw": 3.0, "q_kvar": 1.0, "profile": None}], clock)
    defaults = model.default_inputs()
    assert np.isnan(defaults["p_kw"]).all() and np.isnan(defaults["q_kvar"]).all()
    out = model.step(clock.time_at(0), 900, defaults)
    assert (out["p_kw"][0], out["q_kvar"][0]) == (-3.0, -1.0)
