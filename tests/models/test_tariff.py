import numpy as np
import pandas as pd
import pytest

from models.base import Clock
from models.tariff import Tariff, time_of_use_price


def test_time_of_use_periods_including_one_across_midnight():
    times = pd.date_range("2016-06-21", periods=24, freq="h", tz="Europe/Berlin")
    periods = [
        {"start": "17:00", "end": "21:00", "import_eur_kwh": 0.40},
        {"start": "22:00", "end": "06:00", "import_eur_kwh": 0.20},
    ]
    price = time_of_use_price(times, 0.30, periods)
    expected = np.full(24, 0.30)
    expected[17:21] = 0.40
    expected[22:] = 0.20
    expected[:6] = 0.20
    np.testing.assert_allclose(price, expected)


def test_tariff_uses_local_time_of_the_site():
    clock = Clock(pd.Timestamp("2016-06-21T00:00:00-04:00"), 3600, 24)
    unit = {
        "name": "t",
        "import_eur_kwh": 0.3,
        "export_eur_kwh": 0.05,
        "periods": [{"start": "17:00", "end": "18:00", "import_eur_kwh": 0.9}],
    }
    model = Tariff([unit], clock, {"site": {"tz": "America/New_York"}})
    prices = [
        model.step(clock.time_at(h * 3600), 3600, {})["price_import_eur_kwh"][0] for h in range(24)
    ]
    assert prices[17] == pytest.approx(0.9)
    assert prices[16] == prices[18] == pytest.approx(0.3)


def test_price_csv_replaces_the_schedule(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        "time,import_eur_kwh,export_eur_kwh\n2016-01-01T00:00Z,0.1,0.01\n"
        "2016-01-01T01:00Z,0.5,0.02\n"
    )
    clock = Clock(pd.Timestamp("2016-01-01", tz="UTC"), 1800, 4)
    unit = {"name": "t", "import_eur_kwh": 0.3, "export_eur_kwh": 0.05, "price_csv": str(path)}
    model = Tariff([unit], clock)
    out = [model.step(clock.time_at(k * 1800), 1800, {}) for k in range(4)]
    assert [o["price_import_eur_kwh"][0] for o in out] == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert out[3]["price_export_eur_kwh"][0] == pytest.approx(0.02)
