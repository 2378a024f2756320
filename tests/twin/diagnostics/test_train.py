"""Training rows: labelled by the revealable fault acting on their asset."""

import json

import numpy as np
import pandas as pd
import pytest

from twin.diagnostics.score import aggregate_scores, score_run
from twin.diagnostics.train import TrainingDataError, campaign_runs, label_rows

T0 = pd.Timestamp("2016-06-21T00:00:00+00:00")


def frame():
    times = pd.date_range(T0, periods=8, freq="15min")
    return pd.DataFrame(
        {
            "time": np.tile(times, 3),
            "asset": np.repeat(["pv_roof", "poc", "load_1"], 8),
            "asset_kind": np.repeat(["pv", "grid", "load"], 8),
        }
    )


def label(kind, target, start, end):
    at = lambda step: (T0 + pd.Timedelta(minutes=15 * step)).isoformat()  # noqa: E731
    return {"kind": kind, "target": target, "start": at(start), "end": at(end), "severity": 0.1}


def test_rows_of_the_target_inside_the_window_get_the_kind():
    rows = frame()
    labels = [label("voltage_sag", "grid", 2, 4), label("sensor_drift", "load_1.p_kw", 6, 8)]
    got = label_rows(rows, labels, None)
    assert got[rows["asset"] == "poc"].tolist() == ["none"] * 2 + ["voltage_sag"] * 2 + ["none"] * 4
    assert got[rows["asset"] == "load_1"].tolist() == ["none"] * 6 + ["sensor_drift"] * 2
    assert (got[rows["asset"] == "pv_roof"] == "none").all()


def test_a_fault_the_sensors_cannot_reveal_labels_nothing():
    rows = frame()
    times = pd.date_range(T0, periods=8, freq="15min")
    truth = pd.DataFrame(
        {
            "time": np.tile(times, 2),
            "source": "twin",
            "asset": "pv_roof",
            "kind": "pv",
            "quantity": np.repeat(["p_kw", "p_avail_kw"], 8),
            "value": 0.0,  # night
        }
    )
    got = label_rows(rows, [label("inverter_trip", "pv_roof", 0, 4)], truth)
    assert (got == "none").all()


def test_campaign_runs_lists_finished_runs_only(tmp_path):
    for name, status in (("a", "finished"), ("b", "failed")):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "run.json").write_text(json.dumps({"status": status}))
        (tmp_path / "runs" / name / "results.parquet").write_bytes(b"")
    assert [p.name for p in campaign_runs(tmp_path)] == ["a"]
    with pytest.raises(TrainingDataError, match="no finished runs") as err:
        campaign_runs(tmp_path / "nowhere")
    assert "twin campaign" in err.value.expected


def test_aggregate_of_runs_with_other_steps_has_no_common_step():
    one = score_run([], [], 900.0, T0, T0 + pd.Timedelta(days=1))
    other = score_run([], [], 1.0, T0, T0 + pd.Timedelta(days=1))
    assert aggregate_scores([one, other])["step_s"] is None
    assert aggregate_scores([one, one])["step_s"] == 900.0
