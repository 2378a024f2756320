"""Training an RL dispatch policy with stable-baselines3 on the environment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.rl.env import MicrogridEnv, split_days
from twin.scenario import ScenarioBase

__all__ = ["ALGORITHMS", "TrainResult", "train_policy"]

ALGORITHMS = ("sac", "ppo")


@dataclass
class TrainResult:
    """Where training put its outputs, and which days it used."""

    policy: Path
    curve_csv: Path
    curve_png: Path
    train_days: list[int]
    validation_days: list[int]


def train_policy(
    scenario: ScenarioBase,
    out: str | Path,
    *,
    timesteps: int = 100_000,
    days: int | None = None,
    seed: int = 0,
    algo: str = "sac",
    progress: bool = True,
    gamma: float = 0.99,
) -> TrainResult:
    """Train a policy on training days of the scenario's year and save it to ``out``.

    Validation days (every fifth day, see :func:`twin.rl.env.split_days`) are never
    seen in training. ``days`` limits training to that many training days (spread
    over the year). Training is reproducible for a given ``seed``.
    """
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.monitor import Monitor

    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {', '.join(ALGORITHMS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    train_days, val_days = split_days(365)
    if days is not None:
        stride = max(len(train_days) // days, 1)
        train_days = train_days[::stride][:days]
    env = Monitor(MicrogridEnv(scenario, days=train_days))
    env.reset(seed=seed)
    env.action_space.seed(seed)
    kwargs = dict(
        seed=seed, device="cpu", verbose=0, gamma=gamma, policy_kwargs={"net_arch": [64, 64]}
    )
    if algo == "sac":
        model = SAC("MlpPolicy", env, learning_starts=1000, batch_size=256, **kwargs)
    else:
        model = PPO("MlpPolicy", env, n_steps=960, batch_size=96, **kwargs)
    model.learn(total_timesteps=timesteps, progress_bar=progress)
    model.save(out)
    policy = out if out.suffix == ".zip" else out.with_suffix(".zip")

    rewards = np.asarray(env.get_episode_rewards(), dtype=float)
    lengths = np.asarray(env.get_episode_lengths(), dtype=int)
    curve = pd.DataFrame({"timesteps": np.cumsum(lengths), "episode_reward_eur": rewards})
    curve_csv = policy.with_name(policy.stem + "_curve.csv")
    curve.to_csv(curve_csv, index=False)
    curve_png = policy.with_name(policy.stem + "_curve.png")
    _plot_curve(curve, curve_png, algo)
    meta = {
        "algo": algo,
        "seed": seed,
        "timesteps": timesteps,
        "train_days": train_days,
        "validation_days": val_days,
        "scenario": scenario.name,
    }
    policy.with_name(policy.stem + "_train.json").write_text(json.dumps(meta, indent=1))
    return TrainResult(policy, curve_csv, curve_png, train_days, val_days)


def _plot_curve(curve: pd.DataFrame, path: Path, algo: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(curve["timesteps"], curve["episode_reward_eur"], alpha=0.3, label="episode")
    window = max(len(curve) // 20, 1)
    ax.plot(
        curve["timesteps"],
        curve["episode_reward_eur"].rolling(window).mean(),
        label=f"rolling mean ({window} episodes)",
    )
    ax.set_xlabel("training steps")
    ax.set_ylabel("episode reward: saving vs no battery (EUR/day)")
    ax.set_title(f"{algo.upper()} training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
