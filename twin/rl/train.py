"""Training an RL dispatch policy with stable-baselines3 on the environment.

The default trains the generalist: every episode is a day of a site drawn from the
domain of :mod:`twin.rl.domain` (its training days only). Given a scenario, it trains
on that scenario's own site. Training is reproducible bit for bit for a given seed
and thread count; :data:`DEFAULT_TIMESTEPS` is the one default the CLI, the benchmark
and the documentation use.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.rl.domain import Domain, DomainConfig, split_days
from twin.rl.env import MicrogridEnv
from twin.rl.plan import DEFAULT_REPLAN, FORECAST_BASES, MPC_BASES
from twin.scenario import ScenarioBase

__all__ = [
    "ALGORITHMS",
    "DEFAULT_BASE",
    "DEFAULT_SCALE",
    "DEFAULT_TIMESTEPS",
    "TrainResult",
    "git_state",
    "train_policy",
]

ALGORITHMS = ("sac", "ppo")
#: SAC's initial entropy coefficient (tuned automatically from there): rewards are per
#: step at full power, a few tenths on a typical step.
INITIAL_ENTROPY_COEF = 0.1
#: The initial policy's standard deviation before the tanh squashing (log).
INITIAL_LOG_STD = -2.0
#: Environment steps of a default training run (see BENCHMARKS.md for its time).
DEFAULT_TIMESTEPS = 30_000
#: The largest correction of a default training run (fraction of the rating): on the
#: mpc base a full-rating correction undid more than it learned (BENCHMARKS.md).
DEFAULT_SCALE = 0.1
#: What the action of a default training run corrects (:class:`twin.rl.env.MicrogridEnv`).
DEFAULT_BASE = "day_ahead"
#: Site-days the policy is scored on during training, and how often (steps).
SELECT_DAYS = 48
SELECT_EVERY = 5_000
#: Days of hindsight forecast factors a forecast base's actor is first fitted to.
IMITATION_DAYS = 200


@dataclass
class TrainResult:
    """Where training put its outputs, which days it used, and how long it took.

    ``seconds`` is wall time, ``cpu_seconds`` the process's CPU time (on a shared
    machine the fairer measure), both with the environment's set-up included.
    """

    policy: Path
    curve_csv: Path
    curve_png: Path
    train_days: list[int]
    validation_days: list[int]
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=cwd)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out at ``cwd`` (the package) and whether tracked files differ.

    A policy trained from a working tree with uncommitted changes was not trained by
    the code of its commit: ``git_dirty`` in the training record says so. Both are None
    outside a git checkout (an installed package).
    """
    cwd = cwd or Path(__file__).parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit or not commit.strip():
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return commit.strip(), None if status is None else bool(status.strip())


