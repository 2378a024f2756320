from pathlib import Path

import yaml
from typer.testing import CliRunner

from twin.cli import app

runner = CliRunner()


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_run_prints_kpis_and_report_renders(small_raw, tmp_path):
    path = write(tmp_path, small_raw)
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "assets.battery[0].e_kwh=30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Self-sufficiency ratio" in result.output
    assert "Energy-balance residual (kWh)" in result.output
    assert (out / "results.parquet").is_file() and (out / "kpis.json").is_file()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("power", "soc", "voltages", "prices"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert "power.png" in page and "Peak import (kW)" in page


def test_validate_reports_field_paths_and_fails(day_raw, tmp_path):
    day_raw["assets"]["battery"][0]["p_max_kww"] = 3
    result = runner.invoke(app, ["validate", str(write(tmp_path, day_raw))])
    assert result.exit_code == 2
    assert "assets.battery[0].p_max_kww" in result.output
    assert "did you mean 'p_max_kw'" in result.output


def test_validate_ok(day_raw, tmp_path):
    result = runner.invoke(app, ["validate", str(write(tmp_path, day_raw))])
    assert result.exit_code == 0
    assert "96 steps" in result.output


def test_report_of_a_non_run_is_clear(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "results.parquet is missing" in result.output


def test_ev_depot_kpis_and_report_show_ev_charging(tmp_path):
    out = tmp_path / "ev"
    result = runner.invoke(
        app,
        [
            "run",
            "scenarios/ev_depot.yaml",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "duration=1d",
        ],
    )
    assert result.exit_code == 0, result.output
    for label in (
        "EV energy delivered (kWh)",
        "EV energy unmet at departure (kWh)",
        "EVs served",
        "EVs turned away",
        "Peak import, uncontrolled charging (kW)",
    ):
        assert label in result.output
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    for name in ("ev_power", "ev_connected", "ev_energy"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert "ev_power.png" in (out / "report.html").read_text()
