"""The ``mpc`` base: MPC's own dispatch at zero correction, seeded, blind to the future."""

import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from tests.conftest import ROOT
from twin.control.lp import DispatchProblem, solve_dispatch
from twin.results import load_results, wide
from twin.rl.domain import Domain, DomainConfig
from twin.rl.env import MicrogridEnv
from twin.rl.evaluate import evaluate_day
from twin.rl.train import train_policy
from twin.run import run_scenario
from twin.scenario import validate_scenario

SMALL = DomainConfig(grids=("1-LV-rural1--0-sw",))
ZERO = np.zeros(1, dtype=np.float32)


@pytest.fixture(scope="module")
def domain():
    return Domain.training(SMALL, year_days=12)


def zero_day(env, **options):
    """Battery powers, the day's J and cell-side throughput with zero corrections."""
    env.reset(options=options)
    powers, cost, throughput, done = [], 0.0, 0.0, False
    while not done:
        _, _, _, done, info = env.step(ZERO)
        powers.append(env.last.p_battery_kw[0])
        cost += info["cost_eur"]
        throughput += env.last.throughput_kwh.sum()
    return np.array(powers), cost, throughput


@pytest.mark.parametrize("replan", ["15min", "1h"])
def test_zero_correction_is_mpcs_own_dispatch(domain, replan):
    site = domain.sample(np.random.default_rng(5))
    env = MicrogridEnv(domain, base="mpc", replan=replan)
    powers, cost, throughput = zero_day(env, site=site, day=6)
    mpc = evaluate_day(
        MicrogridEnv(domain),
        6,
        "mpc",
        control={"resolve_every": replan, "defer_grid": True},
        site=site,
    )
    assert cost == pytest.approx(mpc.cost_eur, abs=1e-9)
    assert throughput == pytest.approx(mpc.throughput_kwh, abs=1e-9)
    assert np.abs(powers).max() > 0.0  # it does dispatch


def test_mpc_base_is_deterministic_by_seed(domain):
    runs = []
    for seed in (11, 11, 12):
        env = MicrogridEnv(domain, days=[3, 4, 5], base="mpc")
        env.reset(seed=seed)
        env.action_space.seed(seed)
        rewards, done = [], False
        while not done:
            _, reward, _, done, _ = env.step(env.action_space.sample())
            rewards.append(reward)
        runs.append(np.array(rewards))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_no_future_pv_or_load_reaches_the_mpc_base(domain):
    site = domain.sample(np.random.default_rng(9))
    env = MicrogridEnv(domain, base="mpc")
    base = domain.bases[site.base]
    day, t = 6, 48  # change the day's PV and load from noon on
    k = base.day_start(day) + t
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, (env.steps_per_day, 1)).astype(np.float32)

    def run():
        env.reset(options={"site": site, "day": day})
        bases, powers = [], []
        for a in actions:
            bases.append(env.base_kw.copy())
            env.step(a)
            powers.append(env.last.p_battery_kw.copy())
        return np.array(bases), np.array(powers)

    bases, powers = run()
    saved = base.pv_kw.copy(), base.load_kw.copy()
    try:
        base.pv_kw[k:] *= 0.2
        base.load_kw[k:] *= 1.7
        bases2, powers2 = run()
    finally:
        base.pv_kw[:], base.load_kw[:] = saved
    np.testing.assert_array_equal(bases[:t], bases2[:t])
    np.testing.assert_array_equal(powers[:t], powers2[:t])
    assert not np.array_equal(bases[t:], bases2[t:])  # the change is seen once measured


def test_zero_correction_policy_is_mpc_in_the_mosaik_run(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    # below SAC's 1000 warm-up steps: the actor stays at zero correction
    trained = train_policy(
        validate_scenario(raw),
        tmp_path / "p.zip",
        timesteps=200,
        days=5,
        base="mpc",
        progress=False,
    )
    setpoints = {}
    for name, control in (("rl", {"policy": str(trained.policy)}), ("mpc", {"defer_grid": True})):
        scenario = validate_scenario({**raw, "controller": name, "control": control})
        run = run_scenario(scenario, tmp_path / name)
        setpoints[name] = wide(load_results(run.out_dir), "controller", "p_set_kw")["bess"]
    assert setpoints["mpc"].abs().sum() > 0
    np.testing.assert_allclose(setpoints["rl"], setpoints["mpc"], atol=1e-6)


def test_defer_grid_charges_as_late_as_an_equally_good_plan_allows():
    t_n = 24
    price = np.where(np.arange(t_n) >= 20, 0.6, 0.3)
    plans = {}
    for defer in (False, True):
        problem = DispatchProblem(
            net_kw=np.full(t_n, -5.0),
            price_import_eur_kwh=price,
            price_export_eur_kwh=np.full(t_n, 0.05),
            dt_h=1.0,
            e_kwh=np.array([20.0]),
            p_max_kw=np.array([5.0]),
            eta_ch=np.array([0.95]),
            eta_dis=np.array([0.95]),
            soc_min=np.array([0.1]),
            soc_max=np.array([0.9]),
            soc0=np.array([0.1]),
            terminal_value_eur_kwh=np.array([0.3]),
            defer_grid=defer,
        )
        plans[defer] = solve_dispatch(problem)
    early, late = plans[False], plans[True]
    assert late.cost_eur == pytest.approx(early.cost_eur, abs=1e-6)
    charging = {d: np.flatnonzero(p.p_battery_kw[:, 0] < -1e-6) for d, p in plans.items()}
    assert charging[True][0] > charging[False][0]
    assert charging[True][-1] == 19  # right before the peak


def test_mpc_base_env_passes_gymnasiums_checker(domain):
    check_env(MicrogridEnv(domain, base="mpc"), skip_render_check=True)


def test_the_correction_is_bounded_by_the_scale(domain):
    env = MicrogridEnv(domain, base="mpc", scale=0.1)
    env.reset(seed=4)
    base = env.base_kw.copy()
    env.step(np.ones(1, dtype=np.float32))
    expected = np.clip(base + 0.1 * env.p_max, -env.p_max, env.p_max)
    assert env.last.p_battery_kw == pytest.approx(expected)
