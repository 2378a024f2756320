"""Training is reproducible, and the trained policy acts inside the mosaik run."""

import json
import subprocess

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT
from twin.cli import app
from twin.control.component import BUILTIN_POLICY_FILE
from twin.results import load_results, wide
from twin.rl.controller import BUILTIN_POLICY, load_policy, policy_metadata
from twin.rl.train import DEFAULT_TIMESTEPS, git_state, train_policy
from twin.run import run_scenario
from twin.scenario import validate_scenario

STEPS = 1300  # past SAC's 1000 warm-up steps, so gradient updates happen


def day_scenario(**changes):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(changes)
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy") / "policy.zip"
    return train_policy(
        day_scenario(), out, timesteps=STEPS, days=20, seed=3, progress=False, base="plan"
    )


def test_training_is_reproducible_with_a_seed(policy, tmp_path):
    again = train_policy(
        day_scenario(),
        tmp_path / "again.zip",
        timesteps=STEPS,
        days=20,
        seed=3,
        progress=False,
        base="plan",
    )
    first = load_policy(str(policy.policy)).policy.state_dict()
    second = load_policy(str(again.policy)).policy.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert policy.curve_png.stat().st_size > 5_000
    assert not set(policy.train_days) & set(policy.validation_days)
    meta = json.loads(policy.policy.with_name("policy_train.json").read_text())
    assert meta["seed"] == 3 and meta["timesteps"] == STEPS and meta["threads"] == 1
    assert meta["base"] == "plan" and meta["wall_time_s"] > 0
    assert meta["git_dirty"] in (True, False)  # this checkout is a git repository


def test_builtin_policy_is_package_data_and_acts_in_the_mosaik_run(tmp_path):
    assert BUILTIN_POLICY.exists() and BUILTIN_POLICY == BUILTIN_POLICY_FILE
    meta = policy_metadata("builtin")
    assert meta["source"] == "domain" and meta["timesteps"] == DEFAULT_TIMESTEPS
    scenario = day_scenario(controller="rl", control={"policy": "builtin"})
    run = run_scenario(scenario, tmp_path)
    setpoints = wide(load_results(run.out_dir), "controller", "p_set_kw")["bess"]
    assert setpoints.abs().max() <= 20.0 + 1e-9
    assert setpoints.abs().sum() > 0
    assert np.isfinite(run.kpis["cost_scored_eur"])


def test_rl_controller_acts_in_the_mosaik_run(policy, tmp_path):
    scenario = day_scenario(controller="rl", control={"policy": str(policy.policy)})
    run = run_scenario(scenario, tmp_path)
    results = load_results(run.out_dir)
    setpoints = wide(results, "controller", "p_set_kw")["bess"]
    assert setpoints.abs().max() <= 20.0 + 1e-9
    assert setpoints.abs().sum() > 0  # the policy does act
    soc = wide(results, "battery", "soc")["bess"]
    assert soc.min() >= 0.1 - 1e-9 and soc.max() <= 0.9 + 1e-9
    per_step_ms = 1000 * run.metadata["component_s"]["rl"] / 96
    assert np.isfinite(per_step_ms)


def test_rl_needs_a_policy_file():
    with pytest.raises(Exception, match="control.policy"):
        day_scenario(controller="rl")


def test_compare_prints_every_controller(policy, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "scenarios/microgrid_day.yaml",
            "--controllers",
            "none,rule,oracle,rl",
            "--policy",
            str(policy.policy),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("none", "rule", "oracle", "rl", "of oracle", "ms/step"):
        assert name in result.output


def test_a_policy_for_another_number_of_batteries_is_refused(policy, tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    second = {**raw["assets"]["battery"][0], "name": "bess2"}
    raw["assets"]["battery"].append(second)
    raw.update(controller="rl", control={"policy": str(policy.policy)})
    with pytest.raises(Exception, match="control.policy"):
        run_scenario(validate_scenario(raw), tmp_path)


def test_the_training_record_says_whether_the_code_had_uncommitted_changes(
    tmp_path, tmp_path_factory
):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-q", "-m", "first")
    commit, dirty = git_state(tmp_path)
    assert len(commit) == 40 and dirty is False
    (tmp_path / "notes.txt").write_text("untracked files do not train\n")
    assert git_state(tmp_path) == (commit, False)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (commit, True)
    assert git_state(tmp_path_factory.mktemp("not_a_checkout")) == (None, None)
