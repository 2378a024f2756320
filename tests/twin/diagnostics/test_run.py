import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from twin.diagnostics.catalogue import catalogue_from
from twin.diagnostics.engine import Engine, Settings
from twin.diagnostics.expected import expectations_from
from twin.diagnostics.run import (
    NoMeasurementsError,
    alert_records,
    diagnose_run,
    measured_arrays,
    series_keys,
)
from twin.errors import ResultsError
from twin.results import load_results, read_run
from twin.scenario import validate_scenario

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
        "spike": _run(
            base / "spike",
            "faults=[{kind: load_spike, target: load_1, start: 12h, duration: 2h, severity: 1.5}]",
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
    cli = subprocess.run(
        [sys.executable, "-m", "twin.cli", "diagnose", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 2
    assert "no rows with source='measured'" in " ".join(cli.stderr.split())
    assert not (out / "health.parquet").exists()
    assert not (out / "alerts.json").exists()


def test_not_a_run_directory_is_a_named_error(tmp_path):
    with pytest.raises(ResultsError, match="results.parquet: missing"):
        diagnose_run(tmp_path)


def test_cli_writes_the_files(runs):
    cli = subprocess.run(
        [sys.executable, "-m", "twin.cli", "diagnose", str(runs["shaded"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert "1 alert(s) in 96 steps" in cli.stdout
    records = json.loads((runs["shaded"] / "alerts.json").read_text())
    assert [r["alert_id"] for r in records] == ["pv_roof-1"]


def test_stepping_with_mappings_gives_the_offline_alerts_and_indices(runs):
    """What an online simulator does: one mapping of readings per step."""
    offline = diagnose_run(runs["spike"], write=False)
    scenario = validate_scenario(read_run(runs["spike"])["scenario"])
    results = load_results(runs["spike"])
    measured = results[results["source"].astype(str) == "measured"]
    catalogue = catalogue_from(scenario, series_keys(measured))
    engine = Engine(catalogue, expectations_from(scenario, catalogue))
    times = scenario.clock().times
    sensor_keys = [x.key for x in catalogue.sensors]
    readings, setpoints = measured_arrays(results, times, sensor_keys, engine.command_keys)
    indices = []
    for k, time in enumerate(times):
        row = {key: v for key, v in zip(sensor_keys, readings[k], strict=True) if np.isfinite(v)}
        row.update(zip(engine.command_keys, setpoints[k], strict=True))
        indices.append(engine.step(k, time, row).indices)
    online = alert_records(engine.finish())
    assert online == offline.alerts
    assert [(a["asset"], a["kind"]) for a in online] == [("load_1", "load_spike")]
    h = offline.health
    pi = h[(h["asset"] == "pv_roof") & (h["quantity"] == "pv_performance")]["value"].to_numpy()
    a = engine.assets.index("pv_roof")
    assert np.array_equal(np.array(indices)[:, a, 0], pi, equal_nan=True)


def test_static_threshold_baseline_sees_indices_only(runs):
    shaded = diagnose_run(runs["shaded"], settings=Settings(mode="threshold"), write=False)
    assert {(a["asset"], a["detector"]) for a in shaded.alerts} == {("pv_roof", "threshold")}
    spike = diagnose_run(runs["spike"], settings=Settings(mode="threshold"), write=False)
    # a load has one index: its data quality, which the step disturbs for a moment
    assert all(a["evidence"][0].startswith("data_quality=") for a in spike.alerts)
    assert (
        diagnose_run(runs["clean"], settings=Settings(mode="threshold"), write=False).alerts == []
    )


class _Always:
    def __init__(self):
        self.calls = []

    def diagnose(self, asset_kind, features, names):
        self.calls.append((asset_kind, len(features), tuple(names)))
        return "pv_string_outage", 0.66


def test_a_diagnoser_object_replaces_the_rules(runs):
    diagnoser = _Always()
    result = diagnose_run(runs["shaded"], model=diagnoser, write=False)
    assert [(a["kind"], a["confidence"]) for a in result.alerts] == [("pv_string_outage", 0.66)]
    kind, n, names = diagnoser.calls[0]
    assert kind == "pv" and n == len(names) and "pv_performance" in names


def test_capacity_fade_of_20_percent_in_a_run_within_5_percent_after_two_cycles(tmp_path):
    out = _run(
        tmp_path / "fade",
        "duration=4d",
        # a flat tariff: the rule cycles the battery on PV surplus and deficit every day
        # (on the time-of-use tariff it only discharges into the evening peak)
        "tariff.periods=[]",
        "faults=[{kind: capacity_fade, target: bess, start: 1h, severity: 0.2}]",
    )
    result = diagnose_run(out, write=False)
    h = result.health
    soh = h[(h["asset"] == "bess") & (h["quantity"] == "soh_estimate")].set_index("time")["value"]
    results = load_results(out)
    p = results[(results["source"] == "twin") & (results["kind"] == "battery")]
    p = p[p["quantity"] == "p_kw"].set_index("time")["value"]
    cycles = (p.abs().cumsum() * 0.25) / (2 * 60.0 * 0.8)  # equivalent full cycles
    after = soh[cycles.reindex(soh.index) >= 2.0].dropna()
    assert len(after) > 10
    assert np.all(np.abs(after - 0.8) <= 0.05 * 0.8)
    assert result.alerts and {a["kind"] for a in result.alerts} == {"capacity_fade"}
    assert result.alerts[-1]["status"] == "open"  # the fade stays: so does its alert


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("{bad", "labels.json: unreadable"),
        ('{"faults": [1]}', r"labels.json: faults\[0\]: expected a mapping"),
        ('{"faults": [{"kind": "pv_shading"}]}', r"labels.json: faults\[0\].target: missing"),
        ("[]", "labels.json: expected {'faults'"),
    ],
)
def test_bad_labels_are_named_and_nothing_is_written(runs, tmp_path, labels, message):
    import shutil

    from twin.cli import app

    run = tmp_path / "run"
    shutil.copytree(runs["shaded"], run)
    for name in ("health.parquet", "alerts.parquet", "alerts.json", "scores.json"):
        (run / name).unlink(missing_ok=True)
    (run / "labels.json").write_text(labels)
    result = CliRunner().invoke(app, ["diagnose", str(run)])
    assert result.exit_code == 2, result.output
    assert re.search(message, " ".join(result.output.split())), result.output
    assert not (run / "health.parquet").exists() and not (run / "alerts.json").exists()


def test_an_unreadable_results_file_is_a_named_error(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["shaded"], run)
    (run / "results.parquet").write_bytes(b"")
    with pytest.raises(ResultsError, match="results.parquet: unreadable"):
        diagnose_run(run, write=False)
