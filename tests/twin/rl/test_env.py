"""The RL environment: Gymnasium contract, equality with the mosaik run, reward = J."""

import numpy as np
import pandas as pd
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from tests.conftest import ROOT
from twin.objective import scored_cost
from twin.results import load_results, wide
from twin.rl.domain import Domain, DomainConfig
from twin.rl.env import MicrogridEnv, split_days
from twin.rl.evaluate import evaluate_day
from twin.run import run_scenario
from twin.scenario import validate_scenario

SMALL = DomainConfig(grids=("1-LV-rural1--0-sw",))


def day_scenario(**changes):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(changes)
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def env():
    return MicrogridEnv(day_scenario(), year_days=3)


@pytest.fixture(scope="module")
def domain():
    return Domain.training(SMALL, year_days=12)


def test_environment_passes_gymnasiums_checker(env, domain):
    check_env(env, skip_render_check=True)
    check_env(MicrogridEnv(domain, base="plan"), skip_render_check=True)


def test_zero_action_follows_the_base_setpoint(env, domain):
    obs, _ = env.reset(options={"day": 2})
    base = env.rule_kw.copy()
    assert obs[3] == pytest.approx(base[0] / env.p_max[0])
    env.step(np.zeros(1, dtype=np.float32))
    assert env.last.p_battery_kw[0] == pytest.approx(base[0])
    planned = MicrogridEnv(domain, base="plan")
    obs, _ = planned.reset(seed=3)
    track = planned.track_kw.copy()
    assert obs[4] == pytest.approx(track[0] / planned.p_max[0], abs=1e-6)
    planned.step(np.zeros(1, dtype=np.float32))
    assert planned.last.p_battery_kw[0] == pytest.approx(track[0])


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
    assert total < 0.1  # emptying the battery is not a saving once its energy is valued


def test_episode_cost_is_the_scored_cost(domain):
    """Summed per-step J increments equal twin.objective.scored_cost, and the evaluation's J."""
    env = MicrogridEnv(domain)
    env.reset(seed=11)
    site, day = env.site, env.day
    site.tariff = {**site.tariff, "demand_charge_eur_kw": 0.3}  # every part of J counts
    env.reset(options={"site": site, "day": day})
    actions = np.random.default_rng(2).uniform(-1, 1, (96, 1)).astype(np.float32)
    imports, costs, throughput = [], [], 0.0
    for action in actions:
        _, _, _, truncated, info = env.step(action)
        imports.append(info["p_import_kw"])
        costs.append(info["cost_eur"])
        throughput = throughput + env.last.throughput_kwh
    imports = np.array(imports)
    expected = scored_cost(
        np.clip(imports, 0, None),
        np.clip(-imports, 0, None),
        env.price_import[:96],
        env.price_export[:96],
        0.25,
        0.3,
        throughput,
        env.last.e_kwh - env.e_start,
        env.objective,
    )
    assert truncated
    assert sum(costs) == pytest.approx(expected.total, abs=1e-9)
    assert expected.wear > 0 and expected.demand > 0

    # the evaluation scores a controller's day by the same J
    score = evaluate_day(env, day, "rule", site=site)
    env.reset(options={"site": site, "day": day})
    rule_cost, truncated = 0.0, False
    while not truncated:
        _, _, _, truncated, info = env.step(np.zeros(1, dtype=np.float32))
        rule_cost += info["cost_eur"]
    assert score.cost_eur == pytest.approx(rule_cost, abs=1e-9)


def test_oracle_is_a_lower_bound_up_to_grid_losses(domain):
    env = MicrogridEnv(domain)
    rng = np.random.default_rng(5)
    for _ in range(3):
        site = domain.sample(rng)
        day = int(rng.integers(0, 10))
        oracle = evaluate_day(env, day, "oracle", site=site)
        for name in ("none", "rule"):
            other = evaluate_day(env, day, name, site=site)
            assert other.cost_eur >= oracle.planned_eur - 1e-6
        rule = evaluate_day(env, day, "rule", site=site)
        none = evaluate_day(env, day, "none", site=site)
        assert rule.cost_eur <= none.cost_eur + 1e-6


def _episode_rewards(env, actions, **options):
    env.reset(options=options)
    rewards = []
    for action in actions:
        _, reward, _, truncated, _ = env.step(action)
        rewards.append(reward)
        if truncated:
            break
    return rewards


def test_an_episode_does_not_depend_on_the_one_before(domain):
    env = MicrogridEnv(day_scenario(), year_days=3)
    actions = np.random.default_rng(7).uniform(-1, 1, (96, 1)).astype(np.float32)
    first = _episode_rewards(env, actions, day=1)
    _episode_rewards(env, actions[::-1], day=2)  # another day leaves other voltages behind
    again = _episode_rewards(env, actions, day=1)
    fresh = _episode_rewards(MicrogridEnv(day_scenario(), year_days=3), actions, day=1)
    assert again == first  # bit for bit, as Gymnasium's checker compares
    assert fresh == first

    # randomised sites: another site in between leaves nothing behind either
    rng = np.random.default_rng(8)
    site, other = domain.sample(rng), domain.sample(rng)
    env = MicrogridEnv(domain)
    first = _episode_rewards(env, actions, site=site, day=4)
    _episode_rewards(env, actions[::-1], site=other, day=5)
    assert _episode_rewards(env, actions, site=site, day=4) == first
