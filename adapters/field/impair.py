"""Seeded impairments of the field stream: skew, dropouts, jitter, reordering, duplicates.

- **skew**: each gateway's clock is off by a constant, uniform in ``[-skew_s, skew_s]``;
  its payload times carry it (``t = t_true + skew``).
- **dropout**: a sample is not published with probability ``dropout``.
- **jitter**: each message leaves ``U(0, jitter_s)`` plant seconds after its time.
- **reorder**: a message is held back one more step with probability ``reorder``, so it
  leaves after later messages; records inside a gateway batch are shuffled.
- **duplicates**: a message is published twice (same payload) with probability
  ``duplicates``.
- **bad quality**: a sample is sent with quality ``q = 0`` (the meter's own "bad" flag,
  value as measured) with probability ``bad_quality``.

Messages are one per sensor and step (``topic``) or one per gateway and step (batches,
only the records not dropped; none when all are). Delays are in plant seconds (a wall
delay is that divided by the speed). Each impairment draws from its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adapters.field.errors import FieldError
from adapters.field.plan import Gateways

__all__ = ["Impairments", "Messages", "plan_messages"]


@dataclass(frozen=True)
class Impairments:
    """Impairment settings (shares are probabilities, 0..1; times plant seconds)."""

    jitter_s: float = 0.0
    reorder: float = 0.0
    duplicates: float = 0.0
    dropout: float = 0.0
    skew_s: float = 0.0
    seed: int = 0
    bad_quality: float = 0.0

    def check(self) -> None:
        """Raise :class:`FieldError` naming every bad setting."""
        problems = [
            f"--{name.replace('_', '-')}: expected 0..1, got {getattr(self, name)}"
            for name in ("reorder", "duplicates", "dropout", "bad_quality")
            if not 0.0 <= getattr(self, name) <= 1.0
        ]
        problems += [
            f"--{name.replace('_', '-')}: expected 0..86400, got {getattr(self, name)}"
            for name in ("jitter_s", "skew_s")
            if not 0.0 <= getattr(self, name) <= 86400.0
        ]
        if problems:
            raise FieldError("; ".join(problems))

    def rng(self, stream: int) -> np.random.Generator:
        """The random stream of one impairment."""
        return np.random.default_rng([self.seed, 1515, stream])


@dataclass
class Messages:
    """The messages of a run, one row each (arrays of equal length).

    ``step``: step index; ``unit``: sensor (topic format) or gateway index; ``delay_s``:
    plant seconds after the step's time it leaves; ``reordered``, ``copies`` (1 or 2).
    ``skew_s`` is per gateway, ``sent`` the sample mask (steps, sensors): not dropped;
    ``quality`` the quality flag each sample is sent with (steps, sensors; 1 good, 0 bad).
    """

    step: np.ndarray
    unit: np.ndarray
    delay_s: np.ndarray
    reordered: np.ndarray
    copies: np.ndarray
    skew_s: np.ndarray
    sent: np.ndarray
    quality: np.ndarray


def plan_messages(
    impair: Impairments,
    present: np.ndarray,
    gw: Gateways,
    step_s: float,
    batched: bool,
) -> Messages:
    """Draw the impairments and lay out the messages.

    Parameters
    ----------
    impair : Impairments
        Settings.
    present : numpy.ndarray
        (steps, sensors) bool: the sample has a true value.
    gw : Gateways
        The plan's gateways.
    step_s : float
        Plant seconds per step (a reordered message is held back one step).
    batched : bool
        One message per gateway and step (JSON array, SenML) instead of per sensor.
    """
    impair.check()
    steps, n = present.shape
    skew = impair.rng(1).uniform(-impair.skew_s, impair.skew_s, len(gw))
    if impair.skew_s == 0.0:
        skew = np.zeros(len(gw))
    sent = present & ~(impair.rng(2).random((steps, n)) < impair.dropout)
    if batched:
        has = np.logical_or.reduceat(sent, gw.starts[:-1], axis=1) if n else sent
        step, unit = np.nonzero(has)
    else:
        step, unit = np.nonzero(sent)
    m = len(step)
    delay = impair.rng(3).uniform(0.0, impair.jitter_s, m) if impair.jitter_s else np.zeros(m)
    reordered = impair.rng(4).random(m) < impair.reorder
    delay = delay + np.where(reordered, step_s, 0.0)
    copies = np.where(impair.rng(5).random(m) < impair.duplicates, 2, 1).astype(np.int8)
    quality = np.where(impair.rng(6).random((steps, n)) < impair.bad_quality, 0, 1)
    if m and not np.isfinite(delay).all():
        raise FieldError("impairments gave a non-finite delay")
    return Messages(step, unit, delay, reordered, copies, skew, sent, quality.astype(np.int8))
