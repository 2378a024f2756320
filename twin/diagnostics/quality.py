"""Sensor data quality, step by step: gaps, stale (stuck) values and excess noise.

The checks are those of pvanalytics (``pvanalytics.quality.gaps``), computed causally
so that the online engine and the offline loop give the same flags:

- **stale**: pvanalytics' :func:`~pvanalytics.quality.gaps.stale_values_diff` with
  ``mark="end"`` flags report ``i`` when the ``window`` reports ending at ``i`` are all
  close (``numpy.allclose``, ``rtol``/``atol``) to the first of them. That flag needs
  only the past, so :class:`Quality` computes it causally from a run-length counter
  (equal to the library's on the same series: a test). A sensor whose readings
  may repeat without a fault (its noise is below its resolution: a reading of 0 kW at
  night) is not informative: its window grows until a healthy sensor would repeat that
  long with a probability per report below its share of the site's false-flag budget
  (:meth:`Quality.window`: ``false_per_week`` flags per site-week over all sensors and
  all their reports of a week, so the false flags do not grow with the report rate;
  0.005: for 66 sensors at 15-minute reports 1.1e-7 per report), up to
  ``max_window``. Where the twin expects the value to move (its expectation
  changed by more than ``moved_sigmas`` sigma over ``window`` reports) ``window``
  reports that do not move are enough.
- **gap**: no report for more than ``gap_reports`` reporting intervals (the streaming
  form of pvanalytics' completeness score: a lost report every thousand is normal).
- Both flags need at least ``min_flag_s`` seconds (a 1 s sensor that misses two
  reports, or repeats four, is not yet suspicious): the minimum window of a sensor is
  ``max(window, ceil(min_flag_s / interval))`` reports and its ``max_window`` grows in
  proportion.
- **noise**: the spread of the normalised residual (``Residuals.spread`` of
  :mod:`twin.diagnostics.detectors`: the EW mean of its step-to-step change, 1 when
  healthy) above ``noise_ratio``; only for sensors with an expectation.

Per sensor the data-quality index is 0 while stale or in a gap, otherwise falls
linearly from 1 at a residual spread of ``noise_ratio / 2`` to 0 at ``noise_ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.diagnostics.arrays import fill_nan, ratio, unit

__all__ = ["Quality", "QualitySettings"]


@dataclass(frozen=True)
class QualitySettings:
    """Parameters of the data-quality checks (see the module docstring)."""

    window: int = 4
    max_window: int = 24
    rtol: float = 1e-5
    atol: float = 1e-8
    false_per_week: float = 0.005
    min_flag_s: float = 60.0
    moved_sigmas: float = 6.0
    gap_reports: int = 2
    noise_ratio: float = 4.0


_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


class Quality:
    """Streaming gap, stale and noise flags of ``n`` sensors.

    The stale test keeps, per sensor, the run of reports close to the run's first
    (``anchor``) and the range of the twin's expectation over that run: O(n) per step.
    A run of ``N`` reports ending now is exactly pvanalytics' window of ``N`` reports
    all close to their first, where closeness is equality up to ``rtol``/``atol`` (a
    test compares both).

    Parameters
    ----------
    report_steps : numpy.ndarray
        Steps between two reports of every sensor (1: every step).
    settings : QualitySettings
        Check parameters.
    step_s : float
        Step length (s).
    """

    def __init__(self, report_steps: np.ndarray, settings: QualitySettings, step_s: float) -> None:
        s = self.s = settings
        n = len(report_steps)
        self.report_steps = np.asarray(report_steps, int)
        interval_s = self.report_steps * float(step_s)
        min_steps = int(np.ceil(s.min_flag_s / float(step_s)))
        self.gap_after = np.maximum(s.gap_reports * self.report_steps, min_steps) - 1
        #: per sensor: the shortest stale window (reports) and the longest one
        self.min_window = np.maximum(s.window, np.ceil(s.min_flag_s / interval_s)).astype(int)
        self.max_window = np.ceil(s.max_window * self.min_window / s.window).astype(int)
        reports_per_week = 7 * 86400.0 / interval_s
        self._log_p_false = np.log(s.false_per_week / (max(n, 1) * reports_per_week))
        self.anchor = np.full(n, np.nan)
        self.run = np.zeros(n, dtype=int)
        self.exp_low = np.full(n, np.nan)
        self.exp_high = np.full(n, np.nan)
        self.missing = np.zeros(n, dtype=int)
        self.seen = np.zeros(n, dtype=bool)
        self.stale = np.zeros(n, dtype=bool)
        self.gap = np.zeros(n, dtype=bool)

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
            Reports in a row that make a stale flag (:meth:`window`).
        expected, sigma : numpy.ndarray, optional
            The twin's expectation of every reading (NaN: none) and the sensors' noise:
            readings that repeat for ``window`` (the setting) reports while the
            expectation moved by more than ``moved_sigmas`` sigma are stale too.
        """
        s = self.s
        fresh = reading == reading  # not NaN
        self.seen |= fresh
        self.missing = np.where(fresh, 0, self.missing + 1)
        self.gap = self.seen & (self.missing > self.gap_after)
        close = np.abs(reading - self.anchor) <= s.atol + s.rtol * np.abs(self.anchor)
        extend = fresh & close
        restart = fresh & ~close
        self.run = np.where(extend, self.run + 1, np.where(restart, 1, self.run))
        self.anchor = np.where(restart, reading, self.anchor)
        stale = (self.run >= window) & (window <= self.max_window)
        if expected is not None and sigma is not None:
            e = np.where(fresh, expected, np.nan)
            self.exp_low = np.where(restart, e, np.fmin(self.exp_low, e))
            self.exp_high = np.where(restart, e, np.fmax(self.exp_high, e))
            moved = fill_nan(self.exp_high - self.exp_low) > s.moved_sigmas * sigma
            stale |= (self.run >= self.min_window) & moved
        # a flag holds while the run goes on, and between reports (the last report decides)
        stale |= self.stale & extend
        self.stale = np.where(fresh, stale, self.stale & ~self.gap)

    def window(self, sigma: np.ndarray, resolution: np.ndarray, noisy: np.ndarray) -> np.ndarray:
        r"""Reports in a row that make a stale flag, per sensor.

        A healthy sensor with Gaussian noise :math:`\sigma` rounded to a resolution
        :math:`r` repeats its reading with probability about
        :math:`\mathrm{erf}(r / (2 \sqrt{2} \sigma)) \le p = r / (\sqrt{2 \pi} \sigma)`;
        the window is the smallest :math:`N \ge` ``min_window`` with :math:`p^{N-1}`
        below the sensor's false-flag probability per report (``false_per_week`` over
        the site's reports of a week; the bound :math:`p` errs towards longer windows),
        at most ``max_window`` (``max_window + 1``, i.e. never, for a sensor without
        noise: ``noisy`` false).
        """
        never = self.max_window + 1
        p = np.minimum(ratio(resolution, _SQRT_2PI * sigma), 0.999999)
        with_p = np.ceil(self._log_p_false / np.log(np.maximum(p, 1e-300))) + 1
        n = np.where(p > 0, with_p, self.min_window)
        n = np.where(noisy & (p == p), n, never)
        return np.minimum(np.maximum(n, self.min_window), never).astype(int)

    def index(self, spread: np.ndarray) -> np.ndarray:
        """Data-quality index per sensor from the flags and the residual spread (NaN: none)."""
        ratio = self.s.noise_ratio
        noise = unit(2.0 - 2.0 * fill_nan(spread) / ratio)
        return np.where(self.stale | self.gap, 0.0, noise)
