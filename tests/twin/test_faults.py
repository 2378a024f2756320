"""Faults in a run: each changes what it should, labels match, bad faults are named."""

import json

import numpy as np
import pytest

from models.gridnet import load_net
from tests.support import runpp_voltages
from twin.errors import ScenarioError
from twin.results import load_results, wide
from twin.run import run_scenario


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The fault-free day (rule controller)."""
    import yaml

    from tests.conftest import ROOT  # noqa: F401  (fixtures are function-scoped)
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    result = run_scenario(validate_scenario(raw), tmp_path_factory.mktemp("base") / "run")
    return load_results(result.out_dir)


def _run(day_scenario, tmp_path, faults, **changes):
    result = run_scenario(day_scenario(faults=faults, **changes), tmp_path / "run")
    return result, load_results(result.out_dir)


WINDOW = slice(40, 52)  # 10:00-13:00 local on the 15-minute clock


def test_shading_scales_pv_power_by_the_severity(day_scenario, tmp_path, baseline):
    fault = {
        "kind": "pv_shading",
        "target": "pv_roof",
        "start": "10h",
        "duration": "3h",
        "severity": 0.4,
    }
    _, results = _run(day_scenario, tmp_path, [fault])
    ours = wide(results, "pv", "p_kw")
    base = wide(baseline, "pv", "p_kw")
    np.testing.assert_allclose(ours["pv_roof"].iloc[WINDOW], 0.6 * base["pv_roof"].iloc[WINDOW])
    np.testing.assert_allclose(ours["pv_roof"].iloc[:40], base["pv_roof"].iloc[:40])
    np.testing.assert_allclose(ours["pv_roof"].iloc[52:], base["pv_roof"].iloc[52:])
    np.testing.assert_allclose(ours["pv_barn"], base["pv_barn"])  # only the target
    np.testing.assert_allclose(
        wide(results, "pv", "p_avail_kw"), wide(baseline, "pv", "p_avail_kw")
    )


def test_soc_misreport_misleads_the_controller_not_the_physics(day_scenario, tmp_path, baseline):
    fault = {
        "kind": "soc_misreport",
        "target": "bess",
        "start": "6h",
        "duration": "14h",
        "severity": 0.3,
    }
    result, results = _run(day_scenario, tmp_path, [fault])
    true_soc = wide(results, "battery", "soc")["bess"]
    measured = wide(results, "battery", "soc", source="measured")["bess"]
    # both are states: row k is the SoC at the start of step k (one row more, the end);
    # the misreport over steps 24..79 (6 h to 20 h) corrupts what is read at their ends
    assert len(measured) == len(true_soc) == 97 and measured.iloc[0] == true_soc.iloc[0]
    window = slice(25, 81)
    # (the BMS's SoC reading: 0.002 noise, 0.001 resolution, a report lost now and then)
    error = (measured - true_soc).to_numpy()
    assert np.isnan(error).mean() < 0.05
    inside, before = error[window], error[:25]
    np.testing.assert_allclose(inside[~np.isnan(inside)], 0.3, atol=0.01)
    np.testing.assert_allclose(before[~np.isnan(before)], 0.0, atol=0.01)
    # The rule stops charging when the *measured* SoC reaches soc_max (0.9): the true SoC
    # stays 0.3 below (within the reading's noise), where the fault-free run charges to 0.9.
    assert true_soc.iloc[window].max() == pytest.approx(0.6, abs=0.006)
    assert wide(baseline, "battery", "soc")["bess"].max() == pytest.approx(0.9, abs=1e-4)
    assert result.kpis["balance_residual_kwh"] < 1e-6


def test_a_line_outage_gives_the_voltages_of_runpp_without_that_line(day_scenario, tmp_path):
    fault = {"kind": "line_outage", "target": "line_3", "start": "12h", "duration": "2h"}
    scenario = day_scenario(faults=[fault], controller="none")
    result = run_scenario(scenario, tmp_path / "run")
    results = load_results(result.out_dir)
    v = wide(results, "bus", "v_pu")
    for k in (50, 60):  # inside the window (steps 48-55), then after it
        lines_out = (3,) if 48 <= k < 56 else ()
        ours, reference = runpp_voltages(scenario, results, v.index[k], lines_out)
        np.testing.assert_allclose(ours, reference, atol=1e-6, equal_nan=True)
    assert np.isnan(v.iloc[50]).any()  # buses behind the line are cut off
    cut_off = result.kpis["unserved_kwh"] + result.kpis["curtailed_kwh"]
    assert cut_off > 0 and result.kpis["balance_residual_kwh"] < 1e-6


def test_islanding_conserves_energy_and_counts_unserved_load(day_scenario, tmp_path):
    fault = {"kind": "grid_outage", "target": "grid", "start": "20h", "duration": "2h"}
    result, results = _run(day_scenario, tmp_path, [fault])
    poc = wide(results, "grid", "p_kw")["poc"]
    unserved = wide(results, "grid", "unserved_kw")["poc"]
    window = slice(80, 88)
    assert (poc.iloc[window] == 0.0).all() and (poc.iloc[:80] != 0.0).all()
    assert (unserved.iloc[:80] == 0.0).all()
    # Evening: the battery carries what it can, the rest of the load is unserved.
    sites = sum(wide(results, k, "p_kw").sum(axis=1) for k in ("pv", "load", "battery"))
    losses = wide(results, "grid", "losses_kw")["poc"]
    np.testing.assert_allclose(unserved.iloc[window], -(sites - losses).iloc[window], atol=1e-6)
    assert result.kpis["unserved_kwh"] == pytest.approx(unserved.sum() * 0.25)
    assert result.kpis["unserved_kwh"] > 0 and result.kpis["balance_residual_kwh"] < 1e-6


def test_a_voltage_sag_lowers_every_bus_by_the_severity(day_scenario, tmp_path, baseline):
    fault = {
        "kind": "voltage_sag",
        "target": "grid",
        "start": "3h",
        "duration": "1h",
        "severity": 0.1,
    }
    _, results = _run(day_scenario, tmp_path, [fault])
    v, v0 = wide(results, "bus", "v_pu"), wide(baseline, "bus", "v_pu")
    ext = f"bus_{int(load_net('1-LV-rural1--0-sw').ext_grid.bus.iloc[0])}"  # the slack bus
    np.testing.assert_allclose(v[ext].iloc[12:16], 0.9 * v0[ext].iloc[12:16])
    assert (v.iloc[12:16].to_numpy() < v0.iloc[12:16].to_numpy() - 0.05).all()


def test_cooling_failure_ends_in_a_thermal_trip(day_scenario, tmp_path):
    battery = {
        "name": "bess",
        "bus": 7,
        "e_kwh": 60,
        "p_max_kw": 20,
        "soc_init": 0.3,
        "eta_ch": 0.85,
        "eta_dis": 0.85,
    }
    assets = {
        "pv": [{"name": "pv_roof", "bus": 7, "p_dc_kw": 60}],
        "battery": [battery],
        "load": [{"from_grid": True}],
    }
    fault = {"kind": "battery_cooling_failure", "target": "bess", "start": "6h", "severity": 0.9}
    result, results = _run(day_scenario, tmp_path, [fault], assets=assets)
    assert result.kpis["battery_t_max_c"] > 45.0
    assert (
        result.kpis["thermal_trip_steps"] > 0
        or wide(results, "battery", "power_avail")["bess"].min() < 1.0
    )


def test_labels_match_the_schedule(day_scenario, tmp_path):
    faults = [
        {
            "kind": "load_spike",
            "target": "load_1",
            "start": "2h",
            "duration": "30min",
            "severity": 1.0,
        },
        {
            "kind": "inverter_trip",
            "target": "pv_barn",
            "start": "11h",
            "duration": "15min",
            "restart_delay": "30min",
        },
    ]
    result, results = _run(day_scenario, tmp_path, faults)
    active = wide(results, "fault", "active")
    assert list(np.flatnonzero(active["f0_load_spike"])) == [8, 9]
    assert list(np.flatnonzero(active["f1_inverter_trip"])) == [44, 45, 46]
    pv = wide(results, "pv", "p_kw")["pv_barn"]
    assert (pv.iloc[44:47] == 0.0).all() and pv.iloc[43] > 0 and pv.iloc[47] > 0
    labels = json.loads((result.out_dir / "labels.json").read_text())["faults"]
    assert labels[1] == {
        "fault": "f1_inverter_trip",
        "kind": "inverter_trip",
        "target": "pv_barn",
        "start": "2016-06-21T15:00:00+00:00",
        "end": "2016-06-21T15:45:00+00:00",
        "severity": 1.0,
        "mode": "offset",
    }


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"kind": "pv_shading", "target": "pv_rooof", "start": "1h"},
            "faults[0].target: no asset named 'pv_rooof'; did you mean 'pv_roof'?",
        ),
        (
            {"kind": "pv_shading", "target": "bess", "start": "1h"},
            "faults[0].kind: pv_shading does not apply to battery 'bess'",
        ),
        (
            {"kind": "pv_shading", "target": "pv_roof", "start": "30h"},
            "faults[0].start: '30h' is outside the run",
        ),
        (
            {"kind": "pv_shading", "target": "pv_roof", "start": "23h", "duration": "2h"},
            "faults[0].duration: the fault would end after the run",
        ),
        (
            {"kind": "line_outage", "target": "line_99", "start": "1h"},
            "faults[0].target: no line 'line_99'",
        ),
        (
            {"kind": "sensor_drift", "target": "bess.socc", "start": "1h"},
            "faults[0].target: battery 'bess' has no quantity 'socc'",
        ),
        (  # the available power is the model's, no sensor reports it
            {"kind": "sensor_drift", "target": "pv_roof.p_avail_kw", "start": "1h"},
            "faults[0].target: pv 'pv_roof' has no quantity 'p_avail_kw' that a sensor reports; "
            "expected one of p_kw, t_cell_c",
        ),
        ({"kind": "pv_shadin", "target": "pv_roof", "start": "1h"}, "did you mean 'pv_shading'?"),
    ],
)
def test_a_fault_that_cannot_apply_is_named(day_raw, fault, message):
    from twin.scenario import validate_scenario

    with pytest.raises(ScenarioError) as info:
        validate_scenario({**day_raw, "faults": [fault]})
    assert message in str(info.value)


def test_a_sensor_on_a_quantity_of_an_ev_parks_chargers_is_refused_by_validation():
    """depot.soc is a charger quantity (depot_c0 ...), not the park's: named, no crash."""
    import yaml

    from tests.conftest import ROOT
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw["faults"] = [{"kind": "sensor_noise", "target": "depot.soc", "start": "1h"}]
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.target: ev 'depot' has no quantity"):
        validate_scenario(raw)


