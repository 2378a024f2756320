import numpy as np
import pandas as pd
import pvlib
import pytest

from models.pv import PVPlant, pv_plant_power
from models.weather import weather_at
from tests.conftest import SITE, make_clock
from tests.support import modelchain_ac_kw

PLANTS = [
    {"p_dc_kw": 30.0, "p_ac_kw": 27.0, "tilt_deg": 30.0, "azimuth_deg": 180.0},
    {"p_dc_kw": 20.0, "p_ac_kw": 12.0, "tilt_deg": 15.0, "azimuth_deg": 240.0},  # clips
    {"p_dc_kw": 5.0, "p_ac_kw": 5.0, "tilt_deg": 60.0, "azimuth_deg": 90.0},
]
DEFAULTS = {
    "gamma_pdc": -0.0037,
    "eta_inv_nom": 0.96,
    "losses_pct": 14.08,
    "albedo": 0.25,
    "temperature_model": "open_rack_glass_polymer",
}


@pytest.mark.parametrize("plant", PLANTS)
@pytest.mark.parametrize("start", ["2016-06-21T00:00:00-04:00", "2016-12-21T00:00:00-05:00"])
def test_energy_matches_pvlib_modelchain(plant, start):
    plant = {**DEFAULTS, **plant}
    times = pd.date_range(start, periods=7 * 96, freq="15min").tz_convert(SITE["tz"])
    weather = weather_at(times, "723170TYA.CSV")
    ours = pv_plant_power(times, weather, SITE["lat"], SITE["lon"], SITE["altitude"], plant)
    reference = modelchain_ac_kw(times, weather, plant)
    assert pvlib.pvsystem.pvwatts_losses() == pytest.approx(14.08, abs=0.01)
    assert ours["p_ac_kw"].sum() == pytest.approx(reference.sum(), rel=0.005)
    assert ours["p_ac_kw"].max() <= plant["p_ac_kw"] + 1e-9  # inverter clipping


def test_plant_model_derates_and_indexes_the_right_step():
    clock = make_clock(n=96)
    unit = {**DEFAULTS, **PLANTS[0], "name": "pv1"}
    model = PVPlant([unit], clock, {"site": SITE, "weather": "723170TYA.CSV"})
    noon = clock.time_at(12 * 3600)
    full = model.step(noon, 900, {"derate": np.array([1.0])})
    half = model.step(noon, 900, {"derate": np.array([0.5])})
    assert full["p_kw"][0] > 10.0  # a clear-ish June noon
    assert half["p_kw"][0] == pytest.approx(0.5 * full["p_kw"][0])
    night = model.step(clock.time_at(2 * 3600), 900, {"derate": np.array([1.0])})
    assert night["p_kw"][0] == 0.0


def test_weather_rejects_naive_times():
    with pytest.raises(ValueError, match="tz-aware"):
        weather_at(pd.date_range("2016-01-01", periods=3, freq="h"), "723170TYA.CSV")


def test_unknown_weather_file_names_the_bundled_ones():
    with pytest.raises(FileNotFoundError, match="723170TYA.CSV"):
        weather_at(pd.date_range("2016-01-01", periods=3, freq="h", tz="UTC"), "nope.csv")


def mid_step_weather(clock) -> pd.DataFrame:
    """The weather file at the middle of every step: what the file-driven model uses."""
    times = (clock.times + pd.Timedelta(seconds=clock.step_s / 2)).tz_convert(SITE["tz"])
    return weather_at(times, "723170TYA.CSV")


def step_with_weather(model, weather: pd.DataFrame, columns) -> pd.DataFrame:
    rows = []
    for k in range(model.clock.n_steps):
        inputs = {"derate": np.ones(model.n)}
        inputs.update({c: np.full(model.n, weather[c].iloc[k]) for c in columns})
        rows.append(model.step(model.clock.time_at(k * model.clock.step_s), 900, inputs))
    return pd.DataFrame({key: np.array([row[key] for row in rows])[:, 0] for key in rows[0]})


