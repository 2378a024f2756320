"""Exogenous series per window equal the whole-run computation (1e-12), memory bounded."""

import numpy as np
import pandas as pd
import pytest

from models import window
from models.base import Clock
from models.diskcache import CACHE_ENV
from models.load import Load
from models.pv import PVPlant
from models.tariff import Tariff
from models.window import StepWindows, window_steps
from tests.conftest import SITE
from tests.models.test_pvcache import UNITS as PV_UNITS

TZ = SITE["tz"]  # America/New_York: DST began 2016-03-13 02:00 EST
GRID = "1-LV-rural1--0-sw"


@pytest.fixture
def files(tmp_path):
    """A load profile and a price series as CSV files (30 min, 2016-02-20 .. 2016-03-20)."""
    times = pd.date_range("2016-02-20T00:00Z", "2016-03-20T00:00Z", freq="30min")
    rng = np.random.default_rng(17)
    profile, prices = tmp_path / "profile.csv", tmp_path / "prices.csv"
    pd.DataFrame(
        {
            "time": times,
            "p_pu": rng.uniform(0, 2, len(times)),
            "q_pu": rng.uniform(0, 1, len(times)),
        }
    ).to_csv(profile, index=False)
    pd.DataFrame({"time": times, "import_eur_kwh": rng.uniform(0.1, 0.5, len(times))}).to_csv(
        prices, index=False
    )
    return profile, prices


def build(files, clock):
    """A load fleet (SimBench profiles and a CSV), two tariffs (time of use, CSV), PV."""
    profile, prices = files
    loads = [
        {"name": "h0", "p_kw": 3.0, "q_kvar": 1.0, "profile": "H0-A"},
        {"name": "l2", "p_kw": 5.0, "q_kvar": 2.0, "profile": "L2-A"},
        {"name": "csv", "p_kw": 4.0, "q_kvar": 0.5, "profile": str(profile)},
        {"name": "flat", "p_kw": 1.0, "q_kvar": 0.1, "profile": None},
    ]
    tariffs = [
        {
            "name": "tou",
            "import_eur_kwh": 0.28,
            "export_eur_kwh": 0.08,
            "periods": [{"start": "17:00", "end": "21:00", "import_eur_kwh": 0.42}],
        },
        {"name": "file", "import_eur_kwh": 0.3, "export_eur_kwh": 0.05, "price_csv": str(prices)},
    ]
    context = {"site": SITE, "grid": GRID, "weather": "723170TYA.CSV"}
    return [
        Load(loads, clock, context),
        Tariff(tariffs, clock, context),
        PVPlant(PV_UNITS, clock, context),
    ]


def outputs(model, clock):
    """Every step's outputs of ``model`` with nothing connected, stacked per output."""
    inputs = model.default_inputs()
    rows = [
        model.step(clock.time_at(k * clock.step_s), clock.step_s, inputs)
        for k in range(clock.n_steps)
    ]
    return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


@pytest.mark.parametrize(
    ("start", "step_s", "n", "window_s"),
    [
        ("2016-03-12T00:00-05:00", 900, 3 * 96, 86_400),  # 3 days at 15 min across DST
        ("2016-02-28T00:00-05:00", 900, 3 * 96, 86_400),  # 3 days at 15 min, leap day
        ("2016-03-13T00:30-05:00", 1, 3 * 3600, 3600),  # 3 h at 1 s across DST, 1 h windows
        ("2016-02-29T11:20-05:00", 1, 3 * 3600, 3600),  # 3 h at 1 s, leap day, sun up
    ],
)
def test_windowed_series_equal_the_whole_run_computation(
    files, tmp_path, monkeypatch, start, step_s, n, window_s
):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    clock = Clock(pd.Timestamp(start), step_s, n)
    monkeypatch.setattr(window, "WINDOW_S", 10**9)  # one window: the whole run, as before
    whole = build(files, clock)
    assert all(model._windows.steps == n for model in whole)
    monkeypatch.setattr(window, "WINDOW_S", window_s)
    monkeypatch.setattr(window, "WINDOW_BYTES", 1)
    windowed = build(files, clock)
    assert all(model._windows.steps == window_s // step_s for model in windowed)
    for before, after in zip(whole, windowed, strict=True):
        expected, got = before.exogenous(), after.exogenous()
        assert expected.keys() == got.keys()
        for name in expected:
            assert got[name].shape == expected[name].shape == (n, before.n)
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12)
        stepped, reference = outputs(after, clock), outputs(before, clock)
        for name in reference:
            np.testing.assert_allclose(stepped[name], reference[name], rtol=0, atol=1e-12)
    p_avail, t_cell = windowed[2].series()
    np.testing.assert_allclose(t_cell, whole[2].series()[1], rtol=0, atol=1e-12)
    assert p_avail.max() > 0 or step_s == 1  # the 15 min cases see the sun


