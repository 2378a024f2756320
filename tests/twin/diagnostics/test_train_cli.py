"""`twin campaign --diagnose` and `twin diagnostics train` on small real campaigns."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app
from twin.diagnostics.campaign import COLUMNS
from twin.diagnostics.learned import LearnedDiagnoser, ModelSensorsError, ModelStepError, load
from twin.diagnostics.run import diagnose_run

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diag_campaign")
    spec = {
        "name": "diag_tiny",
        "base": str(ROOT / "scenarios" / "microgrid_day.yaml"),
        "axes": {
            "fault": [
                {"kind": "pv_shading", "target": "pv_roof", "duration": "3h", "severity": 0.5},
                {"kind": "voltage_sag", "target": "grid", "duration": "1h", "severity": 0.08},
            ],
            "fault.start": ["13h"],
        },
    }
    (tmp / "c.yaml").write_text(yaml.safe_dump(spec))
    out = tmp / "out"
    result = run_cli(
        "campaign",
        tmp / "c.yaml",
        "--out",
        out,
        "--executor",
        "threads",
        "--no-progress",
        "--diagnose",
    )
    assert result.exit_code == 0, result.output
    return tmp, out, result.output


def test_campaign_diagnose_adds_columns_and_pooled_scores(campaign):
    _, out, output = campaign
    summary = pd.read_csv(out / "summary.csv")
    assert set(COLUMNS) <= set(summary.columns)
    faulted = summary[summary["reference"].notna()].set_index("fault.kind")
    assert faulted.loc["voltage_sag", "detected"]
    assert faulted.loc["voltage_sag", "diagnosed_kind"] == "voltage_sag"
    assert 0 <= faulted.loc["voltage_sag", "delay_s"] <= 2 * 900  # within two steps
    reference = summary[summary["reference"].isna()].iloc[0]
    assert pd.isna(reference["detected"]) and reference["false_alarms"] == 0  # fault-free
    scores = json.loads((out / "scores.json").read_text())
    assert {"pv_shading", "voltage_sag"} <= set(scores["kinds"])
    assert scores["days"] == 3.0  # three one-day runs, the reference included
    assert sum(scores["confusion"]["voltage_sag"].values()) == 1
    for point in faulted["point_id"]:
        assert json.loads((out / "runs" / point / "scores.json").read_text())["records"]
    assert "macro F1" in output and "voltage_sag" in output


def test_train_saves_a_model_that_reloads_and_predicts_the_same(campaign):
    tmp, out, _ = campaign
    model_dir = tmp / "model"
    result = run_cli("diagnostics", "train", out, "--out", model_dir)
    assert result.exit_code == 0, result.output
    document = json.loads((model_dir / "model.json").read_text())
    assert document["training"]["runs"] == 3
    assert document["training"]["fault_free_runs"] == 1
    assert document["training"]["labels"]["pv_shading"] > 0
    assert "pv.p_kw" in document["sensors"] and "battery.soc" in document["sensors"]
    assert len(document["training"]["fingerprint"]) == 64
    assert len(document["sensor_fingerprint"]) == 64
    (catalogue,) = document["training"]["catalogue_fingerprints"]  # one grid, one sensor set
    run_dir = next(p for p in (out / "runs").iterdir() if (p / "labels.json").exists())
    found = diagnose_run(run_dir, write=False)
    first, again = load(model_dir), load(model_dir, found.catalogue)
    rows = found.features[found.features["asset_kind"] == "pv"]
    names = first.features["pv"]
    x = rows[names].to_numpy(float)
    np.testing.assert_array_equal(first.anomaly_score("pv", x), again.anomaly_score("pv", x))
    assert first.classify("pv", x)[0] == again.classify("pv", x)[0]
    one, two = LearnedDiagnoser(first), LearnedDiagnoser(again)
    assert [one.diagnose("pv", v, names) for v in x] == [two.diagnose("pv", v, names) for v in x]
    # the engine runs with the learned diagnoser through the campaign too
    result = run_cli(
        "campaign",
        tmp / "c.yaml",
        "--out",
        out,
        "--executor",
        "threads",
        "--no-progress",
        "--diagnose",
        "--model",
        model_dir,
    )
    assert result.exit_code == 0, result.output


def test_a_model_refuses_a_run_with_other_sensors(campaign, tmp_path):
    tmp, out, _ = campaign
    model_dir = _trained(tmp, out)
    run_dir = tmp_path / "run"
    result = run_cli(
        "run",
        ROOT / "scenarios" / "microgrid_day.yaml",
        "--out",
        run_dir,
        "--no-progress",
        "--set",
        'sensors.exclude=["battery.t_c"]',
    )
    assert result.exit_code == 0, result.output
    with pytest.raises(ModelSensorsError, match=r"missing sensors \['battery\.t_c'\]"):
        diagnose_run(run_dir, model=model_dir, write=False)


def test_a_model_refuses_a_run_of_another_step(campaign, tmp_path):
    """Trained on 15-minute runs: its chart statistics mean nothing at 5-minute steps."""
    tmp, out, _ = campaign
    model_dir = _trained(tmp, out)
    assert json.loads((model_dir / "model.json").read_text())["training"]["step_s"] == 900
    run_dir = tmp_path / "run"
    day = ROOT / "scenarios" / "microgrid_day.yaml"
    args = (
        "run",
        day,
        "--out",
        run_dir,
        "--no-progress",
        "--set",
        "step=5min",
        "--set",
        "duration=6h",
    )
    assert run_cli(*args).exit_code == 0
    with pytest.raises(ModelStepError, match=r"training\.step_s: trained on runs of 900 s steps"):
        diagnose_run(run_dir, model=model_dir, write=False)


def test_train_on_an_empty_campaign_fails_and_writes_nothing(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    result = run_cli("diagnostics", "train", tmp_path / "empty", "--out", tmp_path / "m")
    assert result.exit_code == 2
    assert "no finished runs" in result.output
    assert not (tmp_path / "m").exists()


def test_train_on_runs_without_measured_rows_fails_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "c" / "runs" / "r0"
    result = run_cli(
        "run",
        ROOT / "scenarios" / "microgrid_day.yaml",
        "--out",
        run_dir,
        "--no-progress",
        "--set",
        "sensors.enabled=false",
    )
    assert result.exit_code == 0, result.output
    result = run_cli("diagnostics", "train", tmp_path / "c", "--out", tmp_path / "m")
    assert result.exit_code == 2
    assert "no measured rows" in result.output
    assert not (tmp_path / "m").exists()


def test_model_needs_diagnose(tmp_path):
    result = run_cli("campaign", tmp_path / "c.yaml", "--model", tmp_path)
    assert result.exit_code == 2
    assert "--model: only with --diagnose" in result.output


def test_diagnose_scores_a_run_with_labels(campaign):
    _, out, _ = campaign
    run_dir = next(p for p in (out / "runs").iterdir() if (p / "labels.json").exists())
    (run_dir / "scores.json").unlink(missing_ok=True)
    result = run_cli("diagnose", run_dir)
    assert result.exit_code == 0, result.output
    assert "scores.json: macro F1" in result.output
    scores = json.loads((run_dir / "scores.json").read_text())
    assert set(scores) >= {"kinds", "macro_f1", "false_alarms_per_day", "confusion"}


def test_campaign_with_a_model_of_other_sensors_says_which_runs_and_fails(campaign, tmp_path):
    tmp, out, _ = campaign
    model_dir = _trained(tmp, out)
    other = tmp_path / "other"
    other.mkdir()
    for path in model_dir.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    document = json.loads((other / "model.json").read_text())
    document["sensors"].remove("battery.t_c")  # trained where the BMS reports no temperature
    (other / "model.json").write_text(json.dumps(document))
    result = run_cli(
        "campaign",
        tmp / "c.yaml",
        "--out",
        out,
        "--executor",
        "threads",
        "--no-progress",
        "--diagnose",
        "--model",
        other,
    )
    assert result.exit_code == 1
    assert "not diagnosed" in result.output and "unknown sensors ['battery.t_c']" in result.output
    summary = pd.read_csv(out / "summary.csv")
    assert summary["diagnose_error"].str.contains("ModelSensorsError").all()


def _trained(tmp, out):
    """The campaign's model (trained by the first test that needs it)."""
    model_dir = tmp / "model"
    if not model_dir.exists():
        assert run_cli("diagnostics", "train", out, "--out", model_dir).exit_code == 0
    return model_dir
