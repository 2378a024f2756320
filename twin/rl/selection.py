"""Keeping the best policy of a training run, judged by the scored cost on selection days.

SAC's policy does not improve monotonically: on the ``forecast`` base its share of the
oracle's saving rose and fell by a few points between checkpoints of one run
(BENCHMARKS.md). So training evaluates the deterministic policy every ``every`` steps on
a fixed set of selection days and keeps the parameters with the lowest total scored
cost :math:`J` (early stopping on held-out data, the usual practice).

The selection days are training days (never the validation days the benchmark scores
on) of sites drawn with their own seed, so the benchmark's held-out days and sites stay
unseen. The base itself (zero action) is scored once on the same days for reference.

**How much of the correction to keep.** A residual policy's correction is only worth
what it gains over its base, and a correction learned on the training domain can do
harm off it: on the ``day_ahead`` base the actor fitted to hindsight factors
(:mod:`twin.rl.imitation`) trusted the day-ahead forecast further than the base does, and
on a held-out feeder one draw of the forecast's errors cost it 16 points of the oracle's
saving against the base (BENCHMARKS.md). So, with ``shrinks``, each output of the kept
policy's correction (on a forecast base: the PV factor, then the load factor) is scaled
by each factor of :data:`SHRINKS` in turn, the others at their choice so far (its
pre-squash mean times the factor: 1 as trained, 0 the base's), and the factor that
scores best on the same days is kept: shrinkage chosen on days the correction was not
fitted to (the same days chose the checkpoint), as a ridge penalty's weight is, and per
output because one output's correction can pay while the other's does not. The policy
saved acts with the factors; the training record lists every score.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from twin.rl.domain import Site
from twin.rl.env import MicrogridEnv

__all__ = ["SHRINKS", "BestPolicy", "SelectionDays", "scale_correction", "selection_days"]

#: Seed of the selection sites, apart from the training draws and the benchmark's.
SELECTION_SEED = 7919
#: Factors on the kept policy's correction scored on the selection days (1: as trained,
#: 0: the base); the first of equal scores is kept. A finer grid (0.75, 0.25 as well)
#: chose the same factors for two seeds at twice the scoring time (BENCHMARKS.md).
SHRINKS = (1.0, 0.5, 0.0)


@dataclass
class SelectionDays:
    """Site-days a policy is judged on, and the environment it acts in."""

    env: MicrogridEnv
    cases: list[tuple[Site, int, int]]

    def cost(self, act: Any) -> float:
        """Total scored cost (EUR) of ``act(observation) -> action`` over the days."""
        total = 0.0
        for site, day, forecast_seed in self.cases:
            options = {"site": site, "day": day, "forecast_seed": forecast_seed}
            obs, _ = self.env.reset(options=options)
            done = False
            while not done:
                obs, _, _, done, info = self.env.step(act(obs))
                total += info["cost_eur"]
        for base in self.env.domain.bases:
            base.grid.reset()  # the training environment finds its grid as it left it
        return total


def selection_days(env: MicrogridEnv, days: list[int], n: int) -> SelectionDays:
    """``n`` site-days of ``env``'s domain on ``days``, drawn with :data:`SELECTION_SEED`.

    Each with its day-ahead forecast's seed: every policy scored meets the same errors.
    """
    rng = np.random.default_rng(SELECTION_SEED)
    cases = [
        (env.domain.sample(rng), int(rng.choice(days)), int(rng.integers(2**31))) for _ in range(n)
    ]
    twin = MicrogridEnv(
        env.domain,
        days=days,
        base=env.base_kind,
        replan=env.replan,
        defer_grid=env.defer_grid,
        scale=env.scale,
        forecast_error=env.forecast_error,
        forecast_trust=env.forecast_trust,
    )
    return SelectionDays(twin, cases)


def scale_correction(actor: Any, mean_layer: dict[str, Any], factors: np.ndarray) -> None:
    """Set SAC's ``actor`` mean layer to ``mean_layer``, output j times ``factors[j]``.

    The deterministic action j becomes ``tanh(factors[j] * z_j)`` of its pre-squash mean
    ``z_j``: the same sign, smaller, and exactly 0 (the base's) at a factor of 0.

    Parameters
    ----------
    actor : stable_baselines3.sac.policies.Actor
        SAC's actor; its ``mu`` layer is overwritten.
    mean_layer : dict
        The ``mu`` layer's state dict as trained (``weight``, ``bias``).
    factors : numpy.ndarray
        One factor per action output.
    """
    import torch

    column = torch.as_tensor(np.asarray(factors, dtype=np.float32))
    weight, bias = mean_layer["weight"], mean_layer["bias"]
    actor.mu.load_state_dict({"weight": weight * column[:, None], "bias": bias * column})


@dataclass
class _Check:
    timesteps: int
    cost_eur: float


class BestPolicy(BaseCallback):
    """Scores the policy every ``every`` steps (at the next day's end), keeps the best.

    Parameters
    ----------
    days : SelectionDays
        Where the policy is scored.
    every : int
        Training steps between two scores (the last step is always scored).
    score_start : bool
        Score the policy training starts from too (a fitted start, not the base).
    shrinks : tuple of float
        Factors on the kept policy's correction to score (SAC's actor only; see the
        module notes); empty keeps the correction as trained.
    """

    def __init__(
        self,
        days: SelectionDays,
        every: int,
        score_start: bool = False,
        shrinks: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.days = days
        self.every = every
        self.score_start = score_start
        self.shrinks = shrinks
        self.shrink_checks: list[tuple[list[float], float]] = []
        self.shrink: list[float] | None = None
        self.next_check = every
        self.total = 0
        self.checks: list[_Check] = []
        self.best: dict[str, Any] | None = None
        self.base_eur = float("nan")

    def _score(self) -> None:
        def act(obs: np.ndarray) -> np.ndarray:
            return self.model.predict(obs, deterministic=True)[0]

        cost = self.days.cost(act)
        if not self.checks or cost < min(c.cost_eur for c in self.checks):
            self.best = copy.deepcopy(self.model.policy.state_dict())
        self.checks.append(_Check(int(self.num_timesteps), cost))

    def _on_training_start(self) -> None:
        zero = np.zeros(self.days.env.action_space.shape, dtype=np.float32)
        self.base_eur = self.days.cost(lambda obs: zero)
        self.total = int(self.locals.get("total_timesteps", 0))
        if self.score_start:
            self._score()

    def _on_step(self) -> bool:
        day_over = bool(np.any(self.locals.get("dones", [False])))
        due = self.num_timesteps >= self.next_check or self.num_timesteps >= self.total
        if day_over and due:
            self._score()
            self.next_check = self.num_timesteps + self.every
        return True

    def _on_training_end(self) -> None:
        if not self.checks or self.checks[-1].timesteps != self.num_timesteps:
            self._score()  # the last policy, mid-day

    def restore(self) -> None:
        """Put the best parameters scored back into the model, with the best shrink."""
        if self.best is None:
            return
        self.model.policy.load_state_dict(self.best)
        if not self.shrinks:
            return
        actor = getattr(self.model, "actor", None)
        if actor is None or not hasattr(actor, "mu"):
            raise ValueError("shrinks: only SAC's actor (a mean layer mu) can be shrunk")
        trained = {name: value.clone() for name, value in actor.mu.state_dict().items()}
        chosen = np.ones(actor.mu.out_features)
        scored = {
            tuple(chosen): min(c.cost_eur for c in self.checks),  # the kept policy
            tuple(0.0 * chosen): self.base_eur,  # no correction: the base, scored at the start
        }

        def act(obs: np.ndarray) -> np.ndarray:
            return self.model.predict(obs, deterministic=True)[0]

        for j in range(len(chosen)):  # one output at a time, the others at their choice
            for factor in self.shrinks:
                factors = chosen.copy()
                factors[j] = factor
                if tuple(factors) not in scored:
                    scale_correction(actor, trained, factors)
                    scored[tuple(factors)] = self.days.cost(act)
            chosen[j] = min(
                self.shrinks,
                key=lambda f: scored[(*chosen[:j], f, *chosen[j + 1 :])],
            )
        self.shrink_checks = [(list(factors), cost) for factors, cost in scored.items()]
        self.shrink = chosen.tolist()
        scale_correction(actor, trained, chosen)

    def summary(self) -> dict[str, Any]:
        """What the selection saw: the base's cost, every score and the one kept."""
        chosen = min(self.checks, key=lambda c: c.cost_eur) if self.checks else None
        return {
            "days": len(self.days.cases),
            "seed": SELECTION_SEED,
            "base_eur": self.base_eur,
            "checks": [vars(c) for c in self.checks],
            "chosen_timesteps": chosen.timesteps if chosen else None,
            "shrinks": [{"factors": f, "cost_eur": c} for f, c in self.shrink_checks],
            "chosen_shrink": self.shrink,
        }