def test_a_week_at_1s_holds_a_window_of_values_as_a_day_does(files, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    day, week = 86_400, 7 * 86_400
    clock = Clock(pd.Timestamp("2016-03-12T00:00-05:00"), 1, week)
    assert window_steps(clock, 8 * 1000) == window.WINDOW_S == 6 * 3600
    assert window_steps(Clock(clock.start, 900, 35_040), 8 * 20) == 35_040  # a year at 15 min
    for n_steps in (day, week):
        for model in build(files, Clock(clock.start, 1, n_steps)):
            steps = model._windows.steps
            assert window.WINDOW_S <= steps <= day // 2  # a day crosses boundaries too
            last = n_steps - 5
            out = model.step(clock.time_at(last), 1, model.default_inputs())  # the last window
            assert model._windows._first == last - last % steps
            assert all(values.shape[0] <= steps for values in model._windows._values)
            for values in out.values():  # outputs are copies: they pin no window
                assert values.base is None or values.base.size < steps


def test_a_step_outside_the_run_is_refused():
    clock = Clock(pd.Timestamp("2016-03-12T00:00-05:00"), 900, 4)
    windows = StepWindows(clock, lambda c: (np.arange(c.n_steps),), 8)
    assert windows.row(3) == (3,)
    with pytest.raises(IndexError, match="outside the run's 4 steps"):
        windows.row(4)


def interval_means_before(breaks_s, values, starts_s, step_s):
    """The whole-run formula before windows: differences of the running integral."""
    widths = np.diff(breaks_s).reshape((-1,) + (1,) * (values.ndim - 1))
    cumulative = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values * widths, 0)])

    def integral(x):
        k = np.clip(np.searchsorted(breaks_s, x, side="right") - 1, 0, len(values) - 1)
        offset = (x - breaks_s[k]).reshape((-1,) + (1,) * (values.ndim - 1))
        return cumulative[k] + values[k] * offset

    return (integral(starts_s + step_s) - integral(starts_s)) / step_s


@pytest.mark.parametrize(("step_s", "n"), [(900, 3 * 96), (600, 3 * 144), (7200, 36), (1, 10_800)])
def test_step_means_equal_the_formula_before_and_are_exact_inside_a_segment(step_s, n):
    from models.series import interval_means

    rng = np.random.default_rng(3)
    values = rng.uniform(0, 2, (400, 3))
    breaks_s = np.arange(401, dtype=float) * 900 - 450  # a quarter-hour series, offset
    starts_s = np.arange(n, dtype=float) * step_s
    got = interval_means(breaks_s, values, starts_s, step_s)
    before = interval_means_before(breaks_s, values, starts_s, step_s)
    # the formula before lost digits with the run's length: 3 h at 1 s, 1.1e-12 already
    np.testing.assert_allclose(got, before, rtol=0, atol=1e-12 if step_s > 1 else 1e-11)
    inside = np.floor((starts_s + 450) / 900) == np.floor((starts_s + step_s + 450 - 1e-9) / 900)
    k = ((starts_s + 450) // 900).astype(int)
    np.testing.assert_array_equal(got[inside], values[k[inside]])  # exactly the value
    energy = got.sum(axis=0) * step_s  # energy conserved
    np.testing.assert_allclose(energy, before.sum(axis=0) * step_s, rtol=1e-12)
