import numpy as np
import pandas as pd
import pvlib
import pytest

from models.pv import PVPlant, pv_plant_power
from models.weather import weather_at
from tests.conftest import SITE, make_clock

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


def modelchain_ac_kw(times: pd.DatetimeIndex, weather: pd.DataFrame, plant: dict) -> pd.Series:
    """pvlib's own ModelChain on the same inputs: the reference."""
    location = pvlib.location.Location(SITE["lat"], SITE["lon"], SITE["tz"], SITE["altitude"])
    system = pvlib.pvsystem.PVSystem(
        surface_tilt=plant["tilt_deg"],
        surface_azimuth=plant["azimuth_deg"],
        albedo=plant["albedo"],
        module_parameters={"pdc0": plant["p_dc_kw"] * 1000, "gamma_pdc": plant["gamma_pdc"]},
        inverter_parameters={
            "pdc0": plant["p_ac_kw"] * 1000 / plant["eta_inv_nom"],
            "eta_inv_nom": plant["eta_inv_nom"],
        },
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
            plant["temperature_model"]
        ],
        losses_parameters={
            "soiling": 2,
            "shading": 3,
            "snow": 0,
            "mismatch": 2,
            "wiring": 2,
            "connections": 0.5,
            "lid": 1.5,
            "nameplate_rating": 1,
            "age": 0,
            "availability": 3,
        },
    )
    chain = pvlib.modelchain.ModelChain(
        system,
        location,
        transposition_model="haydavies",
        aoi_model="physical",
        spectral_model="no_loss",
        losses_model="pvwatts",
        dc_model="pvwatts",
        ac_model="pvwatts",
    )
    chain.run_model(weather)
    return chain.results.ac.clip(lower=0).fillna(0) / 1000.0


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


def test_sapm_temperature_model_names_are_pvlibs_and_importing_pv_skips_pvlib():
    from models.pv import SAPM_TEMPERATURE_MODELS
    from tests.support import imported

    assert SAPM_TEMPERATURE_MODELS == tuple(pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"])
    assert imported("import models.pv", "pvlib") == []
