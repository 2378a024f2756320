"""What an RL policy observes: only what the controller could measure or knows.

One builder serves the training environment and the controller in the mosaik run, so
the policy sees the same features in both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PRICE_LOOKAHEAD_H", "ObservationBuilder"]

#: Hours ahead at which the (published) import price is observed.
PRICE_LOOKAHEAD_H = (0, 1, 2, 4, 8, 12)


class ObservationBuilder:
    """Builds observation vectors.

    Features: SoC per battery, the rule's setpoint per battery (in units of its rating),
    PV and load power (scaled), import prices now and ahead, time of day (sin, cos) and
    the fraction of the day elapsed.

    Parameters
    ----------
    times_local : pandas.DatetimeIndex
        Local time of every step the builder may be asked about.
    price_import_eur_kwh : numpy.ndarray
        Import price of every step (same length).
    step_s : int
        Step length in seconds.
    p_scale_kw : float
        Power scale (PV rating or peak load) that brings powers near 0..1.
    """

    def __init__(
        self,
        times_local: pd.DatetimeIndex,
        price_import_eur_kwh: np.ndarray,
        step_s: int,
        p_scale_kw: float,
    ) -> None:
        self.prices = np.asarray(price_import_eur_kwh, dtype=float)
        hour = times_local.hour.to_numpy() + times_local.minute.to_numpy() / 60.0
        self.angle = 2 * np.pi * hour / 24.0
        self.day_fraction = hour / 24.0
        self.offsets = np.array([int(h * 3600 // step_s) for h in PRICE_LOOKAHEAD_H])
        self.p_scale = float(p_scale_kw)

    def size(self, n_batteries: int) -> int:
        """Length of the observation vector."""
        return 2 * n_batteries + 2 + len(self.offsets) + 3

    def build(
        self, k: int, soc: np.ndarray, base: np.ndarray, pv_kw: float, load_kw: float
    ) -> np.ndarray:
        """Observation at step ``k`` (``base``: rule setpoints / rating; ``load_kw`` > 0)."""
        ahead = np.clip(k + self.offsets, 0, len(self.prices) - 1)
        return np.concatenate(
            [
                np.asarray(soc, dtype=float),
                np.asarray(base, dtype=float),
                [pv_kw / self.p_scale, load_kw / self.p_scale],
                self.prices[ahead],
                [np.sin(self.angle[k]), np.cos(self.angle[k]), self.day_fraction[k]],
            ]
        ).astype(np.float32)
