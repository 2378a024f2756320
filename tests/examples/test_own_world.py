"""``examples/own_world.py``: mosaik-csv drives twin models; the grid local or remote."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from models.pv import PVPlant
from models.weather import weather_at
from tests.conftest import ROOT
from tests.support import modelchain_ac_kw
from twin import assembly

PATH = ROOT / "examples" / "own_world.py"


def load_example():
    spec = importlib.util.spec_from_file_location("own_world", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture(scope="module")
def runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    return example.run(remote=False), example.run(remote=True)


def test_the_grid_in_its_own_process_gives_identical_results(runs):
    local, remote = runs
    assert len(local) == 96 and list(local.filter(like="v_pu_")) == [
        f"v_pu_bus_{i}" for i in range(4)
    ]
    pd.testing.assert_frame_equal(local, remote, check_exact=True)


def test_the_grid_balances_at_its_point_of_connection(runs):
    frame, _ = runs
    # import + PV + load (both signed into their bus) = losses, every step
    balance = frame["grid_p_kw"] + frame["pv_p_kw"] + frame["load_p_kw"] - frame["losses_kw"]
    np.testing.assert_allclose(balance, 0.0, atol=1e-6)
    assert (frame["losses_kw"] > 0).all()
    assert (frame["grid_p_kw"] < 0).any() and (frame["grid_p_kw"] > 0).any()  # export at noon
    volts = frame.filter(like="v_pu_")
    assert ((volts > 0.95) & (volts < 1.05)).all().all()
    export = frame["grid_p_kw"].idxmin()  # the PV's bus (3) rises above the load's (2)
    assert frame.loc[export, "v_pu_bus_3"] > frame.loc[export, "v_pu_bus_2"]


def test_the_csv_drives_the_load_and_the_pv(runs):
    frame, _ = runs
    csv = pd.read_csv(example.CSV_PATH, index_col=0, parse_dates=True)
    np.testing.assert_array_equal(frame["load_p_kw"], -csv["load_kw"].to_numpy())
    parts = assembly.assemble(
        start=example.START,
        step="15min",
        duration="1d",
        site=example.SITE,
        grid=example.GRID,
        assets={"pv": [example.PV]},
    )
    # the CSV holds the weather file at every step's middle: the file-driven plant
    file_driven = PVPlant(parts.units["pv"], parts.clock, parts.context).exogenous()["p_kw"]
    np.testing.assert_allclose(frame["pv_p_kw"], file_driven[:, 0], rtol=0, atol=1e-3)
    assert frame["pv_p_kw"].max() > 5.0 and (frame["pv_p_kw"] >= 0).all()
    # and pvlib's ModelChain on the CSV's weather agrees on the day's energy
    times = (parts.clock.times + pd.Timedelta(minutes=7.5)).tz_convert(example.SITE["tz"])
    weather = csv[list(example.WEATHER)].set_axis(times)
    reference = modelchain_ac_kw(times, weather, parts.units["pv"][0])
    assert frame["pv_p_kw"].sum() == pytest.approx(reference.sum(), rel=0.005)


def test_the_shipped_csv_holds_the_weather_files_step_means():
    csv = pd.read_csv(example.CSV_PATH, index_col=0, parse_dates=True)
    clock = assembly.clock(example.START, "15min", "1d")
    assert (csv.index == clock.times.tz_localize(None)).all()
    middle = (clock.times + pd.Timedelta(minutes=7.5)).tz_convert(example.SITE["tz"])
    weather = weather_at(middle, "723170TYA.CSV")
    for column in example.WEATHER:
        np.testing.assert_allclose(csv[column], weather[column], atol=5e-5)
    assert (csv["load_kw"] > 0).all()  # consumption, as a meter reads it


def test_summary_reports_energies_and_voltages(runs):
    text = example.summary(runs[0])
    assert "PV " in text and "grid import" in text and "voltages" in text
