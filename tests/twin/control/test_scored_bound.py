"""Property tests of the one objective on a loss-free site (no grid, exact physics).

- No dispatch the battery's own limits allow scores below the oracle's LP.
- The LP's cost is the scored cost of its own schedule (wear to 1e-9).
- The price-aware rule never costs more than no battery, step by step.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.base import Clock
from models.battery import limit_power
from twin.control.lp import DispatchProblem, solve_dispatch
from twin.control.rule import PriceUnknownError, RuleController
from twin.objective import Objective, ScoredCost, objective_for, scored_cost

DT_H = 0.25


@dataclass
class Site:
    """A random site: net power (> 0 surplus), prices, batteries, demand charge."""

    net_kw: np.ndarray
    price: np.ndarray
    price_export: np.ndarray
    batteries: list[dict]
    demand_charge: float

    @property
    def objective(self) -> Objective:
        return objective_for(self.batteries, self.price)

    def param(self, name: str) -> np.ndarray:
        return np.array([b[name] for b in self.batteries], dtype=float)


@dataclass
class Dispatch:
    """A schedule replayed through the battery equations: grid and cell-side energy."""

    p_import: np.ndarray
    p_export: np.ndarray
    throughput_cell: np.ndarray
    delta_e: np.ndarray
    step_cost: np.ndarray  # per step: energy + wear - terminal value of the step's dE

    def scored(self, site: Site) -> ScoredCost:
        return scored_cost(
            self.p_import,
            self.p_export,
            site.price,
            site.price_export,
            DT_H,
            site.demand_charge,
            self.throughput_cell,
            self.delta_e,
            site.objective,
        )


def replay(site: Site, setpoint) -> Dispatch:
    """Run ``setpoint(k, soc) -> kW`` through ``limit_power`` on a loss-free site."""
    e_kwh, eta_ch, eta_dis = site.param("e_kwh"), site.param("eta_ch"), site.param("eta_dis")
    soc = site.param("soc_init").copy()
    objective = site.objective
    imports, exports, steps = [], [], []
    throughput = np.zeros(len(e_kwh))
    delta = np.zeros(len(e_kwh))
    for k in range(len(site.net_kw)):
        p = limit_power(
            np.asarray(setpoint(k, soc.copy()), float),
            soc,
            e_kwh,
            site.param("p_max_kw"),
            site.param("soc_min"),
            site.param("soc_max"),
            eta_ch,
            eta_dis,
            DT_H,
        )
        de = np.where(p > 0, -p / eta_dis, -p * eta_ch) * DT_H
        soc = soc + de / e_kwh
        grid = -(site.net_kw[k] + p.sum())
        imp, exp = max(grid, 0.0), max(-grid, 0.0)
        imports.append(imp)
        exports.append(exp)
        throughput += np.abs(de)
        delta += de
        steps.append(
            (imp * site.price[k] - exp * site.price_export[k]) * DT_H
            + objective.wear @ np.abs(de)
            - objective.terminal_value @ de
        )
    return Dispatch(np.array(imports), np.array(exports), throughput, delta, np.array(steps))


@st.composite
def tariffs(draw, n: int):
    """Flat, two- or three-level import prices over ``n`` steps, and an export price."""
    levels = draw(st.integers(1, 3))
    base = draw(st.floats(0.05, 0.5))
    price = np.full(n, base)
    for _ in range(levels - 1):
        start = draw(st.integers(0, n - 1))
        length = draw(st.integers(1, n))
        price[start : start + length] = base * draw(st.floats(0.4, 2.5))
    export = draw(st.sampled_from([0.0, 0.5, 1.0])) * draw(st.floats(0.0, 1.0)) * price.min()
    return price, np.full(n, export)


@st.composite
def sites(draw, n_max: int = 24, n_batteries: int = 2, demand: bool = True):
    n = draw(st.integers(2, n_max))
    price, export = draw(tariffs(n))
    scale = draw(st.floats(1.0, 50.0))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    net = rng.uniform(-1.0, 1.0, n) * scale + draw(st.floats(-0.5, 0.5)) * scale
    batteries = []
    for i in range(draw(st.integers(1, n_batteries))):
        e_kwh = draw(st.floats(5.0, 200.0))
        soc_min = draw(st.floats(0.0, 0.3))
        soc_max = draw(st.floats(0.7, 1.0))
        batteries.append(
            {
                "name": f"b{i}",
                "e_kwh": e_kwh,
                "p_max_kw": e_kwh * draw(st.floats(0.2, 2.0)),
                "eta_ch": draw(st.floats(0.85, 1.0)),
                "eta_dis": draw(st.floats(0.85, 1.0)),
                "soc_min": soc_min,
                "soc_max": soc_max,
                "soc_init": draw(st.floats(soc_min, soc_max)),
                "cycle_life_efc": draw(st.floats(1000.0, 10000.0)),
                "replacement_eur_kwh": draw(st.sampled_from([0.0, 100.0, 300.0, 1000.0])),
            }
        )
    charge = draw(st.sampled_from([0.0, 0.0, 1.5])) if demand else 0.0
    return Site(net, price, export, batteries, charge)


def oracle(site: Site) -> tuple[DispatchProblem, object]:
    objective = site.objective
    problem = DispatchProblem(
        net_kw=site.net_kw,
        price_import_eur_kwh=site.price,
        price_export_eur_kwh=site.price_export,
        dt_h=DT_H,
        e_kwh=site.param("e_kwh"),
        p_max_kw=site.param("p_max_kw"),
        eta_ch=site.param("eta_ch"),
        eta_dis=site.param("eta_dis"),
        soc_min=site.param("soc_min"),
        soc_max=site.param("soc_max"),
        soc0=site.param("soc_init"),
        wear_eur_kwh=objective.wear,
        demand_charge_eur_kw=site.demand_charge,
        terminal_value_eur_kwh=objective.terminal_value,
    )
    return problem, solve_dispatch(problem)


def rule(site: Site, objective: Objective | None = None) -> RuleController:
    clock = Clock(pd.Timestamp("2016-01-11T00:00Z"), int(DT_H * 3600), len(site.net_kw))
    context = {"chargers": [], "objective": objective or site.objective}
    return RuleController(site.batteries, clock, context)


def rule_setpoint(site: Site):
    controller = rule(site)

    def setpoint(k: int, soc: np.ndarray) -> np.ndarray:
        inputs = {
            **controller.default_inputs(),
            "p_kw": np.array([site.net_kw[k]]),
            "price_eur_kwh": site.price[k : k + 1],
            "price_export_eur_kwh": site.price_export[k : k + 1],
            "soc": soc,
        }
        now = controller.clock.time_at(k * controller.clock.step_s)
        return controller.step(now, controller.clock.step_s, inputs)["p_set_kw"]

    return setpoint


@settings(max_examples=60, deadline=None)
@given(site=sites(), seed=st.integers(0, 2**31 - 1))
def test_no_feasible_dispatch_scores_below_the_oracle(site, seed):
    problem, plan = oracle(site)
    # The LP's own schedule, replayed: its cost and wear are the scored cost's parts.
    planned = replay(site, lambda k, soc: plan.p_battery_kw[k])
    ours = planned.scored(site)
    np.testing.assert_allclose(planned.delta_e, plan.e_kwh[-1] - plan.e_kwh[0], atol=1e-6)
    assert plan.wear_eur == pytest.approx(ours.wear, abs=1e-9, rel=1e-9)
    lp_scored = plan.cost_eur - problem.terminal_value_eur_kwh @ (plan.e_kwh[-1] - plan.e_kwh[0])
    assert lp_scored == pytest.approx(ours.total, abs=1e-6)
    # Random schedules within the battery's limits, no battery and the rule: none lower.
    rng = np.random.default_rng(seed)
    p_max = site.param("p_max_kw")
    candidates = {
        "none": lambda k, soc: np.zeros(len(p_max)),
        "rule": rule_setpoint(site),
        "random": lambda k, soc: rng.uniform(-1.5, 1.5, len(p_max)) * p_max,
        "full": lambda k, soc: rng.choice([-2.0, 0.0, 2.0], len(p_max)) * p_max,
    }
    for name, setpoint in candidates.items():
        other = replay(site, setpoint).scored(site)
        assert other.total >= ours.total - 1e-6, name


@settings(max_examples=80, deadline=None)
@given(site=sites(demand=False))
def test_the_rule_never_costs_more_than_no_battery_step_by_step(site):
    none = replay(site, lambda k, soc: np.zeros(len(site.batteries)))
    ruled = replay(site, rule_setpoint(site))
    # Each step's energy cost plus wear, minus the value of its stored-energy change.
    assert np.all(ruled.step_cost <= none.step_cost + 1e-9)
    assert np.all(ruled.p_import <= none.p_import + 1e-9)  # so the peak never rises
    assert ruled.scored(site).total <= none.scored(site).total + 1e-9


@settings(max_examples=40, deadline=None)
@given(site=sites(demand=False), base=st.floats(0.05, 0.5))
def test_the_rule_never_costs_more_than_no_battery_on_flat_tariffs_with_wear(site, base):
    flat = Site(
        site.net_kw,
        np.full(len(site.net_kw), base),
        np.full(len(site.net_kw), 0.3 * base),
        [{**b, "replacement_eur_kwh": 300.0} for b in site.batteries],
        0.0,
    )
    assert np.all(flat.objective.wear > 0.0)
    none = replay(flat, lambda k, soc: np.zeros(len(flat.batteries)))
    ruled = replay(flat, rule_setpoint(flat))
    assert np.all(ruled.step_cost <= none.step_cost + 1e-9)


def test_the_rule_covers_a_deficit_at_a_flat_price_and_keeps_energy_when_cheap():
    """Flat: discharging is a tie (self-consumption stays); cheap hours: it waits."""
    battery = {
        "name": "b", "e_kwh": 10.0, "p_max_kw": 5.0, "eta_ch": 0.95, "eta_dis": 0.95,
        "soc_min": 0.1, "soc_max": 0.9, "soc_init": 0.5, "cycle_life_efc": 6000.0,
        "replacement_eur_kwh": 300.0,
    }  # fmt: skip
    flat = Site(np.full(4, -3.0), np.full(4, 0.3), np.zeros(4), [battery], 0.0)
    assert replay(flat, rule_setpoint(flat)).p_import == pytest.approx(np.zeros(4))
    tou = Site(np.full(4, -3.0), np.array([0.2, 0.2, 0.4, 0.4]), np.zeros(4), [battery], 0.0)
    np.testing.assert_allclose(replay(tou, rule_setpoint(tou)).p_import, [3.0, 3.0, 0.0, 0.0])


def test_the_rule_is_never_price_blind():
    battery = {"name": "b", "e_kwh": 10.0, "p_max_kw": 5.0, "eta_ch": 0.95, "eta_dis": 0.95,
               "soc_min": 0.1, "soc_max": 0.9, "soc_init": 0.5}  # fmt: skip
    clock = Clock(pd.Timestamp("2016-01-11T00:00Z"), 900, 4)
    with pytest.raises(Exception, match="objective"):
        RuleController([battery], clock, {"chargers": []})
    # From the run's prices when no objective is given.
    controller = RuleController([battery], clock, {"price_import_eur_kwh": [0.2, 0.4]})
    assert controller.objective.terminal_value[0] == pytest.approx(0.2 / 0.95)
    inputs = {**controller.default_inputs(), "p_kw": np.array([-3.0]), "soc": np.array([0.5])}
    with pytest.raises(PriceUnknownError, match="price_eur_kwh"):
        controller.step(clock.start, 900, inputs)


def test_the_run_objective_comes_from_the_context_or_the_runs_prices():
    from twin.control.site import ObjectiveUnknownError, run_objective

    battery = {"name": "b", "eta_ch": 0.9, "eta_dis": 0.9, "replacement_eur_kwh": 120.0,
               "cycle_life_efc": 3000.0}  # fmt: skip
    clock = Clock(pd.Timestamp("2016-01-11T05:00Z"), 3600, 24)
    tariff = {"name": "tariff", "import_eur_kwh": 0.3, "export_eur_kwh": 0.0,
              "periods": [{"start": "00:00", "end": "06:00", "import_eur_kwh": 0.18}]}  # fmt: skip
    context = {"tariff": tariff, "site": {"tz": "America/New_York"}}
    objective = run_objective([battery], clock, context)
    assert objective.wear[0] == pytest.approx(0.02)
    assert objective.terminal_value[0] == pytest.approx(0.18 / 0.9 + 0.02)
    overridden = run_objective(
        [battery], clock, {**context, "control": {"terminal_price_eur_kwh": 0.1}}
    )
    assert overridden.terminal_value[0] == 0.1
    given = Objective(np.array([0.5]), np.array([0.7]))
    assert run_objective([battery], clock, {"objective": given}) is given
    with pytest.raises(ObjectiveUnknownError, match="objective"):
        run_objective([battery], clock, {})
