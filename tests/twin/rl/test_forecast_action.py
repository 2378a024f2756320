"""The forecast bases: the action corrects MPC's PV and load forecasts, MPC dispatches.

``forecast`` corrects persistence, ``day_ahead`` the modelled day-ahead forecast.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import SAC

from tests.conftest import ROOT
from twin.results import load_results, wide
from twin.rl.domain import Domain, DomainConfig
from twin.rl.env import MicrogridEnv
from twin.rl.evaluate import evaluate_day
from twin.rl.forecast_action import FACTOR_RANGE, CorrectedPersistence, factors_of
from twin.rl.train import train_policy
from twin.run import run_scenario
from twin.scenario import validate_scenario

SMALL = DomainConfig(grids=("1-LV-rural1--0-sw",))
ZERO = np.zeros(2, dtype=np.float32)


@pytest.fixture(scope="module")
def domain():
    return Domain.training(SMALL, year_days=12)


def day_scenario():
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    return raw, validate_scenario(raw)


def run_day(env, actions, **options):
    """Battery powers and the day's J for one action per step."""
    env.reset(options=options)
    powers, cost = [], 0.0
    for a in actions:
        _, _, _, done, info = env.step(a)
        powers.append(env.last.p_battery_kw.copy())
        cost += info["cost_eur"]
    assert done
    return np.array(powers), cost


def test_zero_action_is_persistence_mpc_bit_for_bit(domain):
    site = domain.sample(np.random.default_rng(5))
    env = MicrogridEnv(domain, base="forecast")
    assert env.action_space.shape == (2,)
    powers, cost = run_day(env, [ZERO] * env.steps_per_day, site=site, day=6)
    setpoint_base = MicrogridEnv(domain, base="mpc")
    powers_mpc, cost_mpc = run_day(
        setpoint_base, [np.zeros(1)] * env.steps_per_day, site=site, day=6
    )
    np.testing.assert_array_equal(powers, powers_mpc)
    assert cost == cost_mpc
    mpc = evaluate_day(
        MicrogridEnv(domain),
        6,
        "mpc",
        control={"resolve_every": "15min", "defer_grid": True},
        site=site,
    )
    assert cost == pytest.approx(mpc.cost_eur, abs=1e-9)
    assert np.abs(powers).max() > 0.0


@pytest.mark.parametrize("trust", [0.5, 1.0])
def test_zero_action_on_the_day_ahead_base_is_mpc_on_the_day_ahead_forecast(domain, trust):
    site = domain.sample(np.random.default_rng(5))
    seed = domain.bases[site.base].context["seed"]  # what the run's controllers draw with
    env = MicrogridEnv(domain, base="day_ahead", forecast_trust=trust)
    powers, cost = run_day(env, [ZERO] * env.steps_per_day, site=site, day=6, forecast_seed=seed)
    assert np.all(np.abs(env.forecaster.prior) > 1e-3)  # a day unlike yesterday, with errors
    np.testing.assert_allclose(env.forecaster.prior, trust * env.day_ahead, rtol=1e-12)
    control = {"resolve_every": "15min", "defer_grid": True, "day_ahead_trust": trust}
    scores = {
        name: evaluate_day(MicrogridEnv(domain), 6, "mpc", control=options, site=site)
        for name, options in (
            ("day_ahead", {**control, "forecaster": "day_ahead"}),
            ("persistence", control),
        )
    }
    assert cost == pytest.approx(scores["day_ahead"].cost_eur, abs=1e-9)
    assert abs(cost - scores["persistence"].cost_eur) > 1e-3  # the prior does act
    other, _ = run_day(env, [ZERO] * env.steps_per_day, site=site, day=6, forecast_seed=seed + 1)
    assert not np.allclose(powers, other)  # another forecast seed, other errors


