"""Training keeps the policy that scored best on its selection days."""

import json

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import ROOT
from twin.rl.controller import load_policy
from twin.rl.domain import split_days
from twin.rl.env import MicrogridEnv
from twin.rl.selection import SELECTION_SEED, SHRINKS, scale_correction, selection_days
from twin.rl.train import train_policy
from twin.scenario import validate_scenario


@pytest.fixture(scope="module")
def scenario():
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    return validate_scenario(raw)


def train_selecting(scenario, out, *, timesteps, days, seed, every, imitation_days):
    """A short training scored on 2 selection days; its result and training record."""
    result = train_policy(
        scenario,
        out,
        timesteps=timesteps,
        days=days,
        seed=seed,
        progress=False,
        select_days=2,
        select_every=every,
        imitation_days=imitation_days,
    )
    return result, json.loads(out.with_name("p_train.json").read_text())


@pytest.fixture(scope="module")
def trained(scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("selection") / "p.zip"
    return train_selecting(
        scenario, out, timesteps=2400, days=6, seed=3, every=800, imitation_days=3
    )


def test_every_score_is_recorded_and_the_best_is_chosen(trained):
    _, meta = trained
    selection = meta["selection"]
    checks = selection["checks"]
    assert selection["days"] == 2 and selection["seed"] == SELECTION_SEED
    # the fitted start, then every 800 steps at a day's end, and the last step
    assert [c["timesteps"] for c in checks] == [0, 864, 1728, 2400]
    best = min(checks, key=lambda c: c["cost_eur"])
    assert selection["chosen_timesteps"] == best["timesteps"]
    assert np.isfinite(selection["base_eur"])
    assert meta["imitation"]["days"] == 3


def test_every_shrink_is_scored_and_the_best_is_kept(trained):
    _, meta = trained
    selection = meta["selection"]
    shrinks = {tuple(s["factors"]): s["cost_eur"] for s in selection["shrinks"]}
    # factors 1 are the kept policy as trained, factors 0 its base (zero action)
    assert shrinks[(1.0, 1.0)] == min(c["cost_eur"] for c in selection["checks"])
    # the PV output's factors first (the load's at 1), then the load's at the PV's choice
    pv = {f: shrinks[(f, 1.0)] for f in SHRINKS}
    chosen_pv = min(pv, key=pv.get)
    load = {f: shrinks[(chosen_pv, f)] for f in SHRINKS}
    assert selection["chosen_shrink"] == [chosen_pv, min(load, key=load.get)]
    # every factor of both outputs scored once; (0, 0) is the base, scored at the start
    assert len(shrinks) == 2 * len(SHRINKS) - (chosen_pv == 0.0)
    assert shrinks[(0.0, 0.0)] == selection["base_eur"]


def test_the_saved_policy_is_the_chosen_one(trained, scenario):
    result, meta = trained
    train_days, validation_days = split_days(365)
    env = MicrogridEnv(scenario, days=result.train_days, base=meta["base"])
    days = selection_days(env, result.train_days, 2)
    assert all(day in result.train_days for _, day, _ in days.cases)
    assert not {day for _, day, _ in days.cases} & set(validation_days)
    policy = load_policy(str(result.policy))
    cost = days.cost(lambda obs: policy.predict(obs, deterministic=True)[0])
    shrinks = {tuple(s["factors"]): s["cost_eur"] for s in meta["selection"]["shrinks"]}
    assert cost == pytest.approx(shrinks[tuple(meta["selection"]["chosen_shrink"])], abs=1e-9)


@pytest.mark.parametrize("factors", [(0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (1.0, 1.0)])
def test_a_scaled_correction_keeps_its_sign_and_zero_is_the_base(trained, factors):
    result, _ = trained
    policy = load_policy(str(result.policy))
    actor = policy.actor
    torch.manual_seed(0)  # a correction on both outputs (the saved one may be shrunk to 0)
    for value in actor.mu.parameters():
        torch.nn.init.normal_(value, std=0.3)
    trained_layer = {name: value.clone() for name, value in actor.mu.state_dict().items()}
    obs = np.random.default_rng(0).normal(size=(64, *policy.observation_space.shape))
    as_trained = policy.predict(obs.astype(np.float32), deterministic=True)[0]
    scale_correction(actor, trained_layer, np.array(factors))
    scaled = policy.predict(obs.astype(np.float32), deterministic=True)[0]
    for j, factor in enumerate(factors):
        if factor == 0.0:
            assert np.all(scaled[:, j] == 0.0)
        elif factor == 1.0:
            np.testing.assert_allclose(scaled[:, j], as_trained[:, j], atol=1e-6)
        else:
            assert np.all(as_trained[:, j] != 0.0)
            assert np.all(np.abs(scaled[:, j]) < np.abs(as_trained[:, j]))
            assert np.all(scaled[:, j] * as_trained[:, j] > 0.0)


def test_a_short_run_keeps_its_last_policy(scenario, tmp_path):
    train_policy(scenario, tmp_path / "p.zip", timesteps=300, days=2, progress=False)
    meta = json.loads((tmp_path / "p_train.json").read_text())
    assert meta["selection"] is None


def test_selection_is_reproducible_by_seed(scenario, tmp_path):
    def run(name):
        out = tmp_path / name / "p.zip"
        _, meta = train_selecting(
            scenario, out, timesteps=1400, days=4, seed=9, every=600, imitation_days=2
        )
        weights = load_policy(str(out)).policy.state_dict()
        return meta["selection"], meta["imitation"], weights

    first, again = run("a"), run("b")
    assert first[0] == again[0] and first[1] == again[1]
    assert len(first[0]["checks"]) >= 3
    for name, tensor in first[2].items():
        assert tensor.equal(again[2][name]), name
