"""Sensor data quality, step by step: gaps, stale (stuck) values and excess noise.

The checks are those of pvanalytics (``pvanalytics.quality.gaps``), computed causally
so that the online engine and the offline loop give the same flags:

- **stale**: pvanalytics' :func:`~pvanalytics.quality.gaps.stale_values_diff` with
  ``mark="end"`` flags report ``i`` when the ``window`` reports ending at ``i`` are all
  close (``numpy.allclose``, ``rtol``/``atol``) to the first of them. That flag needs
  only the past, so :class:`Quality` computes exactly it on a ring buffer of the last
  reports (equal to the library's on the same series: a test). A sensor whose readings
  may repeat without a fault (its noise is below its resolution: a reading of 0 kW at
  night) is not informative: its window grows until a healthy sensor would repeat that
  long with probability below ``p_false`` (:func:`stale_window`; 1e-7 per sensor and
  report: about one false flag a year for 60 sensors at 5-minute reports), up to
  ``max_window``. Where the twin expects the value to move (its expectation changed by
  more than ``moved_sigmas`` sigma over ``window`` reports) ``window`` reports that do
  not move are enough.
- **gap**: no report for more than ``gap_reports`` reporting intervals (the streaming
  form of pvanalytics' completeness score: a lost report every thousand is normal).
- **noise**: the spread of the normalised residual (``Residuals.spread`` of
  :mod:`twin.diagnostics.detectors`: the EW mean of its step-to-step change, 1 when
  healthy) above ``noise_ratio``; only for sensors with an expectation.

Per sensor the data-quality index is 0 while stale or in a gap, otherwise falls
linearly from 1 at a residual spread of ``noise_ratio / 2`` to 0 at ``noise_ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from twin.diagnostics.arrays import fill_nan, ratio

__all__ = ["Quality", "QualitySettings", "stale_window"]


@dataclass(frozen=True)
class QualitySettings:
    """Parameters of the data-quality checks (see the module docstring)."""

    window: int = 4
    max_window: int = 24
    rtol: float = 1e-5
    atol: float = 1e-8
    p_false: float = 1e-7
    moved_sigmas: float = 6.0
    gap_reports: int = 2
    noise_ratio: float = 4.0


def stale_window(
    sigma: np.ndarray, resolution: np.ndarray, noisy: np.ndarray, settings: QualitySettings
) -> np.ndarray:
    r"""Reports in a row that make a stale flag, per sensor.

    A healthy sensor with Gaussian noise :math:`\sigma` rounded to a resolution
    :math:`r` repeats its reading with probability about
    :math:`p = \mathrm{erf}(r / (2 \sqrt{2} \sigma))`; the window is the smallest
    :math:`N \ge` ``window`` with :math:`p^{N-1} <` ``p_false``, at most ``max_window``
    (``max_window + 1``, i.e. never, for a sensor without noise: ``noisy`` false).
    """
    never = settings.max_window + 1
    sigma = np.asarray(sigma, float)
    resolution = np.asarray(resolution, float)
    p = np.where(resolution > 0, erf(ratio(resolution, 2.0 * np.sqrt(2.0) * sigma)), 0.0)
    log_p = np.log(np.clip(p, 1e-300, 1.0 - 1e-16))
    n = np.where(p > 0, np.ceil(np.log(settings.p_false) / log_p) + 1, settings.window)
    n = np.where((p >= 1.0) | np.isnan(p) | ~np.asarray(noisy, bool), never, n)
    return np.clip(n, settings.window, never).astype(int)


class Quality:
    """Streaming gap, stale and noise flags of ``n`` sensors.

    Parameters
    ----------
    report_steps : numpy.ndarray
        Steps between two reports of every sensor (1: every step).
    settings : QualitySettings
        Check parameters.
    """

    def __init__(self, report_steps: np.ndarray, settings: QualitySettings) -> None:
        self.s = settings
        n = len(report_steps)
        self.report_steps = np.asarray(report_steps, int)
        self.buffer = np.full((n, settings.max_window), np.nan)
        self.expected = np.full((n, settings.max_window), np.nan)
        self.count = np.zeros(n, dtype=int)
        self.missing = np.zeros(n, dtype=int)
        self.seen = np.zeros(n, dtype=bool)
        self.stale = np.zeros(n, dtype=bool)
        self.stale_value = np.full(n, np.nan)
        self.gap = np.zeros(n, dtype=bool)
        self._cols = np.arange(settings.max_window)
        self._rows = np.arange(n)
        self.pos = np.zeros(n, dtype=int)

    def update(
        self,
        reading: np.ndarray,
        window: np.ndarray,
        expected: np.ndarray | None = None,
        sigma: np.ndarray | None = None,
    ) -> None:
        """One step.

        Parameters
        ----------
        reading : numpy.ndarray
            The report of every sensor (NaN: none).
        window : numpy.ndarray
            Reports in a row that make a stale flag (:func:`stale_window`).
        expected, sigma : numpy.ndarray, optional
            The twin's expectation of every reading (NaN: none) and the sensors' noise:
            readings that repeat for ``window`` (the setting) reports while the
            expectation moved by more than ``moved_sigmas`` sigma are stale too.
        """
        fresh = np.isfinite(reading)
        self.seen |= fresh
        self.missing = np.where(fresh, 0, self.missing + 1)
        self.gap = self.seen & (self.missing > self.s.gap_reports * self.report_steps - 1)
        if fresh.any():  # a ring buffer of the last reports per sensor
            rows = np.flatnonzero(fresh)
            self.buffer[rows, self.pos[rows]] = reading[rows]
            if expected is not None:
                self.expected[rows, self.pos[rows]] = expected[rows]
            self.pos[rows] = (self.pos[rows] + 1) % self.s.max_window
            self.count[rows] += 1
        stale = self._repeated(np.minimum(window, self.s.max_window)) & (
            window <= self.s.max_window
        )
        if expected is not None and sigma is not None:
            short = np.full(len(reading), self.s.window)
            inside = self._inside(short)
            exp = np.where(inside, self.expected, np.nan)
            moved = np.fmax.reduce(exp, axis=1) - np.fmin.reduce(exp, axis=1)
            stale |= self._repeated(short) & (fill_nan(moved) > self.s.moved_sigmas * sigma)
        # a flagged sensor stays flagged while it repeats its value
        same = np.abs(reading - self.stale_value) <= self.s.atol + self.s.rtol * np.abs(
            self.stale_value
        )
        stale |= self.stale & same
        # a flag holds between reports (the last report decides)
        self.stale = np.where(fresh, stale, self.stale & ~self.gap)
        self.stale_value = np.where(self.stale, np.where(fresh, reading, self.stale_value), np.nan)

    def _inside(self, w: np.ndarray) -> np.ndarray:
        """Mask of the last ``w`` reports of every sensor in the ring buffer."""
        age = (self.pos[:, None] - 1 - self._cols[None, :]) % self.s.max_window
        return age < w[:, None]

    def _repeated(self, w: np.ndarray) -> np.ndarray:
        """The last ``w`` reports all close to the first of them (pvanalytics' test)."""
        first = self.buffer[self._rows, (self.pos - w) % self.s.max_window][:, None]
        close = np.abs(self.buffer - first) <= self.s.atol + self.s.rtol * np.abs(first)
        return np.all(close | ~self._inside(w), axis=1) & (self.count >= w)

    def index(self, spread: np.ndarray) -> np.ndarray:
        """Data-quality index per sensor from the flags and the residual spread (NaN: none)."""
        ratio = self.s.noise_ratio
        noise = np.clip(2.0 - 2.0 * fill_nan(spread) / ratio, 0.0, 1.0)
        return np.where(self.stale | self.gap, 0.0, noise)