def test_weather_inputs_fed_the_files_values_equal_the_file_driven_output():
    clock = make_clock(n=96)
    model = PVPlant(
        [{**DEFAULTS, **PLANTS[1], "name": "pv1"}],
        clock,
        {"site": SITE, "weather": "723170TYA.CSV"},
    )
    weather = mid_step_weather(clock)
    fed = step_with_weather(model, weather, ["ghi", "dni", "dhi", "temp_air", "wind_speed"])
    unfed = step_with_weather(model, weather, [])
    assert unfed["p_kw"].max() > 10.0
    np.testing.assert_allclose(fed["p_kw"], unfed["p_kw"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fed["t_cell_c"], unfed["t_cell_c"], rtol=1e-9)
    np.testing.assert_allclose(unfed["p_kw"], model.exogenous()["p_kw"][:, 0], rtol=0, atol=0)


def test_weather_inputs_drive_the_plant_as_pvlib_modelchain_does():
    """Clear-sky irradiance (not the file's) through the inputs: pvlib's ModelChain agrees."""
    clock = make_clock(n=96)
    plant = {**DEFAULTS, **PLANTS[0]}
    model = PVPlant([{**plant, "name": "pv1"}], clock, {"site": SITE, "weather": "723170TYA.CSV"})
    times = (clock.times + pd.Timedelta(seconds=450)).tz_convert(SITE["tz"])
    location = pvlib.location.Location(SITE["lat"], SITE["lon"], SITE["tz"], SITE["altitude"])
    weather = location.get_clearsky(times)  # ghi, dni, dhi
    weather["temp_air"] = 31.0
    weather["wind_speed"] = 0.5
    fed = step_with_weather(model, weather, ["ghi", "dni", "dhi", "temp_air", "wind_speed"])
    reference = modelchain_ac_kw(times, weather, plant)
    assert fed["p_kw"].sum() == pytest.approx(reference.sum(), rel=0.005)
    np.testing.assert_allclose(fed["p_kw"], reference.to_numpy(), atol=0.01 * plant["p_ac_kw"])
    # a clear sky gives more than the file's (partly cloudy) day
    assert fed["p_kw"].sum() > model.exogenous()["p_kw"][:, 0].sum()


def test_an_unconnected_weather_input_keeps_the_files_value():
    clock = make_clock(n=96)
    model = PVPlant(
        [{**DEFAULTS, **PLANTS[0], "name": "pv1"}],
        clock,
        {"site": SITE, "weather": "723170TYA.CSV"},
    )
    weather = mid_step_weather(clock)
    hot = weather.assign(temp_air=weather["temp_air"] + 20.0)
    only_temperature = step_with_weather(model, hot, ["temp_air"])
    everything = step_with_weather(model, hot, ["ghi", "dni", "dhi", "temp_air", "wind_speed"])
    unfed = step_with_weather(model, weather, [])
    np.testing.assert_allclose(only_temperature["p_kw"], everything["p_kw"], rtol=1e-9, atol=1e-12)
    noon = 12 * 4
    assert only_temperature["t_cell_c"][noon] == pytest.approx(unfed["t_cell_c"][noon] + 20.0)
    assert only_temperature["p_kw"][noon] < unfed["p_kw"][noon]  # hotter cells, less power
    nan = {"derate": np.ones(1), "ghi": np.array([np.nan])}
    assert model.step(clock.time_at(noon * 900), 900, nan)["p_kw"][0] == unfed["p_kw"][noon]


def test_sapm_temperature_model_names_are_pvlibs_and_importing_pv_skips_pvlib():
    from models.pv import SAPM_TEMPERATURE_MODELS
    from tests.support import imported

    assert SAPM_TEMPERATURE_MODELS == tuple(pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"])
    assert imported("import models.pv", "pvlib") == []