def test_the_action_moves_the_dispatch_through_the_forecast(domain):
    site = domain.sample(np.random.default_rng(5))
    env = MicrogridEnv(domain, base="forecast")
    n = env.steps_per_day
    zero, _ = run_day(env, [ZERO] * n, site=site, day=6)
    sunny = np.array([1.0, 0.0], dtype=np.float32)  # four times yesterday's PV
    more_pv, _ = run_day(env, [sunny] * n, site=site, day=6)
    assert not np.allclose(zero, more_pv)
    assert env.forecaster.factors == pytest.approx([FACTOR_RANGE[0], 1.0])


@settings(max_examples=60, deadline=None)
@given(
    action=st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=2),
    k=st.integers(0, 95),
    horizon=st.integers(1, 96),
)
def test_corrected_forecast_is_each_part_a_day_earlier_times_its_factor(action, k, horizon):
    spd = 96
    rng = np.random.default_rng(0)
    pv, load = rng.uniform(0, 50, spd), -rng.uniform(5, 30, spd)
    times = pd.date_range("2016-03-01", periods=2 * spd, freq="15min", tz="UTC")
    forecaster = CorrectedPersistence(pv, load, times, spd)
    for j in range(k):  # today's measurements so far
        forecaster.observe(j, 0.0)
        forecaster.observe_parts(j, 2 * pv[j], 3 * load[j])
    forecaster.correct(np.array(action))
    factors = factors_of(np.array(action))
    assert np.all(factors >= 1 / FACTOR_RANGE - 1e-12)
    assert np.all(factors <= FACTOR_RANGE + 1e-12)
    horizon = min(horizon, spd - k)
    idx = np.arange(k, k + horizon)
    expected = factors[0] * pv[idx] + factors[1] * load[idx]
    np.testing.assert_allclose(forecaster.predict(k, horizon), expected, rtol=1e-12)


def test_no_future_pv_or_load_reaches_the_forecast_base(domain):
    site = domain.sample(np.random.default_rng(9))
    env = MicrogridEnv(domain, base="forecast")
    base = domain.bases[site.base]
    day, t = 6, 48
    k = base.day_start(day) + t
    actions = np.random.default_rng(0).uniform(-1, 1, (env.steps_per_day, 2)).astype(np.float32)
    powers, _ = run_day(env, actions, site=site, day=day)
    saved = base.pv_kw.copy(), base.load_kw.copy()
    try:
        base.pv_kw[k:] *= 0.2
        base.load_kw[k:] *= 1.7
        powers2, _ = run_day(env, actions, site=site, day=day)
    finally:
        base.pv_kw[:], base.load_kw[:] = saved
    np.testing.assert_array_equal(powers[:t], powers2[:t])
    assert not np.array_equal(powers[t:], powers2[t:])


def test_forecast_base_env_passes_gymnasiums_checker(domain):
    check_env(MicrogridEnv(domain, base="forecast"), skip_render_check=True)


def constant_policy(tmp_path, scenario, action, base="forecast"):
    """A forecast-base policy whose action is ``action`` whatever it observes."""
    trained = train_policy(
        scenario, tmp_path / "p.zip", timesteps=200, days=5, base=base, progress=False
    )
    model = SAC.load(trained.policy, device="cpu")
    with torch.no_grad():  # the deterministic action is tanh of the output bias
        model.actor.mu.weight.zero_()
        model.actor.mu.bias.copy_(torch.atanh(torch.tensor(action)))
    model.save(trained.policy)
    return str(trained.policy)


def env_throughput(env, action, **options):
    """Cell-side throughput (kWh) of day 0 with a constant action."""
    env.reset(options={"day": 0, **options})
    total, done = 0.0, False
    while not done:
        _, _, _, done, _ = env.step(action)
        total += env.last.throughput_kwh.sum()
    return total


ACTION = np.array([0.5, -0.3], dtype=np.float32)
#: MPC's control options each forecast base equals at a zero action.
MPC_OF_BASE = {
    "forecast": {"defer_grid": True},
    "day_ahead": {"defer_grid": True, "forecaster": "day_ahead"},
}


