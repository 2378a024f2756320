"""The forecast base's head start: hindsight forecast factors, and the actor fitted to them."""

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import SAC

from tests.conftest import ROOT
from twin.forecast import RATIO_FLOOR
from twin.rl.domain import Domain, DomainConfig
from twin.rl.env import MicrogridEnv
from twin.rl.imitation import collect, fit_actor, hindsight_action
from twin.scenario import validate_scenario

SMALL = DomainConfig(grids=("1-LV-rural1--0-sw",))


@pytest.fixture(scope="module")
def domain():
    return Domain.training(SMALL, year_days=12)


@pytest.fixture(scope="module")
def env(domain):
    return MicrogridEnv(domain, base="forecast")


@pytest.fixture(scope="module")
def envs(domain):
    return {base: MicrogridEnv(domain, base=base) for base in ("forecast", "day_ahead")}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    step=st.integers(0, 94),
    base=st.sampled_from(["forecast", "day_ahead"]),
)
def test_hindsight_factors_make_the_rest_of_the_day_right(envs, seed, step, base):
    env = envs[base]
    env.reset(seed=seed)
    for _ in range(step):
        env.step(np.zeros(2, dtype=np.float32))
    action = hindsight_action(env)
    env.forecaster.correct(action)  # the factors the action gives, day-ahead prior included
    factors = env.forecaster.factors
    spd, i = env.steps_per_day, step
    for part, series in enumerate((env.site_pv_kw, env.site_load_kw)):
        today = abs(series[spd + i + 1 :].sum())
        yesterday = abs(series[i + 1 : spd].sum())
        floor = RATIO_FLOOR * abs(series[:spd].sum()) + 1e-9
        truth = np.log((today + floor) / (yesterday + floor))
        if abs(action[part]) < 1.0:  # the range does not bind: the forecast is right
            assert factors[part] * (yesterday + floor) == pytest.approx(today + floor, rel=1e-9)
        else:  # clipped towards the truth
            assert np.sign(action[part]) == np.sign(truth - env.forecaster.prior[part])


def test_collect_samples_whole_days_of_the_base_by_seed(env):
    first = collect(env, 3, seed=4)
    again = collect(env, 3, seed=4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    observations, targets, day_of = first
    assert observations.shape == (3 * env.steps_per_day, env.observation_space.shape[0])
    assert targets.shape == (3 * env.steps_per_day, 2)
    assert np.all(np.abs(targets) <= 1.0)
    np.testing.assert_array_equal(np.bincount(day_of), [env.steps_per_day] * 3)


def test_the_fitted_actor_predicts_unseen_days_better_than_zero():
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    env = MicrogridEnv(validate_scenario(raw), year_days=2, base="forecast")
    model = SAC("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": [64, 64]})
    rng = np.random.default_rng(0)
    n, size = 4000, env.observation_space.shape[0]
    observations = rng.normal(size=(n, size)).astype(np.float32)
    weights = rng.normal(size=(size, 2)) / np.sqrt(size)
    targets = np.tanh(observations @ weights).astype(np.float32)  # learnable from the features
    day_of = np.arange(n) // 100
    torch.manual_seed(0)
    report = fit_actor(model.actor, observations, targets, day_of, seed=0)
    assert report.epochs > 0
    assert report.validation_mse < 0.2 * report.zero_mse
    predicted = model.predict(observations[day_of == day_of[-1]], deterministic=True)[0]
    assert np.mean((predicted - targets[day_of == day_of[-1]]) ** 2) < 0.2 * np.mean(
        targets[day_of == day_of[-1]] ** 2
    )
