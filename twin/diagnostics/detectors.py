r"""Residual detectors: normalised residuals, two-sided CUSUM and EWMA, vectorised.

Every sensor with an expectation gets a normalised residual

.. math:: z = \\frac{x_{meas} - x_{exp}}{\\sigma}, \\qquad
    \\sigma = \\sqrt{\\sigma_{sensor}(x)^2 + (u_{rel} x_{exp})^2 + u_{abs}^2}

where :math:`\\sigma_{sensor}` is the sensor class's error at the reading
(:func:`twin.diagnostics.catalogue.sensor_sigma`) and :math:`u_{rel}, u_{abs}` the
model's uncertainty for that quantity (:data:`MODEL_UNCERTAINTY`: what the twin's
expectation may miss without a fault, e.g. the PV transposition or a load's deviation
from its profile).

Two charts run on :math:`z` (one value per sensor, NaN residuals skip the update):

- the two-sided CUSUM of Page [1]_, :math:`S^+_k = \\max(0, S^+_{k-1} + z_k - k)`,
  :math:`S^-_k = \\max(0, S^-_{k-1} - z_k - k)`, alarm when either exceeds :math:`h`;
- the EWMA of Roberts [2]_, :math:`w_k = \\lambda z_k + (1 - \\lambda) w_{k-1}`, alarm
  when :math:`|w_k| > L \\sqrt{\\lambda / (2 - \\lambda)}` (its asymptotic limit).

Defaults (:class:`DetectorSettings`): ``k = 1``, ``h = 10``, ``lambda = 0.3``,
``L = 5``. Siegmund's approximation [3]_ gives an in-control average run length of
about 10^9 steps for ``k = 1, h = 10`` on N(0, 1) residuals (the goal is one false alarm
per site-week for ~50 sensors), while a shift of 12 sigma (a 30 % PV loss at midday)
alarms at its first step; the EWMA (in-control run length about 1.7 * 10^6 steps at
``L = 5``, lambda = 0.3, simulated on 4 * 10^7 N(0, 1) steps) catches smaller sustained
shifts sooner.
Both charts reset per sensor when the engine clears an alert (:meth:`Residuals.reset`).

References
----------
.. [1] Page, E. S., "Continuous inspection schemes", Biometrika 41, 1954.
.. [2] Roberts, S. W., "Control chart tests based on geometric moving averages",
   Technometrics 1(3), 1959.
.. [3] Siegmund, D., "Sequential Analysis", Springer, 1985, ch. II (ARL of the CUSUM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.diagnostics.arrays import ratio

__all__ = ["MODEL_UNCERTAINTY", "Cusum", "DetectorSettings", "Ewma", "Residuals", "normalised"]

#: ``(u_rel, u_abs)`` of the twin's expectation per quantity (abs in the quantity's unit).
MODEL_UNCERTAINTY: dict[str, tuple[float, float]] = {
    "p_kw": (0.03, 0.05),
    "q_kvar": (0.03, 0.05),
    "v_pu": (0.0, 0.002),
    "f_hz": (0.0, 0.01),
    "t_c": (0.0, 0.5),
    "soc": (0.0, 0.01),
}


#: E|z1 - z2| for independent standard normal z1, z2: 2 / sqrt(pi).
_MEAN_ABS_DIFF = 2.0 / float(np.sqrt(np.pi))


@dataclass(frozen=True)
class DetectorSettings:
    """Parameters of the residual charts (see the module docstring)."""

    k: float = 1.0
    h: float = 10.0
    lam: float = 0.3
    L: float = 5.0
    #: An open alert clears once every residual it rests on is back within this many
    #: sigma (for ``AlertSettings.clear_steps`` steps).
    clear_z: float = 3.0

    @property
    def ewma_limit(self) -> float:
        """Asymptotic EWMA control limit in units of z."""
        return self.L * float(np.sqrt(self.lam / (2.0 - self.lam)))


def normalised(
    measured: np.ndarray,
    expected: np.ndarray,
    sigma_sensor: np.ndarray,
    u_rel: np.ndarray,
    u_abs: np.ndarray,
) -> np.ndarray:
    """Normalised residual ``(measured - expected) / sigma`` (NaN where either is NaN)."""
    sigma = np.sqrt(sigma_sensor**2 + (u_rel * expected) ** 2 + u_abs**2)
    return ratio(measured - expected, sigma)


class Cusum:
    """Two-sided tabular CUSUM over ``n`` series (see the module docstring)."""

    def __init__(self, n: int, k: float, h: float) -> None:
        self.k, self.h = k, h
        self.pos = np.zeros(n)
        self.neg = np.zeros(n)

    def update(self, z: np.ndarray) -> np.ndarray:
        """Add one residual per series (NaN: no update); return the alarms (bool)."""
        ok = np.isfinite(z)
        zz = np.where(ok, z, 0.0)
        self.pos = np.where(ok, np.maximum(0.0, self.pos + zz - self.k), self.pos)
        self.neg = np.where(ok, np.maximum(0.0, self.neg - zz - self.k), self.neg)
        return (self.pos > self.h) | (self.neg > self.h)

    @property
    def statistic(self) -> np.ndarray:
        """Signed statistic: ``S+`` where it is the larger, else ``-S-``."""
        return np.where(self.pos >= self.neg, self.pos, -self.neg)

    def reset(self, mask: np.ndarray) -> None:
        """Restart the series where ``mask`` is true."""
        self.pos[mask] = 0.0
        self.neg[mask] = 0.0


class Ewma:
    """EWMA of ``n`` series with the asymptotic limit (see the module docstring)."""

    def __init__(self, n: int, lam: float, limit: float) -> None:
        self.lam, self.limit = lam, limit
        self.mean = np.zeros(n)
        #: EW mean of the squared deviation from the EWMA: the residual's spread.
        self.var = np.ones(n)

    def update(self, z: np.ndarray) -> np.ndarray:
        """Add one residual per series (NaN: no update); return the alarms (bool)."""
        ok = np.isfinite(z)
        zz = np.where(ok, z, 0.0)
        dev = zz - self.mean
        self.mean = np.where(ok, self.mean + self.lam * dev, self.mean)
        self.var = np.where(ok, (1.0 - self.lam) * self.var + self.lam * dev**2, self.var)
        return np.abs(self.mean) > self.limit

    def reset(self, mask: np.ndarray) -> None:
        """Restart the series where ``mask`` is true."""
        self.mean[mask] = 0.0
        self.var[mask] = 1.0


class Residuals:
    """Residual, CUSUM and EWMA of every sensor with an expectation.

    Parameters
    ----------
    quantities : list of str
        The quantity of every sensor (selects :data:`MODEL_UNCERTAINTY`).
    settings : DetectorSettings
        Chart parameters.
    """

    def __init__(self, quantities: list[str], settings: DetectorSettings) -> None:
        n = len(quantities)
        unc = np.array([MODEL_UNCERTAINTY.get(q, (0.0, 0.0)) for q in quantities]).reshape(n, 2)
        self.u_rel, self.u_abs = unc[:, 0], unc[:, 1]
        self.cusum = Cusum(n, settings.k, settings.h)
        self.ewma = Ewma(n, settings.lam, settings.ewma_limit)
        self.z = np.full(n, np.nan)
        self._last = np.full(n, np.nan)
        #: The latest finite residual of every sensor (held between reports).
        self.z_last = self._last
        self._lam = settings.lam
        #: EW mean of |z_k - z_(k-1)| / E|N(0,1) - N(0,1)|: 1 for healthy residuals,
        #: the residual's noise level relative to the expected one (a step counts once).
        self.spread = np.ones(n)

    def update(
        self, measured: np.ndarray, expected: np.ndarray, sigma_sensor: np.ndarray
    ) -> np.ndarray:
        """One step: the residuals of the fresh readings; return the alarms (bool)."""
        self.z = z = normalised(measured, expected, sigma_sensor, self.u_rel, self.u_abs)
        dz = np.abs(z - self._last) / _MEAN_ABS_DIFF
        ok = np.isfinite(dz)
        self.spread = np.where(ok, self.spread + self._lam * (dz - self.spread), self.spread)
        self._last = np.where(np.isfinite(z), z, self._last)
        self.z_last = self._last
        return self.cusum.update(z) | self.ewma.update(z)

    def reset(self, mask: np.ndarray) -> None:
        """Restart both charts where ``mask`` is true."""
        self.cusum.reset(mask)
        self.ewma.reset(mask)
        self.spread[mask] = 1.0
