"""A head start for the ``forecast`` base: fit the actor to hindsight forecast factors.

On training days the environment knows how the rest of the day turned out, so the
action that would have made the persistence forecast right is known afterwards: the
ratio of the PV (and of the load) energy still to come today to yesterday's over the
same hours (:func:`hindsight_action`). Before SAC starts, the actor is fitted to those
actions by least squares from what it observes (behaviour cloning of a hindsight
forecast: the conditional mean of the right correction given what is measured so far).
SAC then tunes the policy on the scored cost itself, and the run keeps whichever policy
scores best on the selection days (:mod:`twin.rl.selection`), the fitted start included.

Samples come from whole days with the base's dispatch (zero action), and the fit is
validated on days it did not see (a split by day, not by step: neighbouring steps of a
day are nearly the same sample); the epoch with the lowest validation loss is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.forecast import energy_log_ratio
from twin.rl.env import MicrogridEnv
from twin.rl.forecast_action import FACTOR_RANGE

__all__ = ["FitReport", "collect", "fit_actor", "hindsight_action"]


def hindsight_action(env: MicrogridEnv) -> np.ndarray:
    """The action whose factors make the forecast of the rest of today's energy right.

    For the step about to be taken: PV and load energy from the next step to midnight,
    today's over yesterday's, as an action in -1..1 (log ratio over log range; on the
    ``day_ahead`` base, over the day-ahead forecast's ratio).
    """
    spd = env.steps_per_day
    i = env.k - env.k0
    ratios = []
    for series in (env.site_pv_kw, env.site_load_kw):
        # floored as the observation's ratios: no ratio made from a dark evening's noise
        ratios.append(
            energy_log_ratio(series[spd + i + 1 :], series[i + 1 : spd], float(series[:spd].sum()))
        )
    assert env.forecaster is not None, "a forecast base's environment"
    # on the day_ahead base the action corrects the day-ahead forecast's factors
    return np.clip((np.array(ratios) - env.forecaster.prior) / np.log(FACTOR_RANGE), -1.0, 1.0)


def collect(
    env: MicrogridEnv, days: int, seed: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations, hindsight actions and day numbers of ``days`` days with zero action.

    Sites and days are drawn by the environment from ``seed``; ``progress`` shows a bar.
    """
    from tqdm import tqdm

    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    observations, targets, day_of = [], [], []
    for d in tqdm(range(days), desc="fitted start: days", disable=not progress, leave=False):
        obs, _ = env.reset(seed=seed if d == 0 else None)
        done = False
        while not done:
            observations.append(obs)
            targets.append(hindsight_action(env))
            day_of.append(d)
            obs, _, _, done, _ = env.step(zero)
    return (
        np.asarray(observations, dtype=np.float32),
        np.asarray(targets, dtype=np.float32),
        np.asarray(day_of),
    )


@dataclass
class FitReport:
    """Mean squared error of the fitted actor, and of the zero action, on unseen days."""

    epochs: int
    validation_mse: float
    zero_mse: float


def fit_actor(
    actor: Any,
    observations: np.ndarray,
    targets: np.ndarray,
    day_of: np.ndarray,
    seed: int,
    epochs: int = 60,
    batch_size: int = 256,
) -> FitReport:
    """Fit SAC's actor's deterministic action (tanh of its mean) to ``targets``.

    A fifth of the days (drawn with ``seed``) validates; the best epoch's weights stay.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    days = np.unique(day_of)
    held = rng.choice(days, max(len(days) // 5, 1), replace=False)
    is_val = np.isin(day_of, held)
    x = torch.as_tensor(observations)
    y = torch.as_tensor(targets)
    train = torch.as_tensor(np.flatnonzero(~is_val))
    val = torch.as_tensor(np.flatnonzero(is_val))
    params = [*actor.latent_pi.parameters(), *actor.mu.parameters()]
    optimiser = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)

    def mse(index: torch.Tensor) -> float:
        with torch.no_grad():
            return float(((torch.tanh(actor.mu(actor.latent_pi(x[index]))) - y[index]) ** 2).mean())

    best, best_state, best_epoch = mse(val), copy.deepcopy(actor.state_dict()), 0
    for epoch in range(1, epochs + 1):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            predicted = torch.tanh(actor.mu(actor.latent_pi(x[batch])))
            loss = ((predicted - y[batch]) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        score = mse(val)
        if score < best:
            best, best_state, best_epoch = score, copy.deepcopy(actor.state_dict()), epoch
    actor.load_state_dict(best_state)
    return FitReport(best_epoch, best, float((y[val] ** 2).mean()))
