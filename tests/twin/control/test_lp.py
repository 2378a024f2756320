import numpy as np
import pytest

from twin.control.lp import DispatchProblem, LPError, solve_dispatch


def problem(net_kw, price, **changes) -> DispatchProblem:
    t = len(net_kw)
    base = dict(
        net_kw=np.asarray(net_kw, float),
        price_import_eur_kwh=np.asarray(price, float),
        price_export_eur_kwh=np.zeros(t),
        dt_h=1.0,
        e_kwh=np.array([100.0]),
        p_max_kw=np.array([10.0]),
        eta_ch=np.array([0.95]),
        eta_dis=np.array([0.9]),
        soc_min=np.array([0.1]),
        soc_max=np.array([0.9]),
        soc0=np.array([0.1]),
    )
    base.update(changes)
    return DispatchProblem(**base)


def test_one_price_step_has_the_analytic_optimum():
    # 12 cheap hours (0.10), then 12 expensive hours (0.50) with a 5 kW load.
    price = np.r_[np.full(12, 0.10), np.full(12, 0.50)]
    net = np.r_[np.zeros(12), np.full(12, -5.0)]
    plan = solve_dispatch(problem(net, price))
    # Storing 5 kW x 12 h at the bus costs 60 / (0.95 * 0.9) kWh of cheap energy and
    # avoids all expensive imports; the battery ends where it started.
    charged = 60.0 / (0.95 * 0.9)
    assert plan.cost_eur == pytest.approx(0.10 * charged, abs=1e-4)
    np.testing.assert_allclose(plan.p_battery_kw[12:, 0], 5.0, atol=1e-6)
    assert -plan.p_battery_kw[:12].sum() == pytest.approx(charged, abs=1e-6)
    np.testing.assert_allclose(plan.p_import_kw[12:], 0.0, atol=1e-6)
    assert plan.e_kwh[-1, 0] == pytest.approx(10.0, abs=1e-6)


def test_arbitrage_stops_when_efficiency_eats_the_spread():
    price = np.r_[np.full(12, 0.45), np.full(12, 0.50)]  # 0.45 / (0.95 * 0.9) > 0.50
    net = np.r_[np.zeros(12), np.full(12, -5.0)]
    plan = solve_dispatch(problem(net, price))
    np.testing.assert_allclose(plan.p_battery_kw, 0.0, atol=1e-6)
    assert plan.cost_eur == pytest.approx(0.5 * 60, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_limits_hold_on_random_days(seed):
    rng = np.random.default_rng(seed)
    t = 96
    pr = problem(
        rng.uniform(-30, 30, t),
        rng.uniform(0.05, 0.6, t),
        dt_h=0.25,
        price_export_eur_kwh=np.full(t, 0.04),
        e_kwh=np.array([50.0, 20.0]),
        p_max_kw=np.array([20.0, 5.0]),
        eta_ch=np.array([0.95, 0.9]),
        eta_dis=np.array([0.95, 0.9]),
        soc_min=np.array([0.1, 0.2]),
        soc_max=np.array([0.9, 1.0]),
        soc0=np.array([0.5, 0.2]),
        wear_eur_kwh=np.array([0.01, 0.01]),
    )
    plan = solve_dispatch(pr)
    assert np.all(np.abs(plan.p_battery_kw) <= pr.p_max_kw + 1e-7)
    assert np.all(plan.e_kwh >= pr.soc_min * pr.e_kwh - 1e-7)
    assert np.all(plan.e_kwh <= pr.soc_max * pr.e_kwh + 1e-7)
    assert np.all(plan.e_kwh[-1] >= pr.soc0 * pr.e_kwh - 1e-7)  # terminal rule
    balance = plan.p_import_kw - plan.p_export_kw + plan.p_battery_kw.sum(axis=1) + pr.net_kw
    np.testing.assert_allclose(balance, 0.0, atol=1e-7)
    # Replaying the plan through the battery model's equations gives the same energies.
    e = pr.soc0 * pr.e_kwh
    for p in plan.p_battery_kw:
        e = e + np.where(p > 0, -p / pr.eta_dis, -p * pr.eta_ch) * pr.dt_h
    np.testing.assert_allclose(e, plan.e_kwh[-1], atol=1e-6)


def test_infeasible_import_limit_is_a_clear_error():
    with pytest.raises(LPError, match="infeasible"):
        solve_dispatch(problem([-50.0] * 4, [0.3] * 4, p_import_max_kw=20.0))


def test_flexible_ev_charges_in_the_cheapest_steps_of_its_stay():
    from twin.control.lp import EVSession

    price = np.array([0.5, 0.5, 0.1, 0.1, 0.5, 0.5, 0.05, 0.5])
    # No battery use possible: a full battery window [soc0, soc0] at zero power.
    pr = problem(np.zeros(8), price, p_max_kw=np.array([1e-9]))
    pr.n_chargers = 2
    pr.ev_sessions = [
        EVSession(charger=0, start=1, end=6, e_kwh=15.0, p_max_kw=11.0),  # cheap: 2, 3
        EVSession(charger=1, start=5, end=8, e_kwh=30.0, p_max_kw=11.0),  # cannot finish
    ]
    plan = solve_dispatch(pr)
    np.testing.assert_allclose(plan.p_ev_kw[:, 0], [0, 0, 11, 4, 0, 0, 0, 0], atol=1e-6)
    # The second EV takes all it can (11 kW x 3 h = 33 > 30): cheapest step first.
    assert plan.p_ev_kw[6, 1] == pytest.approx(11.0, abs=1e-6)
    assert plan.p_ev_kw[:, 1].sum() == pytest.approx(30.0, abs=1e-6)
    assert plan.e_ev_unmet_kwh == pytest.approx(0.0, abs=1e-6)
    short = solve_dispatch(
        problem(
            np.zeros(8),
            price,
            p_max_kw=np.array([1e-9]),
            n_chargers=1,
            ev_sessions=[EVSession(0, 6, 8, 30.0, 11.0)],
        )
    )
    assert short.e_ev_unmet_kwh == pytest.approx(8.0, abs=1e-6)  # 22 of 30 kWh fit
    np.testing.assert_allclose(plan.p_import_kw, plan.p_ev_kw.sum(axis=1), atol=1e-6)