def train_policy(
    source: ScenarioBase | DomainConfig | None,
    out: str | Path,
    *,
    timesteps: int = DEFAULT_TIMESTEPS,
    days: int | None = None,
    seed: int = 0,
    algo: str = "sac",
    progress: bool = True,
    gamma: float = 0.99,
    threads: int = 1,
    base: str = DEFAULT_BASE,
    replan: str = DEFAULT_REPLAN,
    defer_grid: bool = True,
    scale: float = DEFAULT_SCALE,
    select_days: int = SELECT_DAYS,
    select_every: int = SELECT_EVERY,
    imitation_days: int = IMITATION_DAYS,
) -> TrainResult:
    """Train a policy on training days and save it (with its metadata) to ``out``.

    Parameters
    ----------
    source : ScenarioBase or DomainConfig or None
        A scenario (its own site), a domain configuration, or None (the default
        domain: the generalist).
    out : str or Path
        Policy file to write (``.zip``); ``<stem>_train.json``, ``_curve.csv`` and
        ``_curve.png`` are written beside it.
    timesteps : int
        Environment steps.
    days : int, optional
        Use only this many training days (spread over the year).
    seed : int
        Seed of the networks, the replay and the site/day draws.
    algo : str
        ``sac`` or ``ppo``.
    progress : bool
        Show a progress bar.
    gamma : float
        Discount factor.
    threads : int
        torch threads (1 is fastest on a busy machine: more threads stalled SAC's
        small updates).
    base : str
        What the action corrects: MPC's day-ahead forecast (``day_ahead``) or its
        persistence forecast (``forecast``), or the setpoint of ``mpc``,
        ``plan`` or ``rule`` (:class:`MicrogridEnv`).
    replan : str
        How often the ``mpc`` base re-plans (saved in the metadata: the controller
        re-plans as often).
    defer_grid : bool
        The ``mpc`` base's least-commitment tie-break (saved in the metadata).
    scale : float
        The largest correction as a fraction of the rating (saved in the metadata).
    select_days : int
        Site-days (training days, their own sites) the policy is scored on every
        ``select_every`` steps; the best scored is saved (:mod:`twin.rl.selection`),
        with SAC each output of its correction scaled by the factor of
        :data:`twin.rl.selection.SHRINKS` that scores best there. 0, or a run shorter
        than two such periods, saves the last policy as trained.
    select_every : int
        Steps between two scores.
    imitation_days : int
        SAC on a forecast base: days of the base's dispatch whose hindsight
        forecast factors the actor is fitted to before SAC starts
        (:mod:`twin.rl.imitation`), at most as many as the run has days of steps;
        fewer than 2 start from the base.

    Returns
    -------
    TrainResult
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    commit, dirty = git_state()  # the code that trains, before anything can change it
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.monitor import Monitor

    from twin.rl.selection import SHRINKS, BestPolicy, selection_days

    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {', '.join(ALGORITHMS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    train_days, val_days = split_days(365)
    if days is not None:
        stride = max(len(train_days) // days, 1)
        train_days = train_days[::stride][:days]
    fit = None
    if isinstance(source, ScenarioBase):
        domain, config, name = Domain.fixed(source), None, source.name
    else:
        config = source or DomainConfig()
        domain, name = Domain.training(config), "domain"
    env = Monitor(
        MicrogridEnv(
            domain, days=train_days, base=base, replan=replan, defer_grid=defer_grid, scale=scale
        )
    )
    env.reset(seed=seed)
    env.action_space.seed(seed)
    kwargs = dict(
        seed=seed, device="cpu", verbose=0, gamma=gamma, policy_kwargs={"net_arch": [64, 64]}
    )
    if algo == "sac":
        model = SAC(
            "MlpPolicy",
            env,
            learning_starts=1000,
            batch_size=256,
            ent_coef=f"auto_{INITIAL_ENTROPY_COEF}",
            # the day is the task: its end is terminal, not a time limit to bootstrap past
            replay_buffer_kwargs={"handle_timeout_termination": False},
            **kwargs,
        )
        _start_at_the_base(model.actor)
        # no more days of imitation than the run has days of training
        imitation_days = min(imitation_days, timesteps // env.unwrapped.steps_per_day)
        if base in FORECAST_BASES and imitation_days >= 2:
            fit = _imitate(domain, train_days, imitation_days, seed, model.actor, base, progress)
    else:
        model = PPO("MlpPolicy", env, n_steps=960, batch_size=96, **kwargs)
    selection = None
    if select_days > 0 and timesteps >= 2 * select_every:
        days_for_selection = selection_days(env.unwrapped, train_days, select_days)
        selection = BestPolicy(
            days_for_selection,
            select_every,
            score_start=fit is not None,
            shrinks=SHRINKS if algo == "sac" else (),
        )
    model.learn(total_timesteps=timesteps, progress_bar=progress, callback=selection)
    if selection is not None:
        selection.restore()
    model.save(out)
    policy = out if out.suffix == ".zip" else out.with_suffix(".zip")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started

    rewards = np.asarray(env.get_episode_rewards(), dtype=float)
    lengths = np.asarray(env.get_episode_lengths(), dtype=int)
    curve = pd.DataFrame({"timesteps": np.cumsum(lengths), "episode_reward": rewards})
    curve_csv = policy.with_name(policy.stem + "_curve.csv")
    curve.to_csv(curve_csv, index=False)
    curve_png = policy.with_name(policy.stem + "_curve.png")
    _plot_curve(curve, curve_png, algo)
    meta = {
        "algo": algo,
        "seed": seed,
        "timesteps": timesteps,
        "threads": threads,
        "base": base,
        "replan": replan if base in MPC_BASES else None,
        "defer_grid": defer_grid if base in MPC_BASES else None,
        "scale": scale,
        "gamma": gamma,
        "forecast_error": list(env.unwrapped.forecast_error),
        "forecast_trust": env.unwrapped.forecast_trust,
        "selection": selection.summary() if selection is not None else None,
        "imitation": {"days": imitation_days, **vars(fit)} if fit is not None else None,
        "wall_time_s": round(seconds, 1),
        "cpu_time_s": round(cpu_seconds, 1),
        "source": name,
        "domain": config.as_dict() if config is not None else None,
        "domain_digest": config.digest() if config is not None else None,
        "observation_size": int(env.observation_space.shape[0]),
        "git_commit": commit,
        "git_dirty": dirty,
        "train_days": train_days,
        "validation_days": val_days,
    }
    policy.with_name(policy.stem + "_train.json").write_text(json.dumps(meta, indent=1))
    return TrainResult(policy, curve_csv, curve_png, train_days, val_days, seconds, cpu_seconds)


def _imitate(
    domain: Domain,
    days: list[int],
    n_days: int,
    seed: int,
    actor: Any,
    base: str,
    progress: bool,
) -> Any:
    """Fit ``actor`` to the hindsight forecast factors of ``n_days`` days (seed + 1)."""
    from twin.rl.imitation import collect, fit_actor

    env = MicrogridEnv(domain, days=days, base=base)
    observations, targets, day_of = collect(env, n_days, seed + 1, progress)
    for site in domain.bases:
        site.grid.reset()  # the training environment starts from a fresh grid as before
    return fit_actor(actor, observations, targets, day_of, seed)


def _start_at_the_base(actor: Any) -> None:
    """Residual learning starts at the base: zero mean correction, little noise.

    The actor's output layers are zeroed (mean action 0 whatever the observation) and
    its log standard deviation set to :data:`INITIAL_LOG_STD`, so the first policy is
    the base controller itself (the rule or the day plan) and exploration around it
    is small; a randomly initialised actor costs far more than it learns at first.
    """
    import torch

    with torch.no_grad():
        actor.mu.weight.zero_()
        actor.mu.bias.zero_()
        actor.log_std.weight.zero_()
        actor.log_std.bias.fill_(INITIAL_LOG_STD)


def _plot_curve(curve: pd.DataFrame, path: Path, algo: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(curve["timesteps"], curve["episode_reward"], alpha=0.3, label="episode")
    window = max(len(curve) // 20, 1)
    ax.plot(
        curve["timesteps"],
        curve["episode_reward"].rolling(window).mean(),
        label=f"rolling mean ({window} episodes)",
    )
    ax.set_xlabel("training steps")
    ax.set_ylabel("episode reward: saving vs idle battery\n(in steps at full power, mean price)")
    ax.set_title(f"{algo.upper()} training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
