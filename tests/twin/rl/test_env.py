"""The RL environment: Gymnasium contract and equality with the mosaik run's physics."""

import numpy as np
import pandas as pd
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from tests.conftest import ROOT
from twin.results import load_results, wide
from twin.rl.env import MicrogridEnv, split_days
from twin.run import run_scenario
from twin.scenario import validate_scenario


def day_scenario(**changes):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(changes)
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def env():
    return MicrogridEnv(day_scenario(), year_days=3)


def test_environment_passes_gymnasiums_checker(env):
    check_env(env, skip_render_check=True)


def test_zero_action_follows_the_rule_controller(env):
    obs, _ = env.reset(options={"day": 2})
    base = env.rule_kw.copy()
    assert obs[1] == pytest.approx(base[0] / env.p_max[0])
    env.step(np.zeros(1, dtype=np.float32))
    assert env.last.p_battery_kw[0] == pytest.approx(base[0])


def test_episode_is_one_day_and_truncated(env):
    env.reset(seed=1, options={"day": 1})
    steps, truncated, terminated = 0, False, False
    while not truncated:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        assert np.isfinite(reward) and not terminated
    assert steps == 96


def test_training_and_validation_days_are_apart():
    train, val = split_days(365)
    assert not set(train) & set(val)
    assert len(val) == 73 and len(train) + len(val) == 365


def test_env_step_equals_the_mosaik_run_for_the_same_actions(tmp_path):
    rng = np.random.default_rng(4)
    p_set = rng.uniform(-20, 20, 96)
    times = pd.date_range("2016-06-21T04:00:00Z", periods=96, freq="15min")
    schedule = tmp_path / "schedule.csv"
    pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "bess": p_set}).to_csv(
        schedule, index=False
    )
    scenario = day_scenario(controller="schedule", control={"schedule_csv": str(schedule)})
    run = run_scenario(scenario, tmp_path / "run")
    results = load_results(run.out_dir)
    soc_mosaik = wide(results, "battery", "soc")["bess"].to_numpy()
    assert soc_mosaik[0] == scenario.units("battery")[0]["soc_init"]  # states at instants
    soc_mosaik = soc_mosaik[1:]  # a physics step returns the state at the step's end
    poc = wide(results, "grid", "p_kw")["poc"].to_numpy()
    price = wide(results, "tariff", "price_import_eur_kwh").iloc[:, 0].to_numpy()
    export = wide(results, "tariff", "price_export_eur_kwh").iloc[:, 0].to_numpy()
    cost_mosaik = (np.clip(poc, 0, None) * price - np.clip(-poc, 0, None) * export) * 0.25

    env = MicrogridEnv(scenario, year_days=1)
    env.reset(options={"day": 0})
    records = [env.physics_step(np.array([p])) for p in p_set]
    np.testing.assert_allclose([r.soc[0] for r in records], soc_mosaik, rtol=0, atol=1e-9)
    np.testing.assert_allclose([r.cost_eur for r in records], cost_mosaik, rtol=0, atol=1e-9)
    assert sum(r.cost_eur for r in records) == pytest.approx(run.kpis["cost_eur"], abs=1e-9)


def test_reward_values_the_terminal_energy(env):
    """Discharging all day to empty the battery earns no more than its energy is worth."""
    env.reset(options={"day": 0})
    total = 0.0
    truncated = False
    while not truncated:
        _, reward, _, truncated, _ = env.step(np.array([1.0], dtype=np.float32))
        total += reward
    env.reset(options={"day": 0})
    idle = 0.0
    truncated = False
    while not truncated:
        # The action corrects the rule's setpoint: cancel it to leave the battery idle.
        cancel = (-env.rule_kw / env.p_max).astype(np.float32)
        _, reward, _, truncated, _ = env.step(cancel)
        idle += reward
    assert idle == pytest.approx(0.0, abs=1e-3)  # nothing saved (calendar ageing: ~2e-4)
    assert total < 1.0  # emptying the battery is not a saving once its energy is valued


def test_observation_carries_yesterdays_rest_of_day(env):
    obs, _ = env.reset(options={"day": 2})
    spd = env.steps_per_day
    k = env.k
    # Yesterday's PV energy from midnight to midnight, scaled by a full day at p_scale.
    pv = env.pv.exogenous()["p_kw"].sum(axis=1)
    expected = pv[k - spd : k].sum() / (env.observer.p_scale * spd)
    assert obs[4] == pytest.approx(expected, rel=1e-5)
    assert expected > 0.05  # a June day has sun


def _episode_rewards(env, day, actions):
    env.reset(options={"day": day})
    rewards = []
    for action in actions:
        _, reward, _, truncated, _ = env.step(action)
        rewards.append(reward)
        if truncated:
            break
    return rewards


def test_an_episode_does_not_depend_on_the_one_before():
    env = MicrogridEnv(day_scenario(), year_days=3)
    actions = np.random.default_rng(7).uniform(-1, 1, (96, 1)).astype(np.float32)
    first = _episode_rewards(env, 1, actions)
    _episode_rewards(env, 2, actions[::-1])  # another day leaves other voltages behind
    again = _episode_rewards(env, 1, actions)
    fresh = _episode_rewards(MicrogridEnv(day_scenario(), year_days=3), 1, actions)
    assert again == first  # bit for bit, as Gymnasium's checker compares
    assert fresh == first
