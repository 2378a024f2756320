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
    PV and load power (scaled), yesterday's PV and load energy from this time of day to
    midnight (a persistence forecast of the rest of the day, from metered history),
    import prices now and ahead, time of day (sin, cos) and the fraction of the day
    elapsed.

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
    pv_kw, load_kw : numpy.ndarray
        Metered site PV and load (> 0 consuming) power from one day *before* the first
        step to the last one (length: steps + one day).
    """

    def __init__(
        self,
        times_local: pd.DatetimeIndex,
        price_import_eur_kwh: np.ndarray,
        step_s: int,
        p_scale_kw: float,
        pv_kw: np.ndarray,
        load_kw: np.ndarray,
    ) -> None:
        self.prices = np.asarray(price_import_eur_kwh, dtype=float)
        hour = times_local.hour.to_numpy() + times_local.minute.to_numpy() / 60.0
        self.angle = 2 * np.pi * hour / 24.0
        self.day_fraction = hour / 24.0
        self.offsets = np.array([int(h * 3600 // step_s) for h in PRICE_LOOKAHEAD_H])
        self.p_scale = float(p_scale_kw)
        self.steps_per_day = 86400 // step_s
        if len(pv_kw) != len(self.prices) + self.steps_per_day or len(load_kw) != len(pv_kw):
            raise ValueError("pv_kw and load_kw must cover one day before the first step")
        energy_scale = self.p_scale * 24.0 * 3600.0 / step_s  # kWh-steps of a full day
        self.pv_cum = np.concatenate([[0.0], np.cumsum(pv_kw)]) / energy_scale
        self.load_cum = np.concatenate([[0.0], np.cumsum(load_kw)]) / energy_scale
        self.to_midnight = np.rint((1.0 - self.day_fraction) * self.steps_per_day).astype(int)

    def size(self, n_batteries: int) -> int:
        """Length of the observation vector."""
        return 2 * n_batteries + 4 + len(self.offsets) + 3

    def build(
        self, k: int, soc: np.ndarray, base: np.ndarray, pv_kw: float, load_kw: float
    ) -> np.ndarray:
        """Observation at step ``k`` (``base``: rule setpoints / rating; ``load_kw`` > 0)."""
        ahead = np.clip(k + self.offsets, 0, len(self.prices) - 1)
        # History index k is the same time of day, one day earlier.
        end = k + self.to_midnight[k]
        rest_of_yesterday = [
            self.pv_cum[end] - self.pv_cum[k],
            self.load_cum[end] - self.load_cum[k],
        ]
        return np.concatenate(
            [
                np.asarray(soc, dtype=float),
                np.asarray(base, dtype=float),
                [pv_kw / self.p_scale, load_kw / self.p_scale],
                rest_of_yesterday,
                self.prices[ahead],
                [np.sin(self.angle[k]), np.cos(self.angle[k]), self.day_fraction[k]],
            ]
        ).astype(np.float32)
