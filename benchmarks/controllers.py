"""Train the RL agent and compare every controller on held-out days.

Usage: python -m benchmarks.controllers [--timesteps N] [--eval-days 30] [--policy FILE]

The site is scenarios/microgrid_day.yaml (SimBench rural LV feeder, its 13 SimBench
load profiles, PV on the Greensboro TMY, one 60 kWh battery, a time-of-use tariff).
The agent trains on the training days of the year; every controller is then scored on
held-out validation days it never saw, day by day on the same physics (the environment,
equal to the mosaik run), under the same terminal rule (stored energy change valued at
the day's mean import price). Prints training time, inference time and the table.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.run_year import machine
from twin.rl.env import MicrogridEnv, split_days
from twin.rl.evaluate import evaluate_day
from twin.rl.train import train_policy
from twin.scenario import load_scenario

HERE = Path(__file__).parent
CONTROLLERS = ("none", "rule", "mpc", "mpc_regression", "oracle", "rl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/microgrid_day.yaml")
    parser.add_argument("--timesteps", type=int, default=150_000)
    parser.add_argument("--eval-days", type=int, default=30)
    parser.add_argument("--algo", default="sac")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", help="evaluate this policy instead of training one")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    scenario = load_scenario(args.scenario)
    policy = args.policy
    if policy is None:
        started = time.perf_counter()
        result = train_policy(
            scenario,
            HERE / "out" / "policy.zip",
            timesteps=args.timesteps,
            seed=args.seed,
            algo=args.algo,
            progress=True,
        )
        train_s = time.perf_counter() - started
        policy = str(result.policy)
        shutil.copy(result.curve_png, HERE / "rl_training_curve.png")
        print(f"training: {args.timesteps} steps of {args.algo} in {train_s:.0f} s")

    _, validation = split_days(365)
    stride = max(len(validation) // args.eval_days, 1)
    days = validation[::stride][: args.eval_days]
    env = MicrogridEnv(scenario)
    scores = []
    for day in days:
        for name in CONTROLLERS:
            controller = "mpc" if name.startswith("mpc") else name
            control = {"forecaster": "regression"} if name == "mpc_regression" else {}
            score = evaluate_day(env, day, controller, policy=policy, control=control)
            score.controller = name
            scores.append(score)
    frame = pd.DataFrame([vars(s) for s in scores])
    table = (
        frame.groupby("controller")
        .agg(
            cost_eur=("scored_cost_eur", "sum"),
            peak_kw=("peak_import_kw", "max"),
            throughput_kwh=("throughput_kwh", "sum"),
            ms_per_step=("seconds_per_step", lambda s: 1000 * s.mean()),
        )
        .reindex(list(CONTROLLERS))
    )
    saved = table.loc["none", "cost_eur"] - table["cost_eur"]
    table["saved_eur"] = saved
    table["oracle_share"] = saved / saved["oracle"]
    rl_vs_rule = frame.pivot(index="day", columns="controller", values="scored_cost_eur")
    better = (rl_vs_rule["rl"] < rl_vs_rule["rule"]).mean()
    print(f"\n{len(days)} held-out days ({days[0]}..{days[-1]}), cost with terminal rule")
    print(table.to_string(float_format=lambda v: f"{v:,.3f}"))
    print(f"rl cheaper than rule on {better:.0%} of the days")
    print(f"rl inference: {table.loc['rl', 'ms_per_step']:.3f} ms per step")
    np.savetxt(HERE / "out" / "days.txt", days, fmt="%d")


if __name__ == "__main__":
    main()
