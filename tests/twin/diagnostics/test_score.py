"""Event-level scores against labels: every figure checked by hand numbers."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.faults import FAULT_KINDS
from twin.diagnostics.reveal import NOT_REVEALABLE, label_asset
from twin.diagnostics.score import aggregate_scores, dumps, kind_group, score_run

DAY = "2016-06-21T"
START, END = f"{DAY}00:00:00+00:00", "2016-06-23T00:00:00+00:00"  # two days
STEP = 900.0


def label(kind, target, start, end, severity=0.5):
    return {
        "kind": kind,
        "target": target,
        "start": f"{DAY}{start}:00+00:00",
        "end": f"{DAY}{end}:00+00:00",
        "severity": severity,
    }


def alert(asset, kind, start):
    return {"asset": asset, "kind": kind, "start": f"{DAY}{start}:00+00:00"}


LABELS = {
    "faults": [
        label("pv_shading", "pv_roof", "10:00", "13:00"),
        label("pv_string_outage", "pv_barn", "10:00", "12:00"),
        label("voltage_sag", "grid", "06:00", "07:00", 0.08),
        label("load_spike", "load_1", "20:00", "21:00"),
    ]
}
ALERTS = [
    alert("pv_roof", "pv_string_outage", "10:15"),  # L1, diagnosis in the pv group
    alert("pv_roof", "anomaly", "10:00"),  # L1's earliest: delay 0, names no kind
    alert("pv_barn", "inverter_trip", "12:30"),  # L2 at end + grace exactly: wrong kind
    alert("poc", "voltage_sag", "06:30"),  # L3 ("grid" -> poc), 2 steps late
    alert("bess", "battery_cooling_failure", "03:00"),  # false alarm naming a kind
    alert("poc", "anomaly", "15:00"),  # false alarm naming none
    alert("pv_roof", "pv_shading", "13:31"),  # after end + grace: false alarm
]


@pytest.fixture
def scores():
    return score_run(ALERTS, LABELS, STEP, START, END)


def test_per_kind_counts_and_ratios(scores):
    kinds = scores["kinds"]
    shading = kinds["pv_shading"]
    assert (shading["events"], shading["detected"]) == (1, 1)
    assert (shading["tp_alerts"], shading["fp_alerts"]) == (2, 1)
    assert shading["precision"] == pytest.approx(2 / 3)
    assert shading["recall"] == 1.0
    assert shading["f1"] == pytest.approx(0.8)
    outage = kinds["pv_string_outage"]
    assert (outage["precision"], outage["recall"], outage["f1"]) == (1.0, 1.0, 1.0)
    spike = kinds["load_spike"]
    assert (spike["events"], spike["detected"], spike["precision"]) == (1, 0, None)
    assert (spike["recall"], spike["f1"]) == (0.0, 0.0)
    cooling = kinds["battery_cooling_failure"]  # only a false alarm named it
    assert (cooling["events"], cooling["precision"], cooling["recall"]) == (0, 0.0, None)
    assert cooling["f1"] is None


def test_delays_in_seconds_and_steps(scores):
    kinds = scores["kinds"]
    assert kinds["pv_shading"]["delay_median_s"] == 0.0  # the anomaly alert came first
    assert kinds["pv_string_outage"]["delay_median_s"] == 9000.0
    assert kinds["pv_string_outage"]["delay_median_steps"] == 10.0
    assert kinds["voltage_sag"]["delay_median_s"] == 1800.0
    assert kinds["voltage_sag"]["delay_p90_steps"] == 2.0
    assert kinds["load_spike"]["delay_median_s"] is None


def test_diagnosis_false_alarms_and_macro(scores):
    assert scores["revealable_kinds"] == [
        "load_spike",
        "pv_shading",
        "pv_string_outage",
        "voltage_sag",
    ]
    assert scores["macro_f1"] == pytest.approx((0 + 0.8 + 1 + 1) / 4)
    assert scores["false_alarms"] == 3
    assert scores["days"] == 2.0
    assert scores["false_alarms_per_day"] == 1.5
    # pv_shading diagnosed pv_string_outage (same group): right; inverter_trip: wrong
    assert scores["kinds"]["pv_shading"]["diagnosed_correct"] == 1
    assert scores["kinds"]["pv_string_outage"]["diagnosed_correct"] == 0
    assert scores["diagnosis_accuracy"] == pytest.approx(2 / 3)
    assert scores["confusion"] == {
        "pv_shading": {"pv_string_outage": 1},
        "pv_string_outage": {"inverter_trip": 1},
        "voltage_sag": {"voltage_sag": 1},
        "load_spike": {"missed": 1},
    }
    assert scores["equivalent_kinds"] == [["pv_shading", "pv_string_outage"]]
    assert scores["not_revealable"] == {}


def test_scores_json_roundtrip_and_dataframe_alerts(scores):
    text = dumps(scores)
    assert json.loads(text)["kinds"]["pv_shading"]["f1"] == pytest.approx(0.8)
    frame = pd.DataFrame(ALERTS)
    frame["start"] = pd.to_datetime(frame["start"])
    assert score_run(frame, LABELS["faults"], STEP, START, END) == scores


def test_aggregate_pools_events_and_recomputes_delays(scores):
    second = score_run(
        [alert("pv_roof", "pv_shading", "11:00")],
        [label("pv_shading", "pv_roof", "10:00", "12:00")],
        STEP,
        START,
        "2016-06-22T00:00:00+00:00",
    )
    total = aggregate_scores([scores, second])
    shading = total["kinds"]["pv_shading"]
    assert (shading["events"], shading["detected"], shading["tp_alerts"]) == (2, 2, 3)
    assert shading["delay_median_s"] == 1800.0  # of 0 s and 3600 s
    assert shading["delay_p90_s"] == pytest.approx(3240.0)
    assert shading["delay_p90_steps"] == pytest.approx(3.6)
    assert shading["precision"] == pytest.approx(3 / 4)
    assert total["days"] == 3.0
    assert total["false_alarms"] == 3
    assert total["false_alarms_per_day"] == pytest.approx(1.0)
    assert total["diagnosis_accuracy"] == pytest.approx(3 / 4)
    assert total["confusion"]["pv_shading"] == {"pv_string_outage": 1, "pv_shading": 1}
    assert total["step_s"] == STEP


def test_no_alerts_no_labels():
    empty = score_run([], {"faults": []}, STEP, START, END)
    assert empty["kinds"] == {}
    assert (empty["macro_f1"], empty["diagnosis_accuracy"]) == (None, None)
    assert (empty["false_alarms"], empty["false_alarms_per_day"]) == (0, 0.0)


def test_every_fault_kind_says_when_it_cannot_be_revealed():
    assert set(NOT_REVEALABLE) == set(FAULT_KINDS)
    assert all(len(reason) > 40 for reason in NOT_REVEALABLE.values())
    assert kind_group("pv_string_outage") == kind_group("pv_shading") == "pv_shading"
    assert (label_asset("grid"), label_asset("load_1.p_kw"), label_asset("line_3")) == (
        "poc",
        "load_1",
        "line_3",
    )


# -- revealable rule on hand-made true rows --------------------------------------------


def rows(asset, kind, quantity, values, source="twin"):
    times = pd.date_range(START, periods=len(values), freq="15min")
    return pd.DataFrame(
        {
            "time": times,
            "source": source,
            "asset": asset,
            "kind": kind,
            "quantity": quantity,
            "value": np.asarray(values, dtype=float),
        }
    )


def pv_day(derate_from, derate_to, derate):
    """96 steps of a PV plant: sun from 06:00 to 18:00 (peak 40 kW), derated in a window."""
    hours = np.arange(96) / 4.0
    avail = np.clip(40.0 * np.sin(np.pi * (hours - 6.0) / 12.0), 0.0, None)
    p = avail.copy()
    window = (hours >= derate_from) & (hours < derate_to)
    p[window] *= derate
    return pd.concat([rows("pv_roof", "pv", "p_kw", p), rows("pv_roof", "pv", "p_avail_kw", avail)])


def test_a_trip_at_night_is_not_revealable_and_its_alert_no_false_alarm():
    night = [label("inverter_trip", "pv_roof", "01:00", "02:00")]
    scored = score_run(
        [alert("pv_roof", "anomaly", "01:15")], night, STEP, START, END, results=pv_day(1, 2, 0.0)
    )
    assert scored["kinds"]["inverter_trip"]["events"] == 0
    assert scored["kinds"]["inverter_trip"]["unrevealable"] == 1
    assert scored["false_alarms"] == 0
    assert "inverter_trip" in scored["not_revealable"]
    assert "lost output kW 0" in scored["not_revealable"]["inverter_trip"]
    assert scored["revealable_kinds"] == [] and scored["macro_f1"] is None
    noon = [label("inverter_trip", "pv_roof", "10:00", "11:00")]
    scored = score_run([], noon, STEP, START, END, results=pv_day(10, 11, 0.0))
    assert scored["kinds"]["inverter_trip"]["events"] == 1


def test_light_shading_below_the_power_tolerance_is_not_revealable():
    # 40 kW peak: tolerance max(0.2, 5 % of 40) = 2 kW; at 07:00 avail ~10.4 kW
    light = [label("pv_shading", "pv_roof", "07:00", "07:15", 0.1)]
    assert (
        score_run([], light, STEP, START, END, results=pv_day(7, 7.25, 0.9))["kinds"]["pv_shading"][
            "events"
        ]
        == 0
    )
    strong = [label("pv_shading", "pv_roof", "07:00", "07:15", 0.3)]
    assert (
        score_run([], strong, STEP, START, END, results=pv_day(7, 7.25, 0.7))["kinds"][
            "pv_shading"
        ]["events"]
        == 1
    )


def test_sensor_faults_judged_on_measured_against_true():
    rng = np.random.default_rng(0)
    true = 5.0 + np.sin(np.arange(96) / 10.0)
    noisy = true + rng.normal(0, 0.01, 96)
    stuck = noisy.copy()
    stuck[40:48] = noisy[40]  # 10:00-12:00 stuck: the true value moves by ~0.5
    base = rows("load_1", "load", "p_kw", true)
    results = pd.concat([base, rows("load_1", "load", "p_kw", stuck, "measured")])
    fault = [label("sensor_stuck", "load_1.p_kw", "10:00", "12:00")]
    assert (
        score_run([], fault, STEP, START, END, results=results)["kinds"]["sensor_stuck"]["events"]
        == 1
    )
    flat = np.full(96, 5.0)
    flat_measured = flat + rng.normal(0, 0.01, 96)
    flat_measured[40:48] = flat_measured[40]  # stuck at a value that is right anyway
    results = pd.concat(
        [
            rows("load_1", "load", "p_kw", flat),
            rows("load_1", "load", "p_kw", flat_measured, "measured"),
        ]
    )
    scored = score_run([], fault, STEP, START, END, results=results)
    assert scored["kinds"]["sensor_stuck"]["events"] == 0


def test_dropout_of_a_sensor_reporting_every_step_is_revealable():
    true = np.full(96, 3.0)
    measured = true.copy()
    measured[40:42] = np.nan
    results = pd.concat(
        [rows("pv_roof", "pv", "p_kw", true), rows("pv_roof", "pv", "p_kw", measured, "measured")]
    )
    two = [label("sensor_dropout", "pv_roof.p_kw", "10:00", "10:30")]
    one = [label("sensor_dropout", "pv_roof.p_kw", "10:00", "10:15")]
    assert (
        score_run([], two, STEP, START, END, results=results)["kinds"]["sensor_dropout"]["events"]
        == 1
    )
    assert (
        score_run([], one, STEP, START, END, results=results)["kinds"]["sensor_dropout"]["events"]
        == 0
    )


# -- properties ------------------------------------------------------------------------

ASSETS = ["pv_roof", "pv_barn", "bess", "load_1", "poc", "line_3"]
KIND_OF = {
    "pv_roof": "pv_shading",
    "pv_barn": "inverter_trip",
    "bess": "battery_cooling_failure",
    "load_1": "load_spike",
    "poc": "voltage_sag",
    "line_3": "line_outage",
}
T0 = pd.Timestamp(START)


def _at(step):
    return (T0 + pd.Timedelta(seconds=step * STEP)).isoformat()


events = st.lists(
    st.tuples(st.sampled_from(ASSETS), st.integers(0, 180), st.integers(1, 12)),
    max_size=8,
)
noise = st.lists(
    st.tuples(
        st.sampled_from(ASSETS),
        st.integers(0, 191),
        st.sampled_from([*KIND_OF.values(), "anomaly"]),
    ),
    max_size=10,
)


def _labels(spec):
    return [
        {
            "kind": KIND_OF[asset],
            "target": "grid" if asset == "poc" else asset,
            "start": _at(s),
            "end": _at(s + d),
        }
        for asset, s, d in spec
    ]


@settings(max_examples=60, deadline=None)
@given(events, noise)
def test_scores_stay_in_range(spec, extra):
    labels = _labels(spec)
    alerts = [{"asset": a, "kind": k, "start": _at(s)} for a, s, k in extra]
    scores = score_run(alerts, labels, STEP, START, END)
    for entry in scores["kinds"].values():
        assert 0 <= entry["detected"] <= entry["events"]
        for key in ("precision", "recall", "f1"):
            assert entry[key] is None or 0.0 <= entry[key] <= 1.0
        for key in ("delay_median_s", "delay_p90_s"):
            assert entry[key] is None or 0.0 <= entry[key]
    assert 0 <= scores["false_alarms"] <= len(alerts)
    assert scores["macro_f1"] is None or 0.0 <= scores["macro_f1"] <= 1.0
    assert scores["diagnosis_accuracy"] is None or 0.0 <= scores["diagnosis_accuracy"] <= 1.0
    json.loads(dumps(scores))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 180), st.integers(1, 12)), min_size=1, max_size=6))
def test_perfect_alerts_score_one(windows):
    spec = [(asset, s, d) for asset, (s, d) in zip(ASSETS, windows, strict=False)]
    labels = _labels(spec)
    alerts = [{"asset": a, "kind": KIND_OF[a], "start": _at(s)} for a, s, _ in spec]
    scores = score_run(alerts, labels, STEP, START, END)
    assert scores["macro_f1"] == 1.0
    assert scores["false_alarms"] == 0
    assert scores["diagnosis_accuracy"] == 1.0
    assert all(e["delay_median_s"] == 0.0 for e in scores["kinds"].values())


def test_battery_rows_are_found_beside_the_ems_setpoints():
    # a battery's twin rows sit beside kind=controller rows of the same asset name
    t_c = np.r_[np.full(40, 25.0), np.linspace(25.0, 40.0, 24), np.full(32, 30.0)]
    results = pd.concat(
        [
            rows("bess", "battery", "t_c", t_c),
            rows("bess", "controller", "p_set_kw", np.full(96, 10.0)),
        ]
    )
    hot = [label("battery_cooling_failure", "bess", "10:00", "16:00", 0.9)]
    scored = score_run([], hot, STEP, START, END, results=results)
    assert scored["kinds"]["battery_cooling_failure"]["events"] == 1
    assert "extra temperature K 13.5" in scored["records"][0]["reveal"]
    idle = [label("battery_cooling_failure", "bess", "00:00", "06:00", 0.9)]
    scored = score_run([], idle, STEP, START, END, results=results)
    assert scored["kinds"]["battery_cooling_failure"]["events"] == 0
