"""``twin compare``: timing without set-up, labelled rows, untruncated table, CSV and JSON."""

import io
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from tests.conftest import ROOT
from twin.cli import app
from twin.compare import (
    LEGEND,
    compare_controllers,
    controller_detail,
    controller_seconds,
    write_comparison,
)
from twin.control.schema import ControlSpec
from twin.rl.controller import BUILTIN_POLICY
from twin.rl.train import DEFAULT_BASE, train_policy
from twin.scenario import validate_scenario

DAY = ROOT / "scenarios" / "microgrid_day.yaml"
N_STEPS = 96  # one day of 15 min
WEAR_KPIS = ("wear_eur", "cost_scored_no_wear_eur")
#: How the rl rows name the forecast their agent reads (the default errors).
DAY_AHEAD = "day_ahead (log error pv 0.3, load 0.1, trust 0.5)"


def day_scenario(**changes):
    raw = yaml.safe_load(DAY.read_text())
    raw.update(changes)
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy") / "agent.zip"
    # a few steps: the policy acts (untrained), and training writes agent_train.json
    return train_policy(day_scenario(), out, timesteps=N_STEPS, days=2, seed=5, progress=False)


@pytest.fixture(scope="module")
def compared(policy, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    names = ["none", "rule", "mpc", "oracle", "rl"]
    table = compare_controllers(day_scenario(), names, out, policy=str(policy.policy))
    return table.set_index("controller", drop=False), out


def run_json(out, name):
    return json.loads((out / name / "run.json").read_text())


def kpis_json(out, name):
    return json.loads((out / name / "kpis.json").read_text())


def read_rows(text, fmt):
    if fmt == "json":
        return pd.DataFrame(json.loads(text))
    rows = pd.read_csv(io.StringIO(text), float_precision="round_trip")  # every digit back
    rows["detail"] = rows["detail"].fillna("")  # an empty field reads as NaN
    return rows


def test_ms_per_step_excludes_the_set_up(compared):
    table, out = compared
    for name in ("rule", "mpc", "oracle", "rl"):
        parts = run_json(out, name)["component_s"]
        row = table.loc[name]
        assert row["ms_per_step"] * N_STEPS / 1000 == pytest.approx(parts[name], rel=1e-12)
        assert row["setup_s"] == pytest.approx(parts[f"{name}:setup"], rel=1e-12)
        total = parts[name] + parts[f"{name}:setup"]
        assert row["ms_per_step"] * N_STEPS / 1000 + row["setup_s"] == pytest.approx(total)
    assert table.loc["rl", "setup_s"] > 0  # torch/SB3 import and the policy load
    assert table.loc["oracle", "setup_s"] > 0  # its whole-run LP
    assert table.loc["none", "ms_per_step"] == 0.0 and table.loc["none", "setup_s"] == 0.0


def test_controller_seconds_reads_the_wrapper_parts():
    parts = {"rl:setup": 3.0, "rl": 0.5, "rl:wrapper": 0.2, "grid": 9.0}
    assert controller_seconds(parts, "rl") == (3.0, 0.5)
    assert controller_seconds(parts, "mpc") == (0.0, 0.0)


def test_each_row_names_its_forecaster_and_policy(compared, policy):
    table, _ = compared
    assert table.loc["mpc", "detail"] == "persistence, 24h horizon"
    assert table.loc["oracle", "detail"] == "perfect foresight"
    expected = f"{policy.policy.stem}, SAC, seed 5, {DEFAULT_BASE} base, reads {DAY_AHEAD}"
    assert table.loc["rl", "detail"] == expected
    assert table.loc["none", "detail"] == "" and table.loc["rule", "detail"] == ""


def test_details_of_other_settings(tmp_path):
    mpc = ControlSpec(forecaster="regression", horizon="12h", resolve_every="1h")
    expected = "regression, 12h horizon, re-planned every 1h, 14 d history"
    assert controller_detail("mpc", mpc) == expected
    day_ahead = ControlSpec(forecaster="day_ahead", day_ahead_error_pv=0.5)
    expected = "day_ahead (log error pv 0.5, load 0.1, trust 0.5), 24h horizon"
    assert controller_detail("mpc", day_ahead) == expected
    bare = tmp_path / "bare.zip"
    bare.write_bytes(b"")
    assert controller_detail("rl", ControlSpec(policy=str(bare))) == f"bare, reads {DAY_AHEAD}"
    (tmp_path / "bare_train.json").write_text("not json")
    assert controller_detail("rl", ControlSpec(policy=str(bare))) == f"bare, reads {DAY_AHEAD}"
    # the shipped policy, named with its training record
    builtin = controller_detail("rl", ControlSpec(policy="builtin"))
    shipped = json.loads(BUILTIN_POLICY.with_name("generalist_sac_train.json").read_text())
    kept = "/".join(f"{f:g}" for f in shipped["selection"]["chosen_shrink"])
    expected = f"builtin, SAC, seed 0, {DEFAULT_BASE} base, correction x{kept}, reads {DAY_AHEAD}"
    assert builtin == expected
    # a policy whose correction selection shrank says by how much, per output
    record = {"algo": "sac", "seed": 2, "selection": {"chosen_shrink": [0.0, 0.75]}}
    (tmp_path / "bare_train.json").write_text(json.dumps(record))
    shrunk = controller_detail("rl", ControlSpec(policy=str(bare)))
    assert shrunk == f"bare, SAC, seed 2, correction x0/0.75, reads {DAY_AHEAD}"
    record["selection"]["chosen_shrink"] = [1.0, 1.0]
    (tmp_path / "bare_train.json").write_text(json.dumps(record))
    assert controller_detail("rl", ControlSpec(policy=str(bare))).endswith(
        "seed 2, reads " + DAY_AHEAD
    )
    spec = ControlSpec(schedule_csv=str(tmp_path / "plan.csv"))
    assert controller_detail("schedule", spec) == "plan.csv"


def test_reduction_against_none_in_percent(compared):
    table, _ = compared
    none = table.loc["none", "cost_scored_eur"]
    assert none > 0
    for name in table.index:
        saved = none - table.loc[name, "cost_scored_eur"]
        assert table.loc[name, "savings_eur"] == pytest.approx(saved, abs=1e-12)
        assert table.loc[name, "reduction_pct"] == pytest.approx(100 * saved / none)
    assert table.loc["oracle", "reduction_pct"] > 0


def test_wear_columns_follow_the_kpis(compared):
    table, out = compared
    reported = [k for k in WEAR_KPIS if k in kpis_json(out, "oracle")]
    assert [k for k in WEAR_KPIS if k in table.columns] == reported
    for key in reported:
        for name in table.index:
            assert table.loc[name, key] == kpis_json(out, name)[key]


def test_table_is_never_truncated(compared):
    table, _ = compared
    pairs = zip(table["controller"], table["detail"], strict=True)
    labels = [f"{n} ({d})" if d else n for n, d in pairs]
    numbers = [f"{v:,.3f}" for v in table["cost_scored_eur"]] + [
        f"{v:,.3f}" for v in table["setup_s"]
    ]
    piped = Console(file=io.StringIO(), width=80)  # what rich assumes when piped
    assert not piped.is_terminal
    write_comparison(table, "table", piped, "day")
    text = piped.file.getvalue()
    assert "…" not in text
    for piece in [*labels, *numbers, "ms/step", "setup s", "vs none %", LEGEND]:
        assert piece in text
    narrow = Console(file=io.StringIO(), width=60, force_terminal=True, color_system=None)
    write_comparison(table, "table", narrow, "day")
    assert "…" not in narrow.file.getvalue()  # a narrow terminal folds cells


def test_csv_and_json_round_trip(compared):
    table, _ = compared
    table = table.reset_index(drop=True)
    for fmt in ("csv", "json"):
        console = Console(file=io.StringIO())
        write_comparison(table, fmt, console, "day")
        back = read_rows(console.file.getvalue(), fmt)
        pd.testing.assert_frame_equal(back, table, check_dtype=False, check_exact=True)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_formats_for_scripts(fmt, tmp_path):
    args = ["compare", str(DAY), "--controllers", "none,oracle", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--format", fmt])
    assert result.exit_code == 0, result.output
    text = result.stdout
    rows = read_rows(text, fmt)
    assert list(rows["controller"]) == ["none", "oracle"]
    for _, row in rows.iterrows():
        kpis = kpis_json(tmp_path, row["controller"])
        assert row["cost_scored_eur"] == kpis["cost_scored_eur"]  # every digit
        assert row["peak_import_kw"] == kpis["peak_import_kw"]


def test_cli_rejects_an_unknown_format(tmp_path):
    args = ["compare", str(DAY), "--format", "xml", "--out", str(tmp_path / "cmp")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--format" in result.output and "table, csv, json" in result.output
    assert not (tmp_path / "cmp").exists()  # refused before running anything


def test_piped_table_shows_every_digit(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)
    args = ["compare", str(DAY), "--controllers", "none,oracle", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    assert "oracle (perfect foresight)" in done.stdout
    for name in ("none", "oracle"):
        cost = kpis_json(tmp_path, name)["cost_scored_eur"]
        assert f"{cost:,.3f}" in done.stdout
    assert LEGEND in done.stdout


def test_duplicate_controllers_are_named(tmp_path):
    from twin.errors import TwinError

    with pytest.raises(TwinError, match="--controllers.*none"):
        compare_controllers(day_scenario(), ["none", "rule", "none"], tmp_path)
    result = CliRunner().invoke(
        app, ["compare", str(DAY), "--controllers", "none,none", "--out", str(tmp_path / "c")]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--controllers" in result.output


INIT_SLEEP_S, FIRST_STEP_SLEEP_S = 0.5, 3.0


def test_setup_and_step_time_land_where_they_are_spent(tmp_path, monkeypatch):
    """A controller that sleeps once in its construction and once on its first step."""
    import time

    from twin import registry
    from twin.control.rule import RuleController

    class Sleepy(RuleController):
        def __init__(self, *args, **kwargs):
            time.sleep(INIT_SLEEP_S)
            super().__init__(*args, **kwargs)
            self.slept = False

        def step(self, now, dt_s, inputs):
            if not self.slept:
                time.sleep(FIRST_STEP_SLEEP_S)
                self.slept = True
            return super().step(now, dt_s, inputs)

    monkeypatch.setitem(registry._registered, "rule", Sleepy)
    table = compare_controllers(day_scenario(), ["rule"], tmp_path).set_index("controller")
    setup_s, steps_s = table.loc["rule", "setup_s"], table.loc["rule", "ms_per_step"] * N_STEPS
    assert setup_s >= INIT_SLEEP_S and steps_s / 1000 >= FIRST_STEP_SLEEP_S
    assert setup_s < FIRST_STEP_SLEEP_S  # the step's sleep is not in the set-up
