import numpy as np
import pandas as pd
import pytest

from twin.kpi import compute_kpis, kpi_rows
from twin.scenario import validate_scenario


def tidy(series: dict[tuple[str, str, str], list[float]], times) -> pd.DataFrame:
    rows = []
    for (asset, kind, quantity), values in series.items():
        for t, v in zip(times, values, strict=True):
            rows.append({"time": t, "asset": asset, "kind": kind, "quantity": quantity, "value": v})
    return pd.DataFrame(rows)


def test_kpis_on_an_analytic_case(small_raw):
    small_raw["assets"]["load"] = [{"name": "l", "bus": 1, "p_kw": 10}]
    scenario = validate_scenario(small_raw)
    times = pd.date_range("2016-06-21T13:00Z", periods=4, freq="15min")
    # PV 8 kW; load 10 kW; battery discharges 4, 0, -6, 0 kW; losses 0.5 kW.
    pv = np.array([8.0, 8.0, 8.0, 8.0])
    load = np.full(4, -10.0)
    bess = np.array([4.0, 0.0, -6.0, 0.0])
    losses = np.full(4, 0.5)
    poc = -(pv + load + bess) + losses  # import: 2.5-4=-1.5, 2.5, 8.5, 2.5
    results = tidy(
        {
            ("poc", "grid", "p_kw"): poc,
            ("poc", "grid", "losses_kw"): losses,
            ("pv_roof", "pv", "p_kw"): pv,
            ("l", "load", "p_kw"): load,
            ("bess", "battery", "p_kw"): bess,
            ("bess", "battery", "soh"): [1, 1, 1, 0.99],
            ("bess", "battery", "e_kwh"): [17.0, 17.0, 18.5, 20.0],
            ("tariff", "tariff", "price_import_eur_kwh"): [0.3] * 4,
            ("tariff", "tariff", "price_export_eur_kwh"): [0.1] * 4,
            ("bus_1", "bus", "v_pu"): [1.0, 0.85, 1.0, 1.12],
            ("line_0", "line", "loading_pct"): [10, 20, 30, 5],
        },
        times,
    )
    k = compute_kpis(results, scenario)
    assert k["e_import_kwh"] == pytest.approx((2.5 + 8.5 + 2.5) / 4)
    assert k["e_export_kwh"] == pytest.approx(1.5 / 4)
    assert k["cost_eur"] == pytest.approx(13.5 / 4 * 0.3 - 1.5 / 4 * 0.1)
    assert k["e_pv_kwh"] == pytest.approx(8.0)
    assert k["self_consumption"] == pytest.approx((8.0 - 1.5 / 4) / 8.0)
    # consumption: 10 kWh of load and 0.5 kWh of grid losses
    assert k["self_sufficiency"] == pytest.approx(1 - (13.5 / 4) / 10.5)
    assert k["peak_import_kw"] == pytest.approx(8.5)
    assert k["battery_throughput_kwh"] == pytest.approx(10.0 / 4)
    assert k["battery_efc"] == pytest.approx(2.5 / (2 * 60))
    assert k["soh_change"] == pytest.approx(-0.01)
    assert k["voltage_violations"] == 2
    assert (k["v_min_pu"], k["v_max_pu"]) == (0.85, 1.12)
    assert k["line_loading_max_pct"] == 30
    assert k["losses_kwh"] == pytest.approx(0.5)
    assert k["balance_residual_kwh"] == pytest.approx(0.0, abs=1e-12)
    assert ("Energy cost (EUR)", "0.97") in kpi_rows(k)
    # 60 kWh at SoC 0.3 to start, 20 kWh at the end: +2 kWh valued at the terminal value,
    # on a flat tariff what a kWh displaces net of wear: 0.3 x 0.95 - w (below the
    # refill cost 0.3 / 0.95 + w), w = 300 EUR/kWh / (2 x 6000 cycles) = 0.025 EUR/kWh.
    assert scenario.units("battery")[0]["replacement_eur_kwh"] == 300.0
    v = 0.3 * 0.95 - 0.025
    assert k["e_battery_delta_kwh"] == pytest.approx(2.0)
    assert k["terminal_value_eur"] == pytest.approx(v * 2.0)
    # Cell side, from the start state (18 kWh): 1 + 0 + 1.5 + 1.5 kWh.
    assert k["throughput_cell_kwh"] == pytest.approx(4.0)
    assert k["wear_eur"] == pytest.approx(0.025 * 4.0)
    assert k["cost_scored_eur"] == pytest.approx(k["cost_eur"] + 0.025 * 4.0 - v * 2.0)
    assert k["cost_scored_no_wear_eur"] == pytest.approx(k["cost_eur"] - v * 2.0)
    assert ("Battery wear cost (EUR)", "0.10") in kpi_rows(k)


def test_a_site_that_imports_everything_it_uses_is_zero_self_sufficient(small_raw):
    """Grid losses are consumption too: import > load must not give a negative ratio."""
    small_raw["assets"] = {"load": [{"name": "l", "bus": 1, "p_kw": 10}]}
    small_raw["controller"] = "none"
    scenario = validate_scenario(small_raw)
    times = pd.date_range("2016-06-21T13:00Z", periods=4, freq="15min")
    losses = np.full(4, 0.7)
    results = tidy(
        {
            ("poc", "grid", "p_kw"): 10.0 + losses,
            ("poc", "grid", "losses_kw"): losses,
            ("l", "load", "p_kw"): np.full(4, -10.0),
            ("tariff", "tariff", "price_import_eur_kwh"): [0.3] * 4,
            ("tariff", "tariff", "price_export_eur_kwh"): [0.1] * 4,
            ("bus_1", "bus", "v_pu"): [1.0] * 4,
        },
        times,
    )
    k = compute_kpis(results, scenario)
    assert k["self_sufficiency"] == pytest.approx(0.0, abs=1e-12)
