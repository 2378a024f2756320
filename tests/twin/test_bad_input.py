"""Bad input ends in a named error (exit 2), never a traceback, and leaves no result behind."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT
from tests.twin.bad_input import assert_named_failure, results_under
from twin.cli import app
from twin.errors import ScenarioError
from twin.scenario import load_scenario, validate_scenario

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch, day_raw):
    """An empty working directory holding the day scenario as ``day.yaml``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "day.yaml").write_text(yaml.safe_dump(day_raw))
    return tmp_path


# --- 1. inputs that ended in a traceback ------------------------------------------------------


def test_a_binary_scenario_file_is_named(workdir):
    (workdir / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, "bin.yaml"])
        assert_named_failure(result, "bin.yaml", "not UTF-8 text")
    assert not results_under(workdir)


def test_a_directory_given_as_the_scenario_is_named(workdir):
    (workdir / "dir.yaml").mkdir()
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, "dir.yaml"])
        assert_named_failure(result, "dir.yaml", "is a directory")
    assert not results_under(workdir)


def test_a_set_value_that_is_not_yaml_is_named(workdir):
    result = runner.invoke(app, ["run", "day.yaml", "--no-progress", "--set", "key=[1,{"])
    assert_named_failure(result, "--set", "key: not valid YAML")
    assert not results_under(workdir)


def test_a_yaml_error_never_quotes_the_line_it_is_on(workdir):
    """PyYAML's message quotes the bad line: a password on it must not reach the console."""
    secret = "S3cretPW"
    result = runner.invoke(app, ["validate", "day.yaml", "--set", f"mqtt.password=[{secret},{{"])
    assert_named_failure(result, "--set", "not valid YAML")
    assert "line 1" in result.output and secret not in result.output


def campaign(workdir: Path, **fields) -> Path:
    spec = {"name": "sweep", "base": "day.yaml", "axes": {"seed": [1, 2]}, **fields}
    path = workdir / "campaign.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("samples", ["abc", -3, 0, 1.5, 10**9, True])
def test_campaign_samples_must_be_a_sane_whole_number(workdir, samples):
    path = campaign(workdir, mode="random", samples=samples)
    result = runner.invoke(app, ["campaign", str(path), "--no-progress"])
    assert_named_failure(result, "samples: expected a whole number in 1..10000")
    assert not results_under(workdir)


def test_a_campaign_base_with_invalid_yaml_is_named(workdir):
    (workdir / "day.yaml").write_text("name: [1, {\n")
    result = runner.invoke(app, ["campaign", str(campaign(workdir)), "--no-progress"])
    assert_named_failure(result, "day.yaml", "not valid YAML")
    assert not results_under(workdir)


def test_report_on_a_corrupt_parquet_file_is_named(workdir):
    run = workdir / "run"
    run.mkdir()
    (run / "results.parquet").write_bytes(b"PAR1 this is not parquet")
    meta = {
        "run_id": "x-1",
        "status": "finished",
        "scenario": {"name": "x", "site": {"tz": "UTC"}, "start": "2016-06-21", "duration": "1d"}
        | {"step": "15min"},
    }
    (run / "run.json").write_text(json.dumps(meta))
    (run / "kpis.json").write_text("{}")
    result = runner.invoke(app, ["report", str(run)])
    assert_named_failure(result, "results.parquet", "corrupt or not written by twin run")
    assert not list(run.glob("*.png")) and not (run / "report.html").exists()
    (run / "run.json").write_text("{not json")
    assert_named_failure(runner.invoke(app, ["report", str(run)]), "run.json", "corrupt")


# --- 2. nonsense that was accepted ------------------------------------------------------------

