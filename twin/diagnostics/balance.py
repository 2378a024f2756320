r"""The site's power balance as a witness: a residual from the plant or from a sensor.

Kirchhoff holds at the point of connection: the import equals what the site's assets
draw plus the grid losses,

.. math:: b = P_{POC} + \sum_i P_i \approx P_{loss}

with every power measured (injections > 0). The losses change slowly, so the balance
stays near its recent baseline :math:`\bar b` (an EW mean over ``tau_s``, frozen while
the balance is off by more than ``tolerance_kw``). A *physical* change of an asset (a
load spike, shading) moves its own reading and the POC's alike: :math:`b - \bar b`
stays near 0. A *sensor* fault moves only the one reading: :math:`b - \bar b` follows
the asset's residual. :meth:`Balance.share` is that ratio per asset, about 1 for a
sensor fault and about 0 for a physical one.
"""

from __future__ import annotations

import math

import numpy as np

from twin.diagnostics.arrays import ratio

__all__ = ["Balance"]


class Balance:
    """The site's balance residual against its slowly moving baseline.

    Parameters
    ----------
    step_s : int
        Step length (s).
    tau_s : float
        Time constant of the baseline (s), default 2 h.
    tolerance_kw : float
        Deviations larger than this do not move the baseline.
    smooth_s : float
        The deviation is an EW mean with gain ``min(1, step_s / smooth_s)``: at short
        steps the meters' noise averages out over about a minute.
    """

    def __init__(
        self,
        step_s: int,
        tau_s: float = 7200.0,
        tolerance_kw: float = 1.0,
        smooth_s: float = 60.0,
    ) -> None:
        self.alpha = min(1.0, step_s / tau_s)
        self.smooth = min(1.0, step_s / smooth_s)
        self.tolerance_kw = tolerance_kw
        self.baseline = math.nan
        self.deviation = math.nan

    def update(self, p_poc_kw: float, p_assets_kw: float) -> float:
        """One step with the held POC reading and the sum of the assets' held readings.

        Returns the deviation from the baseline (kW).
        """
        b = float(p_poc_kw) + float(p_assets_kw)
        if math.isnan(b):
            self.deviation = math.nan
        elif math.isnan(self.baseline):
            self.baseline, self.deviation = b, 0.0
        else:
            now = b - self.baseline
            previous = now if math.isnan(self.deviation) else self.deviation
            self.deviation = previous + self.smooth * (now - previous)
            if abs(now) < self.tolerance_kw:
                self.baseline += self.alpha * now
        return self.deviation

    def share(self, residual_kw: np.ndarray, floor_kw: np.ndarray) -> np.ndarray:
        """Balance deviation over each asset's residual (NaN where ``|residual| < floor``)."""
        share = ratio(np.full(np.shape(residual_kw), self.deviation), residual_kw)
        return np.where(np.abs(residual_kw) >= floor_kw, share, np.nan)
