"""Train the generalist RL agent and compare every controller on held-out days and sites.

Usage: python -m benchmarks.controllers [--timesteps N] [--policy FILE|builtin]
       [--sites 24] [--days-per-case 8] [--threads 1] [--base forecast|mpc|plan|rule]
       [--regression]
       [--reuse CSV]
       python -m benchmarks.controllers --shipped

Every controller is scored by the scored cost J of :mod:`twin.objective` (energy,
demand charge, battery wear, stored energy change at the terminal value), day by day,
on the environment's physics (equal to the mosaik run), against the oracle: the LP of
J with perfect foresight (its lower bound, grid losses aside). Cases:

- **training distribution, held-out days**: ``--sites`` sites drawn from the training
  domain with another seed, each on a validation day (never a training day);
- **held-out sites** (:func:`twin.rl.domain.held_out_sites`): feeders, a climate, a
  dynamic tariff and a three-level tariff outside the training domain, and the issue's
  case (the day scenario's site with a 100 kWh / 30 kW battery, three-level tariff);
- **shipped**: ``scenarios/microgrid_day.yaml``'s own site on validation days; with
  ``--shipped`` (alone), ``rule`` against ``none`` in the mosaik run of every shipped
  scenario with a battery (KPI ``cost_scored_eur``).

``mpc_defer`` is MPC with ``control.defer_grid`` (the least-commitment tie-break the
``mpc`` base of the agent uses), so the agent is compared with its own base.

Prints the machine, training time, one table (J per controller, saving vs none, share
of the oracle's saving, reduction vs none in %, with and without the wear cost), the
days where ``rule`` cost more than ``none`` and the oracle's LP-vs-realised gap.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.machine import machine
from twin.rl.domain import (
    Domain,
    HeldOut,
    held_out_sites,
    microgrid_day_big_battery,
    split_days,
)
from twin.rl.env import BASES, MicrogridEnv
from twin.rl.evaluate import DayScore, evaluate_day
from twin.rl.train import DEFAULT_BASE, DEFAULT_TIMESTEPS, train_policy
from twin.scenario import load_scenario

HERE = Path(__file__).parent
ROOT = HERE.parent
CONTROLLERS = (
    "none",
    "rule",
    "mpc",
    "mpc_defer",
    "mpc_regression",
    "mpc_day_ahead",
    "oracle",
    "rl",
)
#: Control options of the MPC variants (persistence unless named).
MPC_VARIANTS = {
    "mpc": {},
    "mpc_defer": {"defer_grid": True},
    "mpc_regression": {"forecaster": "regression"},
    "mpc_day_ahead": {"forecaster": "day_ahead", "defer_grid": True},
}
#: The controllers that read the day-ahead forecast (its errors follow its seed).
FORECAST_READERS = ("mpc_day_ahead", "rl")
#: Shipped scenarios with a battery that run stand-alone (``hil_battery`` and
#: ``live_feeder`` need an MQTT device or field feed in the loop).
SHIPPED = ("microgrid_day", "ev_depot", "field_plant", "microgrid_year")


def training_distribution_case(n_sites: int, seed: int) -> HeldOut:
    """``n_sites`` sites of the training domain, each on one validation day."""
    domain = Domain.training()
    rng = np.random.default_rng(seed)
    _, validation = split_days(365)
    sites, days = [], []
    for j in range(n_sites):
        site = domain.sample(rng)
        site.name = f"sampled {j}"
        sites.append(site)
        days.append(int(rng.choice(validation)))
    case = HeldOut("training distribution", domain, sites[0], days, "held-out days")
    case.sites = sites  # type: ignore[attr-defined]
    return case


def run_case(
    case: HeldOut,
    controllers: tuple[str, ...],
    policy: str,
    reuse: pd.DataFrame | None = None,
    log: bool = True,
    forecast_seed: int | None = None,
) -> list[DayScore]:
    """Every controller on every (site, day) of ``case``.

    ``reuse``: rows of an earlier run (same cases); controllers other than ``rl``
    found there are not run again (they do not depend on the policy), nor those reading
    the day-ahead forecast when ``forecast_seed`` (``control.day_ahead_seed``) is given.
    """
    env = MicrogridEnv(case.domain)
    sites = getattr(case, "sites", [case.site] * len(case.days))
    fresh = {"rl", *(FORECAST_READERS if forecast_seed is not None else ())}
    seeded = {} if forecast_seed is None else {"day_ahead_seed": forecast_seed}
    scores = []
    for site, day in zip(sites, case.days, strict=True):
        for name in controllers:
            if reuse is not None and name not in fresh:
                found = reuse[
                    (reuse["site"] == case.name)
                    & (reuse["day"] == day)
                    & (reuse["controller"] == name)
                    & (reuse["site_name"] == site.name)
                ]
                if len(found) == 1:
                    row = found.iloc[0].to_dict()
                    row.pop("site_name")
                    scores.append(DayScore(**row))
                    continue
            controller = "mpc" if name in MPC_VARIANTS else name
            control = {**MPC_VARIANTS.get(name, {}), **seeded}
            score = evaluate_day(env, day, controller, policy=policy, control=control, site=site)
            score.controller = name
            score.site = case.name
            scores.append(score)
        if log:
            print(f"  {case.name}: {site.name} day {day} done", flush=True)
    return scores


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case and controller: J, saving vs none, share of the oracle's, reduction %."""
    rows = []
    for case, group in frame.groupby("site", sort=False):
        total = group.groupby("controller", sort=False)[["cost_eur", "cost_no_wear_eur"]].sum()
        none, oracle = total.loc["none"], total.loc["oracle"]
        for name, row in total.iterrows():
            saved = none["cost_eur"] - row["cost_eur"]
            saved_nw = none["cost_no_wear_eur"] - row["cost_no_wear_eur"]
            oracle_saved = none["cost_eur"] - oracle["cost_eur"]
            oracle_saved_nw = none["cost_no_wear_eur"] - oracle["cost_no_wear_eur"]
            rows.append(
                {
                    "case": case,
                    "controller": name,
                    "days": int((group["controller"] == name).sum()),
                    "J_eur": row["cost_eur"],
                    "saved_eur": saved,
                    "oracle_share_%": 100 * saved / oracle_saved if oracle_saved else np.nan,
                    "reduction_%": 100 * saved / abs(none["cost_eur"]),
                    "J_no_wear_eur": row["cost_no_wear_eur"],
                    "oracle_share_no_wear_%": (
                        100 * saved_nw / oracle_saved_nw if oracle_saved_nw else np.nan
                    ),
                    "ms_per_step": 1000
                    * group.loc[group["controller"] == name]["seconds_per_step"].mean(),
                }
            )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The summary as a Markdown table (for BENCHMARKS.md)."""
    head = (
        "| case | controller | days | J (EUR) | saved vs none (EUR) | share of oracle saving |"
        " reduction vs none | share of oracle saving, no wear | compute ms/step |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, row in table.iterrows():
        lines.append(
            f"| {row['case']} | {row['controller']} | {row['days']} | {row['J_eur']:,.2f} | "
            f"{row['saved_eur']:,.2f} | {row['oracle_share_%']:.1f} % | "
            f"{row['reduction_%']:.1f} % | {row['oracle_share_no_wear_%']:.1f} % | "
            f"{row['ms_per_step']:.2f} |"
        )
    return "\n".join(lines)


def rule_against_none(frame: pd.DataFrame) -> pd.DataFrame:
    """Days where ``rule`` cost more than ``none`` (J, beyond 1e-6 EUR)."""
    wide = frame.pivot_table(index=["site", "day"], columns="controller", values="cost_eur")
    excess = wide["rule"] - wide["none"]
    return excess[excess > 1e-6].rename("rule_minus_none_eur").reset_index()


def losses_gap(frame: pd.DataFrame) -> tuple[float, float, int]:
    """Oracle's realised J minus its LP value: total (EUR), share of none's J, days."""
    oracle = frame[frame["controller"] == "oracle"]
    none = frame[frame["controller"] == "none"]
    gap = float((oracle["cost_eur"] - oracle["planned_eur"]).sum())
    return gap, gap / float(none["cost_eur"].abs().sum()), len(oracle)


def shipped_rule_vs_none(out: Path) -> pd.DataFrame:
    """``cost_scored_eur`` of ``none`` and ``rule`` in the mosaik run of shipped scenarios."""
    from twin.run import run_scenario

    rows = []
    for name in SHIPPED:
        path = ROOT / "scenarios" / f"{name}.yaml"
        costs = {}
        for controller in ("none", "rule"):
            scenario = load_scenario(path, [f"controller={controller}"])
            run = run_scenario(scenario, out / name / controller)
            costs[controller] = run.kpis["cost_scored_eur"]
        rows.append(
            {"scenario": name, **costs, "rule_minus_none_eur": costs["rule"] - costs["none"]}
        )
        print(f"  shipped {name}: none {costs['none']:.3f}, rule {costs['rule']:.3f}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=DEFAULT_TIMESTEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--base", default=DEFAULT_BASE, choices=BASES)
    parser.add_argument("--policy", help="evaluate this policy (a file or builtin)")
    parser.add_argument("--sites", type=int, default=24)
    parser.add_argument("--days-per-case", type=int, default=8)
    parser.add_argument("--eval-seed", type=int, default=2026)
    parser.add_argument(
        "--forecast-seed",
        type=int,
        help="seed of the day-ahead forecast's errors (default: the scenario's, 0)",
    )
    parser.add_argument(
        "--controllers",
        help=f"comma-separated subset of {','.join(CONTROLLERS)} (none and oracle always run)",
    )
    parser.add_argument(
        "--regression", action="store_true", help="add MPC with the regression forecaster (slow)"
    )
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="only rule against none in the mosaik runs of the shipped scenarios",
    )
    parser.add_argument("--csv", type=Path, default=HERE / "out" / "controllers.csv")
    parser.add_argument(
        "--reuse", type=Path, help="an earlier --csv: its rows of controllers other than rl"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.shipped:
        with tempfile.TemporaryDirectory() as tmp:
            shipped = shipped_rule_vs_none(Path(tmp))
        print("\nshipped scenarios, mosaik run, KPI cost_scored_eur:")
        print(shipped.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
        return

    controllers = tuple(c for c in CONTROLLERS if args.regression or c != "mpc_regression")
    if args.controllers:
        chosen = {*args.controllers.split(","), "none", "oracle"}
        unknown = chosen - set(CONTROLLERS)
        if unknown:
            parser.error(f"--controllers: unknown {', '.join(sorted(unknown))}")
        controllers = tuple(c for c in CONTROLLERS if c in chosen)
    policy = args.policy
    if policy is None and "rl" in controllers:
        result = train_policy(
            None,
            HERE / "out" / "generalist_sac.zip",
            timesteps=args.timesteps,
            seed=args.seed,
            threads=args.threads,
            base=args.base,
            progress=False,
        )
        policy = str(result.policy)
        print(
            f"training: {args.timesteps} steps (base {args.base}, seed {args.seed}, "
            f"{args.threads} thread) in {result.seconds:.0f} s wall, "
            f"{result.cpu_seconds:.0f} s CPU, set-up included"
        )
    scenario = load_scenario(ROOT / "scenarios" / "microgrid_day.yaml")
    _, validation = split_days(365)
    stride = max(len(validation) // args.days_per_case, 1)
    day_case = HeldOut(
        "shipped microgrid_day",
        Domain.fixed(scenario),
        Domain.fixed(scenario).fixed_site,  # type: ignore[arg-type]
        validation[::stride][: args.days_per_case],
        "the shipped scenario's site, validation days",
    )
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            training_distribution_case(args.sites, args.eval_seed),
            *held_out_sites(Path(tmp), args.days_per_case),
            microgrid_day_big_battery(scenario, args.days_per_case),
            day_case,
        ]
        reuse = pd.read_csv(args.reuse) if args.reuse else None
        scores, names = [], []
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        for case in cases:
            found = run_case(case, controllers, policy, reuse, forecast_seed=args.forecast_seed)
            sites = getattr(case, "sites", [case.site] * len(case.days))
            names += [site.name for site in sites for _ in controllers]
            scores += found
            frame = pd.DataFrame([vars(s) for s in scores])
            frame["site_name"] = names
            frame.to_csv(args.csv, index=False)  # after every case: a partial run is kept

    table = summarise(frame)
    pd.set_option("display.width", 250)
    print(f"\npolicy: {policy}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print("\n" + markdown(table))
    held = table[
        (table["controller"] == "rl")
        & ~table["case"].isin(["training distribution", "shipped microgrid_day"])
    ]
    shares = held["oracle_share_%"].round(1).tolist()
    print(f"\nrl share of oracle savings, held-out sites (pooled per case): {shares}")
    worse = rule_against_none(frame)
    n_days = len(frame) // len(controllers)
    print(f"days where rule cost more than none: {len(worse)} of {n_days}")
    if len(worse):
        print(worse.to_string(index=False))
    gap, share, days = losses_gap(frame)
    print(
        f"oracle realised J minus its LP value (grid losses): {gap:.2f} EUR over {days} days "
        f"({100 * share:.2f} % of none's |J|)"
    )


if __name__ == "__main__":
    main()
