"""Scoring controllers day by day on the environment's physics.

Every controller of the twin is a plain model class, so the same instances that act
in the mosaik run act here, step by step, on :class:`twin.rl.env.MicrogridEnv`'s
physics (equal to the co-simulation's). A day's score is its energy cost with the
change of stored battery energy valued at the day's mean import price (the terminal
rule every controller is held to).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock
from twin.registry import get_model
from twin.rl.env import MicrogridEnv

__all__ = ["DayScore", "evaluate_day"]


@dataclass
class DayScore:
    """Outcome of one controller on one day."""

    controller: str
    day: int
    cost_eur: float
    scored_cost_eur: float
    peak_import_kw: float
    throughput_kwh: float
    seconds_per_step: float


def _controller(
    env: MicrogridEnv, name: str, policy: str | None, control_changes: dict[str, Any]
) -> Any:
    scenario = env.scenario
    start = env.clock.time_at(env.k * env.dt_s)
    clock = Clock(pd.Timestamp(start), env.dt_s, env.steps_per_day)
    control = {**scenario.control.model_dump(mode="json"), **control_changes}
    if policy:
        control["policy"] = policy
    context = {
        **env.context,
        "control": control,
        "assets": {kind: scenario.units(kind) for kind in ("pv", "load")},
        "tariff": {"name": "tariff", **scenario.tariff.model_dump()},
        "chargers": [],
        "p_import_max_kw": scenario.control.p_import_max_kw,
    }
    return get_model(name)(scenario.units("battery"), clock, context)


def evaluate_day(
    env: MicrogridEnv,
    day: int,
    name: str,
    policy: str | None = None,
    control: dict[str, Any] | None = None,
) -> DayScore:
    """Run controller ``name`` (``none`` or a registered controller) over one day.

    ``control`` overrides the scenario's control options (e.g. ``{"forecaster": ...}``).
    """
    env.reset(options={"day": day})
    started = time.perf_counter()  # set-up counts: the oracle solves its LP there
    controller = None if name == "none" else _controller(env, name, policy, control or {})
    spent = time.perf_counter() - started
    n_b = len(env.batteries)
    soc = env.battery.soc.copy()
    cost, peak, throughput = 0.0, -np.inf, 0.0
    for i in range(env.steps_per_day):
        pv, load = env.site_pv_kw[env.k], env.site_load_kw[env.k]
        if controller is None:
            p_set = np.zeros(n_b)
        else:
            inputs = {
                **controller.default_inputs(),
                "p_kw": np.array([pv + load]),
                "p_pv_kw": np.array([pv]),
                "p_load_kw": np.array([load]),
                "price_eur_kwh": env.price_import[env.k : env.k + 1],
                "price_export_eur_kwh": env.price_export[env.k : env.k + 1],
                "soc": soc,
            }
            inputs = {k: v for k, v in inputs.items() if k in controller.inputs}
            started = time.perf_counter()
            p_set = controller.step(controller.clock.time_at(i * env.dt_s), env.dt_s, inputs)[
                "p_set_kw"
            ]
            spent += time.perf_counter() - started
        record = env.physics_step(p_set)
        soc = record.soc.copy()
        cost += record.cost_eur
        peak = max(peak, record.p_import_kw)
        throughput += float(np.abs(record.p_battery_kw).sum()) * env.dt_h
    e_end = env.battery.soc * env.battery.e_kwh * env.battery.soh
    day_prices = env.price_import[env.k - env.steps_per_day : env.k]
    price = env.terminal_price if env.terminal_price is not None else float(day_prices.mean())
    scored = cost - price * float((e_end - env.e_start).sum())
    return DayScore(name, day, cost, scored, peak, throughput, spent / env.steps_per_day)