NONSENSE = [
    (["assets.pv[0].p_dc_kw=.inf"], "assets.pv[0].p_dc_kw", "finite"),
    (["assets.pv[0].p_dc_kw=.nan"], "assets.pv[0].p_dc_kw", "finite"),
    (
        ["assets.battery[0].e_kwh=1e-9", "assets.battery[0].p_max_kw=1e9"],
        "assets.battery[0].e_kwh",
        "0.01",
    ),
    (["assets.battery[0].e_kwh=1e12"], "assets.battery[0].e_kwh", "less than or equal"),
    (["assets.battery[0].p_max_kw=6000"], "assets.battery[0]", "C-rate"),
    (["assets.battery[0].p_max_kw=0.1"], "assets.battery[0]", "C-rate"),
    (["assets.battery[0].t_trip_c=40"], "assets.battery[0]", "t_derate_c < t_trip_c"),
    (["assets.battery[0].t_ambient_c=1e6"], "assets.battery[0].t_ambient_c", "less than"),
    (["assets.battery[0].eta_ch=1e-9"], "assets.battery[0].eta_ch", "greater than"),
    (["assets.pv[0].p_ac_kw=1"], "assets.pv[0]", "DC/AC ratio"),
    (["assets.pv[0].name=a/b"], "assets.pv[0].name", "identifier"),
    (["assets.pv[0].name=pv.roof"], "assets.pv[0].name", "identifier"),
    (["site.altitude=1e9"], "site.altitude", "less than"),
    (["tariff.import_eur_kwh=1e6"], "tariff.import_eur_kwh", "less than"),
    (["tariff.periods[0].import_eur_kwh=-.inf"], "tariff.periods[0].import_eur_kwh", "finite"),
    (["control.horizon=400d"], "control", "horizon of at most 31d"),
    (["grid.v_min_pu=0"], "grid.v_min_pu", "greater than"),
    (["seed=-1"], "seed", "greater than"),
    (["start=9999-01-01T00:00:00+00:00"], "start", "1900..2200"),
    (["step=2d"], "", "step <= duration"),
    (["duration=36500d"], "", "at most 10000d"),
    (["description=" + "x" * 20_000], "description", "at most 10000 characters"),
    (["outputs.dir=../elsewhere"], "outputs.dir", "below the working directory"),
    (["outputs.dir=/tmp/{name}"], "outputs.dir", "relative"),
    (["outputs.dir=~/runs"], "outputs.dir", "relative"),
    (["outputs.dir=runs/{nmae}"], "outputs.dir", "only placeholder is {name}"),
    (["outputs.dir=''"], "outputs.dir", "the working directory itself"),
    (["mqtt.buffer_max=1000000000000"], "mqtt.buffer_max", "less than"),
    (['mqtt.prefix="a\\0b"'], "mqtt.prefix", "pattern"),
    (["mqtt.devices=[{asset: bess, emulate: {e_kwh: 1.0e+300}}]"], "mqtt.devices[0]", "e_kwh"),
    (["control.schedule_csv=nope.csv"], "control.schedule_csv", "not found"),
    (["assets.battery[0].e_kwh=yes"], "assets.battery[0].e_kwh", "expected a number"),
    (["assets.pv[0].bus=true"], "assets.pv[0].bus", "got True"),
    (["site.lat=false"], "site.lat", "expected a number"),
    (
        ["faults=[{kind: voltage_sag, target: grid, start: 1h, severity: 1.5}]"],
        "faults[0]",
        "within 0..0.9",
    ),
    (
        ["faults=[{kind: pv_shading, target: pv_roof, start: 1h, severity: -2}]"],
        "faults[0]",
        "within 0..1",
    ),
]


@pytest.mark.parametrize(("overrides", "path", "expected"), NONSENSE)
def test_nonsense_is_refused_with_its_field(workdir, overrides, path, expected):
    with pytest.raises(ScenarioError) as caught:
        load_scenario("day.yaml", overrides)
    problems = {p.path: p.message for p in caught.value.problems}
    assert any(p.startswith(path) and expected in m for p, m in problems.items()), problems


