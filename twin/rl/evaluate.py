"""Scoring controllers day by day on the environment's physics, by the scored cost J.

Every controller of the twin is a plain model class, so the same classes that act in
the mosaik run act here, step by step, on :class:`twin.rl.env.MicrogridEnv`'s physics
(equal to the co-simulation's), on any site of a domain. A day is scored by
:func:`twin.objective.scored_cost` (energy, demand charge, wear, stored energy change at
the terminal value: the day is the run), the quantity the oracle's LP minimises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock
from twin.objective import scored_cost
from twin.registry import get_model
from twin.rl.domain import Site
from twin.rl.env import MicrogridEnv

__all__ = ["DayScore", "evaluate_day"]


@dataclass
class DayScore:
    """Outcome of one controller on one day (EUR, kW, kWh, s).

    ``cost_eur`` is the scored cost J, ``cost_no_wear_eur`` J without the wear cost,
    ``energy_eur`` what the site paid; ``planned_eur`` the oracle's own LP value of J
    (NaN for other controllers): the gap to ``cost_eur`` is what grid losses, left out
    of the LP, cost.
    """

    controller: str
    site: str
    day: int
    cost_eur: float
    cost_no_wear_eur: float
    energy_eur: float
    peak_import_kw: float
    throughput_kwh: float
    seconds_per_step: float
    planned_eur: float = float("nan")


def controller_for(
    env: MicrogridEnv, name: str, policy: str | None, control_changes: dict[str, Any]
) -> Any:
    """Controller ``name`` for the environment's current site and day (a one-day run)."""
    base, site = env.base, env.site
    assert site is not None
    clock = Clock(pd.Timestamp(base.clock.time_at(env.k0 * env.dt_s)), env.dt_s, env.steps_per_day)
    control = {
        "forecaster": "persistence",
        "horizon": "24h",
        "history_days": 14,
        "terminal_price_eur_kwh": site.terminal_price,
        **control_changes,
    }
    if policy:
        control["policy"] = policy
    context = {**base.controller_context(site), "control": control, "objective": env.objective}
    return get_model(name)(site.batteries, clock, context)


def evaluate_day(
    env: MicrogridEnv,
    day: int,
    name: str,
    policy: str | None = None,
    control: dict[str, Any] | None = None,
    site: Site | None = None,
) -> DayScore:
    """Run controller ``name`` (``none`` or a registered controller) over one day.

    ``site`` (default: the environment's fixed site) is the site; ``control``
    overrides control options (e.g. ``{"forecaster": "regression"}``).
    """
    options: dict[str, Any] = {"day": day}
    if site is not None:
        options["site"] = site
    env.reset(options=options)
    started = time.perf_counter()  # set-up counts: the oracle solves its LP there
    controller = None if name == "none" else controller_for(env, name, policy, control or {})
    spent = time.perf_counter() - started
    n_b = len(env.p_max)
    soc = env.battery.soc.copy()
    spd = env.steps_per_day
    imports, throughput = np.zeros(spd), np.zeros(n_b)
    for i in range(spd):
        pv, load = env.site_pv_kw[spd + i], env.site_load_kw[spd + i]
        if controller is None:
            p_set = np.zeros(n_b)
        else:
            inputs = {
                **controller.default_inputs(),
                "p_kw": np.array([pv + load]),
                "p_pv_kw": np.array([pv]),
                "p_load_kw": np.array([load]),
                "soc": soc,
                "price_eur_kwh": env.price_import[i : i + 1],
                "price_export_eur_kwh": env.price_export[i : i + 1],
            }
            inputs = {k: v for k, v in inputs.items() if k in controller.inputs}
            started = time.perf_counter()
            out = controller.step(controller.clock.time_at(i * env.dt_s), env.dt_s, inputs)
            spent += time.perf_counter() - started
            p_set = out["p_set_kw"]
        record = env.physics_step(p_set)
        soc = record.soc.copy()
        imports[i] = record.p_import_kw
        throughput += record.throughput_kwh
    score = scored_cost(
        np.clip(imports, 0.0, None),
        np.clip(-imports, 0.0, None),
        env.price_import[:spd],
        env.price_export[:spd],
        env.dt_h,
        env.demand_charge,
        throughput,
        env.e_prev - env.e_start,
        env.objective,
    )
    planned = float("nan")
    plan = getattr(controller, "plan", None)
    if name == "oracle" and plan is not None:
        de = plan.e_kwh[-1] - plan.e_kwh[0]
        planned = plan.cost_eur - float(env.objective.terminal_value @ de)
    return DayScore(
        name,
        env.site.name,
        day,
        score.total,
        score.without_wear,
        score.energy,
        float(imports.max()),
        float(throughput.sum()),
        spent / spd,
        planned,
    )