@pytest.mark.parametrize("base", MPC_OF_BASE)
def test_the_controller_acts_as_the_environment(tmp_path, base):
    raw, scenario = day_scenario()
    policy = constant_policy(tmp_path, scenario, ACTION, base)
    env = MicrogridEnv(scenario, year_days=1, base=base)
    seed = {"forecast_seed": scenario.seed}  # the run's controller draws with its seed
    powers, cost = run_day(env, [ACTION] * env.steps_per_day, day=0, **seed)
    zero, _ = run_day(env, [ZERO] * env.steps_per_day, day=0, **seed)
    assert not np.allclose(powers, zero)  # the constant action does change the dispatch
    controller = evaluate_day(MicrogridEnv(scenario, year_days=1), 0, "rl", policy=policy)
    assert controller.cost_eur == pytest.approx(cost, abs=1e-9)
    assert controller.throughput_kwh == pytest.approx(env_throughput(env, ACTION, **seed), abs=1e-9)


@pytest.mark.parametrize("base", MPC_OF_BASE)
def test_the_mosaik_run_plans_on_the_forecast_the_policy_corrects(tmp_path, base):
    raw, scenario = day_scenario()
    setpoints = {}
    for name, action in (("policy", ACTION), ("zero", ZERO)):
        policy = constant_policy(tmp_path / name, scenario, action, base)
        control = {"policy": policy}
        run = run_scenario(
            validate_scenario({**raw, "controller": "rl", "control": control}), tmp_path / name
        )
        setpoints[name] = wide(load_results(run.out_dir), "controller", "p_set_kw")["bess"]
    mpc = run_scenario(
        validate_scenario({**raw, "controller": "mpc", "control": MPC_OF_BASE[base]}),
        tmp_path / "mpc",
    )
    setpoints["mpc"] = wide(load_results(mpc.out_dir), "controller", "p_set_kw")["bess"]
    np.testing.assert_allclose(setpoints["zero"], setpoints["mpc"], atol=1e-6)
    assert (setpoints["policy"] - setpoints["zero"]).abs().max() > 1.0


def test_mpc_on_the_day_ahead_forecast_refuses_a_net_history_it_would_not_read(domain):
    from twin.control.optimal import MPCController
    from twin.rl.evaluate import controller_for

    env = MicrogridEnv(domain)
    env.reset(options={"site": domain.sample(np.random.default_rng(5)), "day": 6})
    mpc = controller_for(env, "mpc", None, {"forecaster": "day_ahead"})
    history = np.zeros(14 * env.steps_per_day)
    with pytest.raises(ValueError, match="history: the day_ahead forecaster"):
        MPCController(mpc.units, mpc.clock, mpc.context, history=history)


def test_the_environment_refuses_a_trust_or_error_out_of_range(domain):
    with pytest.raises(ValueError, match="forecast_trust: expected a weight in 0..1"):
        MicrogridEnv(domain, base="day_ahead", forecast_trust=1.5)
    with pytest.raises(ValueError, match="forecast_error: expected two log errors"):
        MicrogridEnv(domain, base="day_ahead", forecast_error=(-0.1, 0.1))


def test_the_controller_reads_the_scenarios_trust_as_the_environment_does(tmp_path):
    raw, scenario = day_scenario()
    # a zero action plans on the forecast at the trust: 0 is persistence, 1 the forecast
    policy = constant_policy(tmp_path, scenario, ZERO, "day_ahead")
    seed = {"forecast_seed": scenario.seed}
    costs = {}
    for trust in (0.0, 1.0):
        env = MicrogridEnv(scenario, year_days=1, base="day_ahead", forecast_trust=trust)
        _, costs[trust] = run_day(env, [ZERO] * env.steps_per_day, day=0, **seed)
        controller = evaluate_day(
            MicrogridEnv(scenario, year_days=1),
            0,
            "rl",
            policy=policy,
            control={"day_ahead_trust": trust},
        )
        assert controller.cost_eur == pytest.approx(costs[trust], abs=1e-9)
    assert abs(costs[0.0] - costs[1.0]) > 1e-3  # the trust does act
