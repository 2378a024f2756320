import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.diagnostics.run import NoMeasurementsError, diagnose_run

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _run(out: Path, *sets: str) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "twin.cli",
        "run",
        "scenarios/microgrid_day.yaml",
        "--out",
        str(out),
        "--no-progress",
    ]
    for item in sets:
        cmd += ["--set", item]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("diag")
    return {
        "clean": _run(base / "clean"),
        "shaded": _run(
            base / "shaded",
            "faults=[{kind: pv_shading, target: pv_roof, start: 12h, duration: 3h, severity: 0.3}]",
        ),
        "stuck": _run(
            base / "stuck",
            "faults=[{kind: sensor_stuck, target: load_1.p_kw, start: 12h, duration: 4h}]",
        ),
    }


def test_fault_free_run_raises_no_alert(runs):
    result = diagnose_run(runs["clean"])
    assert result.alerts == []
    health = pd.read_parquet(runs["clean"] / "health.parquet")
    values = health["value"].dropna()
    assert ((values >= 0) & (values <= 1)).all()
    assert set(health["source"].astype(str)) == {"diagnostics"}
    assert json.loads((runs["clean"] / "alerts.json").read_text()) == []


def test_shaded_plant_index_070_and_one_shading_alert(runs):
    result = diagnose_run(runs["shaded"])
    h = result.health
    pi = h[(h["asset"] == "pv_roof") & (h["quantity"] == "pv_performance")].set_index("time")[
        "value"
    ]
    window = pi["2016-06-21T16:00Z":"2016-06-21T18:45Z"].dropna()
    assert len(window) == 12
    assert np.all(np.abs(window - 0.70) <= 0.02)
    assert [(a["asset"], a["kind"]) for a in result.alerts] == [("pv_roof", "pv_shading")]
    assert result.alerts[0]["start"] == "2016-06-21T16:00:00+00:00"
    frame = pd.read_parquet(runs["shaded"] / "alerts.parquet")
    assert json.loads(frame["evidence"].iloc[0])[0].startswith("pv_performance=0.6")


def test_stuck_sensor_flagged_within_its_window(runs):
    result = diagnose_run(runs["stuck"])
    alerts = [a for a in result.alerts if a["asset"] == "load_1"]
    assert [a["kind"] for a in alerts] == ["sensor_stuck"]
    delay = pd.Timestamp(alerts[0]["start"]) - pd.Timestamp("2016-06-21T16:00Z")
    assert delay <= pd.Timedelta(minutes=15 * 16)  # QualitySettings.max_window reports


def test_features_frame_for_training(runs):
    result = diagnose_run(runs["clean"], write=False)
    f = result.features
    assert {"time", "asset", "asset_kind", "pv_performance", "cusum:p_kw"} <= set(f.columns)
    assert len(f[f["asset"] == "pv_roof"]) == result.steps


def test_run_without_measured_values_is_a_named_error(tmp_path):
    out = _run(tmp_path / "blind", "sensors.enabled=false")
    with pytest.raises(NoMeasurementsError, match="no rows with source='measured'"):
        diagnose_run(out)
    assert not (out / "health.parquet").exists()
    assert not (out / "alerts.json").exists()
