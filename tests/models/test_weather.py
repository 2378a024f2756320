import numpy as np
import pandas as pd
import pytest

from models.pv import PVPlant, pv_plant_power
from models.weather import WeatherFileError, read_weather_file, tmy_metadata, weather_at
from tests.conftest import SITE
from tests.models.test_pv import DEFAULTS, PLANTS

FILE_TZ = "Etc/GMT+5"  # the bundled Greensboro TMY3 file's standard time (UTC-5)
PLANT = {**DEFAULTS, **PLANTS[0], "name": "pv1"}


def test_29_february_repeats_28_february_weather():
    # between the centres of the first and the last hour (the half hours at either end
    # interpolate towards the neighbouring days, 27 Feb and 1 Mar)
    feb_29 = pd.date_range("2016-02-29 00:30", "2016-02-29 23:30", freq="5min", tz=FILE_TZ)
    leap = weather_at(feb_29, "723170TYA.CSV")
    day_before = weather_at(feb_29 - pd.Timedelta(days=1), "723170TYA.CSV")
    np.testing.assert_array_equal(leap.to_numpy(), day_before.to_numpy())
    assert leap["ghi"].max() > 100.0


def test_days_after_29_february_keep_their_calendar_dates():
    june = pd.date_range("2016-06-21", periods=24, freq="1h", tz=FILE_TZ)
    non_leap = weather_at(june + pd.DateOffset(years=-1), "723170TYA.CSV")
    np.testing.assert_array_equal(weather_at(june, "723170TYA.CSV").to_numpy(), non_leap.to_numpy())


@pytest.mark.parametrize("tz", [FILE_TZ, "America/New_York", "Europe/Berlin", "Australia/Sydney"])
@pytest.mark.parametrize("step_s", [900, 3600])
def test_pv_on_29_february_is_pvlib_on_28_february_weather(tz, step_s):
    start = pd.Timestamp("2016-02-29", tz=tz)
    n = 86400 // step_s
    from models.base import Clock

    clock = Clock(start, step_s, n)
    site = {**SITE, "tz": tz}
    model = PVPlant([PLANT], clock, {"site": site, "weather": "723170TYA.CSV"})
    p_kw = model.exogenous()["p_kw"][:, 0]
    mid = clock.times + pd.Timedelta(seconds=step_s / 2)
    # reference: pvlib's chain at 29 Feb's sun positions with the weather of the same
    # file-local hour a day earlier, wherever the file's calendar says 29 February
    file_local = mid.tz_convert(FILE_TZ)
    on_29 = np.asarray((file_local.month == 2) & (file_local.day == 29))
    weather = weather_at(mid - pd.Timedelta(days=1), "723170TYA.CSV")
    weather.index = mid
    reference = pv_plant_power(mid, weather, SITE["lat"], SITE["lon"], SITE["altitude"], PLANT)
    np.testing.assert_allclose(p_kw[on_29], reference["p_ac_kw"].to_numpy()[on_29], atol=1e-9)
    assert p_kw.sum() * step_s / 3600 > 1.0  # never a day of zeros


def test_tmy2_is_read_in_the_units_of_tmy3():
    values, meta = read_weather_file(str(tmy_path("12839.tm2")))
    assert values.shape == (8760, 5)
    assert meta["latitude"] == pytest.approx(25.8)
    assert meta["longitude"] == pytest.approx(-80.27, abs=0.01)
    times = pd.date_range("2016-06-21", periods=24, freq="1h", tz="Etc/GMT+5")
    june = weather_at(times, "12839.tm2")
    assert 20.0 < june["temp_air"].mean() < 35.0  # Miami in June, degC not tenths
    assert 0.0 < june["wind_speed"].mean() < 15.0
    assert june["ghi"].max() > 500.0


def test_tmy2_hours_line_up_with_the_sun():
    # the hour ending 13:00 local standard time is the sunniest on average
    values, _ = read_weather_file(str(tmy_path("12839.tm2")))
    by_hour = values[:, 0].reshape(365, 24).mean(axis=0)
    assert int(np.argmax(by_hour)) + 1 in (12, 13)


def test_malformed_weather_file_is_a_named_error(tmp_path):
    bad = tmp_path / "weather.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(WeatherFileError, match="weather.csv.*TMY3"):
        read_weather_file(str(bad))


def test_metadata_has_the_files_utc_offset():
    assert tmy_metadata("723170TYA.CSV")["tz_hours"] == -5.0


def tmy_path(name):
    from models.weather import resolve_weather_path

    return resolve_weather_path(name)


def test_a_weather_file_read_from_a_warm_disk_cache_equals_the_parse_and_skips_pvlib(
    tmp_path, monkeypatch
):
    from models import weather
    from models.diskcache import CACHE_ENV
    from tests.support import imported

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    weather._read_weather_file.cache_clear()
    path = str(weather.resolve_weather_path("723170TYA.CSV"))
    cold = read_weather_file(path)
    weather._read_weather_file.cache_clear()
    warm = read_weather_file(path)
    weather._read_weather_file.cache_clear()
    parsed = weather._parse_weather_file(path)
    for values, meta in (cold, warm):
        np.testing.assert_array_equal(values, parsed[0])
        assert meta == parsed[1] and not values.flags.writeable
    assert len(list((tmp_path / "weather").iterdir())) == 1
    probe = f"from models.weather import tmy_metadata\nprint(tmy_metadata({path!r}))"
    assert imported(probe, "pvlib") == []