@pytest.mark.parametrize(
    "name", ["..", ".", "/", "a/b", "\\", "a\\b", "a\x00b", "~", "~user", "", "-rf", "x" * 101]
)
def test_scenario_names_are_safe_directory_names(workdir, name):
    result = runner.invoke(
        app, ["run", "day.yaml", "--no-progress", "--set", f"name={json.dumps(name)}"]
    )
    assert_named_failure(result, "name")
    assert sorted(p.name for p in workdir.iterdir()) == ["day.yaml"]  # nothing written


def test_a_100_mb_description_is_refused_without_echoing_it(day_raw):
    day_raw["description"] = "x" * 100_000_000
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(day_raw)
    assert "description" in str(caught.value)
    assert len(str(caught.value)) < 1_000


def test_a_run_too_large_for_memory_is_refused_up_front_unless_allowed(workdir):
    # results stream to disk (twin.recorder) and the KPIs and exogenous series are
    # computed a window at a time: memory stays flat past a window of steps (a month
    # at 1 s fits 4 GB), so the limit is lowered to see the refusal
    long = ["duration=30d", "step=1s", "outputs.max_memory_gb=0.05"]
    result = runner.invoke(
        app, ["run", "day.yaml", "--no-progress", *sum([["--set", o] for o in long], [])]
    )
    assert_named_failure(result, "65,536 steps at once", "GB of memory", "outputs.max_memory_gb")
    assert not results_under(workdir)
    # the documented override lets it through validation
    sc = load_scenario("day.yaml", [*long[:2], "outputs.max_memory_gb=4"])
    assert sc.clock().n_steps == 2_592_000


def test_the_shipped_scenarios_stay_valid():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        validate_scenario(yaml.safe_load(path.read_text()), str(path))


# --- 4. the other commands --------------------------------------------------------------------

OTHER_COMMANDS = [
    (["train", "day.yaml", "--out", "afile/policy.zip", "--days", "1"], "afile"),
    (["compare", "day.yaml", "--controllers", "bogus", "--out", "cmp"], "unknown: bogus"),
    (["compare", "day.yaml", "--controllers", ",", "--out", "cmp"], "--controllers"),
    (["grafana", "--out", "afile"], "afile"),
    (["broker", "--data-dir", "afile", "--port", "1"], "afile"),
    (["run", "day.yaml", "--out", "afile", "--no-progress"], "afile"),
    (["campaign", "list.yaml", "--no-progress"], "expected a mapping"),
    (["campaign", "missing.yaml", "--no-progress"], "file not found"),
    (["campaign", "campaign.yaml", "--out", "afile", "--no-progress"], "afile"),
    (
        ["device", "--broker", "mqtt://127.0.0.1:1", "--site", "s", "--asset", "b"]
        + ["--param", "e_kwh=inf"],
        "finite",
    ),
]


@pytest.mark.parametrize(("args", "needle"), OTHER_COMMANDS)
def test_every_command_names_its_error(workdir, args, needle):
    (workdir / "afile").write_text("a file where a directory is expected\n")
    (workdir / "list.yaml").write_text("- a\n- b\n")
    campaign(workdir)
    result = runner.invoke(app, args)
    assert_named_failure(result, needle)
    assert not results_under(workdir)
    assert not (workdir / "cmp").exists()


@pytest.mark.parametrize("option", [["--days", "-1"], ["--timesteps", "-5"], ["--timesteps", "0"]])
def test_train_refuses_nonsense_lengths(workdir, option):
    result = runner.invoke(app, ["train", "day.yaml", *option])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value" in result.output and "Traceback" not in result.output
    assert not (workdir / "policy.zip").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "day.yaml", "--realtime", "--rt-factor", "nan"],
        ["run", "day.yaml", "--realtime", "--rt-factor", "inf"],
        ["campaign", "c.yaml", "--workers", "100000"],
        ["device", "--broker", "mqtt://h:1", "--site", "s", "--asset", "a", "--miss-every", "0"],
        ["device", "--broker", "mqtt://h:1", "--site", "s", "--asset", "a"]
        + ["--clock-skew-s", "inf"],
    ],
)
def test_numeric_cli_options_are_bounded(workdir, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Invalid value" in result.output
    assert not results_under(workdir)
