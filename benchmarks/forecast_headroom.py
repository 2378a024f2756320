"""How much the ``forecast`` base's action can gain: fixed rules for its two factors.

Usage: python -m benchmarks.forecast_headroom [--sites 24] [--eval-seed 2026]
       [--errors 0.3,0.5]

On the controllers benchmark's training-distribution case (the same sites and held-out
days), MPC re-plans every step on the persistence forecast corrected by factors chosen
by a fixed rule instead of a policy:

- ``persistence``: factors 1 (the base, MPC with ``defer_grid``);
- ``so far``: today's PV and load energy since midnight over yesterday's (the
  observation's ratios), what a measured-only rule can do;
- ``hindsight, per day``: today's whole-day energy over yesterday's, constant all day;
- ``hindsight, per step``: the rest of today's energy over yesterday's at every step
  (:func:`twin.rl.imitation.hindsight_action`, what the actor's head start is fitted to);
- ``day ahead, error s``: the modelled day-ahead forecast of the day's ratio
  (:func:`twin.forecast.day_ahead_log_ratio`: the whole day's ratio times a log-normal
  error of standard deviation ``s`` on PV and on load, seeded by ``--eval-seed`` and the
  date), known from midnight on.

The hindsight rules know the future: they bound what a policy acting through the same
two factors (within :data:`twin.rl.forecast_action.FACTOR_RANGE`) could gain, which is
the room left to learn. Prints each rule's share of the oracle's saving.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks.controllers import training_distribution_case
from benchmarks.machine import machine
from twin.forecast import day_ahead_log_ratio, energy_log_ratio
from twin.rl.env import MicrogridEnv
from twin.rl.evaluate import evaluate_day
from twin.rl.forecast_action import FACTOR_RANGE
from twin.rl.imitation import hindsight_action


def _action(env: MicrogridEnv, today: slice, before: slice) -> np.ndarray:
    """Today's energy over yesterday's (steps of the episode's two days), as an action."""
    spd = env.steps_per_day
    ratio = [
        energy_log_ratio(series[today], series[before], float(series[:spd].sum()))
        for series in (env.site_pv_kw, env.site_load_kw)
    ]
    return np.clip(np.array(ratio) / np.log(FACTOR_RANGE), -1.0, 1.0)


def so_far(env: MicrogridEnv) -> np.ndarray:
    """Today's energy since midnight (this step's included) over yesterday's."""
    spd, i = env.steps_per_day, env.k - env.k0
    return _action(env, slice(spd, spd + i + 1), slice(0, i + 1))


def per_day(env: MicrogridEnv) -> np.ndarray:
    """Today's whole-day energy over yesterday's (known in hindsight)."""
    spd = env.steps_per_day
    return _action(env, slice(spd, None), slice(0, spd))


RULES: dict[str, Callable[[MicrogridEnv], np.ndarray]] = {
    "persistence": lambda env: np.zeros(2),
    "so far": so_far,
    "hindsight, per day": per_day,
    "hindsight, per step": hindsight_action,
}


def day_ahead(error: float, seed: int) -> Callable[[MicrogridEnv], np.ndarray]:
    """The modelled day-ahead forecast of the day's ratio (log error ``error`` on both)."""

    def rule(env: MicrogridEnv) -> np.ndarray:
        spd = env.steps_per_day
        ratio = day_ahead_log_ratio(
            (env.site_pv_kw[spd:], env.site_load_kw[spd:]),
            (env.site_pv_kw[:spd], env.site_load_kw[:spd]),
            seed,
            env.base.times_local[env.k0].date().toordinal(),
            (error, error),
        )
        return np.clip(ratio / np.log(FACTOR_RANGE), -1.0, 1.0)

    return rule


def day_cost(env: MicrogridEnv, rule: Callable[[MicrogridEnv], np.ndarray], site, day) -> float:
    """Scored cost J of one day with the rule's factors at every step."""
    env.reset(options={"site": site, "day": day})
    total, done = 0.0, False
    while not done:
        _, _, _, done, info = env.step(rule(env).astype(np.float32))
        total += info["cost_eur"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=24)
    parser.add_argument("--eval-seed", type=int, default=2026)
    parser.add_argument("--errors", default="0.3,0.5", help="log errors of the day-ahead rows")
    args = parser.parse_args()
    errors = [float(e) for e in args.errors.split(",") if e]
    print(f"machine: {machine()}")
    case = training_distribution_case(args.sites, args.eval_seed)
    env = MicrogridEnv(case.domain, base="forecast")
    rows, names = [], [*RULES, *(f"day ahead, error {e:g}" for e in errors)]
    rules = {
        **RULES,
        **{
            n: day_ahead(e, args.eval_seed)
            for n, e in zip(names[len(RULES) :], errors, strict=True)
        },
    }
    for site, day in zip(case.sites, case.days, strict=True):
        row = {"site": site.name, "day": day}
        for name in ("none", "oracle"):
            row[name] = evaluate_day(env, day, name, site=site).cost_eur
        for name, rule in rules.items():
            row[name] = day_cost(env, rule, site, day)
        rows.append(row)
    frame = pd.DataFrame(rows)
    oracle_saving = (frame["none"] - frame["oracle"]).sum()
    print(f"\n{len(frame)} held-out days of the training distribution (eval seed {args.eval_seed})")
    print("| forecast factors | share of the oracle's saving | days worse than persistence |")
    print("|---|---:|---:|")
    for name in names:
        share = 100 * (frame["none"] - frame[name]).sum() / oracle_saving
        worse = int((frame[name] > frame["persistence"] + 1e-6).sum())
        print(f"| {name} | {share:.1f} % | {worse} |")


if __name__ == "__main__":
    main()
