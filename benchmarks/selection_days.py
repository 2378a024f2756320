"""The training's selection days, scored for every forecast a base can start from.

Usage: python -m benchmarks.selection_days [--policy builtin] [--days 48]

On the site-days training scores its checkpoints on (:func:`twin.rl.selection.selection_days`:
training days of sites drawn with their own seed, each with its day-ahead forecast's
seed), prints the scored cost J and the share of the oracle's saving of: MPC on
persistence (``mpc_defer``, the ``forecast`` base at a zero action), MPC on the day-ahead
forecast (the ``day_ahead`` base at a zero action) and the policy (on its own base). A
second sample of the training distribution beside the controllers benchmark's, and the
one selection judged the candidates on.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.machine import machine
from twin.rl.controller import load_policy, policy_metadata
from twin.rl.domain import Domain, DomainConfig, split_days
from twin.rl.env import MicrogridEnv
from twin.rl.evaluate import evaluate_day
from twin.rl.plan import FORECAST_BASES
from twin.rl.selection import selection_days
from twin.rl.train import SELECT_DAYS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="builtin", help="a policy file or builtin")
    parser.add_argument("--days", type=int, default=SELECT_DAYS)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    train_days, _ = split_days(365)
    domain = Domain.training(DomainConfig())
    policy_base = policy_metadata(args.policy).get("base") or "forecast"
    if policy_base not in FORECAST_BASES:
        parser.error(f"--policy: its base is {policy_base!r}; expected one of {FORECAST_BASES}")
    zero = np.zeros(2, dtype=np.float32)
    model = load_policy(args.policy)
    costs = {}
    for base in ("forecast", "day_ahead"):
        env = MicrogridEnv(domain, days=train_days, base=base)
        days = selection_days(env, train_days, args.days)
        name = {"forecast": "mpc_defer (persistence)", "day_ahead": "mpc_day_ahead"}[base]
        costs[name] = days.cost(lambda obs: zero)
        if base == policy_base:
            costs[f"rl {args.policy}"] = days.cost(
                lambda obs: model.predict(obs, deterministic=True)[0]
            )
    env = days.env
    for name in ("none", "oracle"):
        costs[name] = sum(
            evaluate_day(env, day, name, site=site).cost_eur for site, day, _ in days.cases
        )
    saving = costs["none"] - costs["oracle"]
    print(f"\n{args.days} selection days (training days, sites of the selection seed)")
    print("| controller | J (EUR) | share of the oracle's saving |")
    print("|---|---:|---:|")
    for name, cost in costs.items():
        print(f"| {name} | {cost:,.2f} | {100 * (costs['none'] - cost) / saving:.1f} % |")


if __name__ == "__main__":
    main()
