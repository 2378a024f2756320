"""Exogenous series are step means: energy-conserving at any step length."""

import numpy as np
import pandas as pd
import pytest

from models.base import Clock
from models.load import Load
from models.profiles import simbench_profile_table
from models.pv import PVPlant
from models.series import interval_means
from models.tariff import Tariff
from tests.conftest import SITE
from tests.models.test_pv import DEFAULTS, PLANTS

DAY_S = 86400
GRID = "1-LV-rural1--0-sw"
STEPS_S = [3600, 1200, 900, 420, 300, 60]  # longer, equal, shorter, non-divisors (7 min)


def minute_energy(per_quarter_hour: np.ndarray, first_row: int, minutes: int) -> float:
    """Reference: the 15-min profile held per minute, summed over ``minutes`` (unit * h)."""
    per_minute = np.repeat(per_quarter_hour[first_row:], 15)
    return float(per_minute[:minutes].sum() / 60.0)


def run_energy(model, clock: Clock, quantity: str = "p_kw") -> float:
    return float(model.exogenous()[quantity].sum() * clock.step_s / 3600.0)


def load_model(start: str, tz: str, step_s: int, duration_s: int = DAY_S) -> tuple[Load, Clock]:
    clock = Clock(pd.Timestamp(start, tz=tz), step_s, -(-duration_s // step_s))
    unit = {"name": "h", "p_kw": 4.0, "q_kvar": 1.0, "profile": "H0-A"}
    return Load([unit], clock, {"site": {"tz": tz}, "grid": GRID}), clock


def test_interval_means_of_a_step_series_are_exact():
    breaks = np.array([0.0, 10.0, 20.0, 30.0])
    values = np.array([1.0, 3.0, 5.0])
    means = interval_means(breaks, values, np.array([0.0, 5.0, 7.0, 25.0]), 5.0)
    np.testing.assert_allclose(means, [1.0, 1.0, 1.8, 5.0])
    with pytest.raises(ValueError, match="covers"):
        interval_means(breaks, values, np.array([28.0]), 5.0)


@pytest.mark.parametrize("step_s", STEPS_S)
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Asia/Kathmandu"])
def test_load_energy_equals_the_profile_energy_at_any_step(step_s, tz):
    model, clock = load_model("2016-05-10T00:00:00", tz, step_s)
    profile = simbench_profile_table(GRID)["H0-A_pload"].to_numpy()
    first_row = (31 + 29 + 31 + 30 + 9) * 96  # 10 May, local wall clock
    expected = minute_energy(profile, first_row, clock.end_s // 60) * 4.0
    assert -run_energy(model, clock) == pytest.approx(expected, rel=1e-12)


def test_one_hour_steps_average_the_quarter_hours():
    model, clock = load_model("2016-05-10T00:00:00", "UTC", 3600)
    fine, _ = load_model("2016-05-10T00:00:00", "UTC", 900)
    hourly_mean = fine.exogenous()["p_kw"][:, 0].reshape(24, 4).mean(axis=1)
    np.testing.assert_allclose(model.exogenous()["p_kw"][:, 0], hourly_mean, rtol=1e-12)


@pytest.mark.parametrize("day", ["2016-03-27", "2016-10-30"])
@pytest.mark.parametrize("step_s", [3600, 420, 7200])
def test_load_energy_is_conserved_across_dst_changes(day, step_s):
    # the local day is 23 h (spring) or 25 h (autumn) long
    start = pd.Timestamp(day, tz="Europe/Berlin")
    length_s = int((start + pd.DateOffset(days=1) - start).total_seconds())
    assert length_s in (23 * 3600, 25 * 3600)
    coarse, clock = load_model(day, "Europe/Berlin", step_s, length_s)
    fine, fine_clock = load_model(day, "Europe/Berlin", 900, length_s)
    margin, _ = load_model(day, "Europe/Berlin", 900, length_s + 7200)
    # reference: the quarter-hour values held per minute over the coarse run's span
    per_minute = np.repeat(margin.exogenous()["p_kw"][:, 0], 15)
    expected = per_minute[: clock.end_s // 60].sum() / 60.0
    assert run_energy(coarse, clock) == pytest.approx(expected, rel=1e-12)
    # the day's energy is the profile's 23 h / 25 h of wall-clock quarter-hours
    profile = simbench_profile_table(GRID)["H0-A_pload"].to_numpy() * 4.0
    first_row = (start.dayofyear - 1) * 96
    rows = np.arange(first_row, first_row + 96)
    day_energy = profile[rows].sum() / 4.0
    shift_energy = profile[first_row + 8 : first_row + 12].sum() / 4.0  # 02:00-03:00
    expected_day = day_energy - shift_energy if length_s < DAY_S else day_energy + shift_energy
    assert -run_energy(fine, fine_clock) == pytest.approx(expected_day, rel=1e-12)


@pytest.mark.parametrize("step_s", [3600, 1200, 420, 300])
def test_time_of_use_price_is_the_step_mean(step_s):
    clock = Clock(pd.Timestamp("2016-05-10", tz="Europe/Berlin"), step_s, -(-DAY_S // step_s))
    unit = {
        "name": "tariff",
        "import_eur_kwh": 0.20,
        "export_eur_kwh": 0.05,
        "periods": [{"start": "07:10", "end": "09:20", "import_eur_kwh": 0.50}],
    }
    price = Tariff([unit], clock, {"site": {"tz": "Europe/Berlin"}}).exogenous()
    # cost of 1 kW over the run = integral of the price
    minutes = clock.end_s // 60
    per_minute = np.full(minutes, 0.20)
    per_minute[7 * 60 + 10 : 9 * 60 + 20] = 0.50
    expected = per_minute.sum() / 60.0
    cost = price["price_import_eur_kwh"][:, 0].sum() * step_s / 3600
    assert cost == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step_s", [7200, 3600, 1200, 420])
def test_price_csv_is_averaged_and_must_cover_the_run(tmp_path, step_s):
    hours = pd.date_range("2016-05-10", periods=26, freq="1h", tz="UTC")
    prices = np.linspace(0.1, 0.35, 26)
    path = tmp_path / "prices.csv"
    pd.DataFrame({"time": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "import_eur_kwh": prices}).to_csv(
        path, index=False
    )
    clock = Clock(hours[0], step_s, -(-DAY_S // step_s))
    unit = {"name": "t", "import_eur_kwh": 0.0, "export_eur_kwh": 0.0, "price_csv": str(path)}
    mean = Tariff([unit], clock, {}).exogenous()["price_import_eur_kwh"][:, 0]
    expected = np.repeat(prices, 60)[: clock.end_s // 60].sum() / 60.0
    assert mean.sum() * step_s / 3600 == pytest.approx(expected, rel=1e-12)
    long_clock = Clock(hours[0], step_s, -(-3 * DAY_S // step_s))
    with pytest.raises(ValueError, match="the run needs"):
        Tariff([unit], long_clock, {})


@pytest.mark.parametrize("step_s", [7200, 10800, 21600])
def test_pv_steps_longer_than_the_weather_hour_are_averaged(step_s):
    plant = {**DEFAULTS, **PLANTS[0], "name": "pv1"}
    start = pd.Timestamp("2016-06-21", tz="Etc/GMT+5")  # whole weather hours

    def energy(step: int) -> float:
        clock = Clock(start, step, DAY_S // step)
        model = PVPlant([plant], clock, {"site": SITE, "weather": "723170TYA.CSV"})
        return run_energy(model, clock)

    assert energy(step_s) == pytest.approx(energy(3600), rel=1e-12)
