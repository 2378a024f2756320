"""Input files are read at validation exactly as the run reads them: gaps are errors."""

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import twin.run
from models.weather import resolve_weather_path
from twin.checks import evaluate_checks
from twin.cli import app
from twin.errors import RunError, ScenarioError
from twin.run import run_scenario
from twin.scenario import validate_scenario

START = "2016-06-21T09:00:00-04:00"


def _price_csv(path, hours=6, blank_row=None):
    times = pd.date_range(START, periods=hours * 4, freq="15min").tz_convert("UTC")
    prices = [0.3] * len(times)
    lines = ["time,import_eur_kwh"]
    for i, (t, p) in enumerate(zip(times, prices, strict=True)):
        lines.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{'' if i == blank_row else p}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_blank_price_is_a_validation_error_naming_the_file_and_line(small_raw, tmp_path):
    small_raw["tariff"]["price_csv"] = str(_price_csv(tmp_path / "p.csv", blank_row=5))
    with pytest.raises(
        ScenarioError,
        match=r"tariff\.price_csv: .*p\.csv: 'import_eur_kwh' is "
        r"empty or not a finite number on line\(s\) 7",
    ):
        validate_scenario(small_raw)


def test_a_complete_price_file_validates_and_prices_the_run(small_raw, tmp_path):
    small_raw["tariff"]["price_csv"] = str(_price_csv(tmp_path / "p.csv"))
    scenario = validate_scenario(small_raw)
    result = run_scenario(scenario.model_copy(update={"controller": "none"}), tmp_path / "run")
    import_kwh = result.kpis["e_import_kwh"]
    assert result.kpis["cost_eur"] == pytest.approx(
        0.3 * import_kwh - 0.08 * result.kpis["e_export_kwh"]
    )


def test_a_profile_too_short_for_the_run_fails_validate_not_only_run(small_raw, tmp_path):
    profile = tmp_path / "house.csv"
    times = pd.date_range(START, periods=8, freq="15min").tz_convert("UTC")  # 2 h of 6
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": 0.5})
    frame.to_csv(profile, index=False)
    small_raw["assets"]["load"].append(
        {"name": "house", "bus": 5, "p_kw": 4, "profile": str(profile)}
    )
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(small_raw))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "].profile: " in result.output and "house.csv" in result.output
    assert "the run needs" in result.output


def test_a_non_numeric_load_value_is_named(small_raw, tmp_path):
    profile = tmp_path / "house.csv"
    times = pd.date_range(START, periods=24, freq="15min").tz_convert("UTC")
    values = ["0.5"] * 24
    values[3] = "n/a"
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": values})
    frame.to_csv(profile, index=False)
    small_raw["assets"]["load"].append(
        {"name": "house", "bus": 5, "p_kw": 4, "profile": str(profile)}
    )
    with pytest.raises(ScenarioError, match=r"'p_pu' is empty or not a finite number on line"):
        validate_scenario(small_raw)


def test_missing_irradiance_in_a_weather_file_is_refused(small_raw, tmp_path):
    source = resolve_weather_path("723170TYA.CSV")
    lines = source.read_text().splitlines()
    header = lines[1].split(",")
    ghi = header.index("GHI (W/m^2)")
    row = lines[2 + 24 * 171 + 12].split(",")  # noon, 21 June
    row[ghi] = ""
    lines[2 + 24 * 171 + 12] = ",".join(row)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(lines) + "\n")
    small_raw["weather"] = str(blank)
    with pytest.raises(ScenarioError, match=r"weather.*1 missing or non-numeric value\(s\) of ghi"):
        validate_scenario(small_raw)


def test_a_failure_after_the_last_step_is_a_failed_run_not_running(
    small_raw, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise IndexError("no prices")

    monkeypatch.setattr(twin.run, "compute_kpis", broken)
    with pytest.raises(RunError, match="failed after its last step: no prices"):
        run_scenario(validate_scenario(small_raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "IndexError" in meta["error"]
    assert not (tmp_path / "run" / "kpis.json").exists()


def test_a_failed_uncontrolled_comparison_fails_the_run(small_raw):
    scenario = validate_scenario(small_raw)
    meta = {"uncontrolled_status": "failed", "uncontrolled_run_id": "x-1"}
    _, failures = evaluate_checks(scenario, meta, {})
    assert [f.check for f in failures] == ["uncontrolled_comparison"]
    _, failures = evaluate_checks(scenario, {"uncontrolled_status": "finished"}, {})
    assert failures == []


def test_a_price_in_eur_per_mwh_is_refused_by_line(small_raw, tmp_path):
    path = _price_csv(tmp_path / "p.csv")
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",280"  # EUR/MWh slipped in
    path.write_text("\n".join(lines) + "\n")
    small_raw["tariff"]["price_csv"] = str(path)
    with pytest.raises(ScenarioError, match=r"'import_eur_kwh' is outside -100 \.\. 100 on line"):
        validate_scenario(small_raw)