def test_sensor_faults_reach_grid_sensors_too(day_scenario, tmp_path):
    """A bus voltage, the POC meter: faults on any measured element, not only assets."""
    faults = [
        {"kind": "sensor_drift", "target": "bus_7.v_pu", "start": "10h", "severity": 0.04},
        {"kind": "sensor_stuck", "target": "poc.p_kw", "start": "10h", "duration": "2h"},
    ]
    _, results = _run(day_scenario, tmp_path, faults)
    error = (
        wide(results, "bus", "v_pu", "measured")["bus_7"] - wide(results, "bus", "v_pu")["bus_7"]
    )
    hours = np.arange(len(error)) * 0.25 - 10.0  # the drift grows 0.04 pu per hour from 10 h
    inside = (hours >= 0) & error.notna().to_numpy()
    np.testing.assert_allclose(error[inside], 0.04 * hours[inside], atol=0.005)
    assert error[(hours < 0) & error.notna().to_numpy()].abs().max() < 0.005
    poc = wide(results, "grid", "p_kw", "measured")["poc"].iloc[40:48].dropna()
    assert poc.nunique() == 1  # held while stuck
    labels = {f["target"] for f in _labels(results, tmp_path)}
    assert labels == {"bus_7.v_pu", "poc.p_kw"}


def _labels(results, tmp_path):
    return json.loads((tmp_path / "run" / "labels.json").read_text())["faults"]
