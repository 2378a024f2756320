r"""What a battery should do, step by step, from its measurements and the EMS's setpoints.

:class:`BatteryTracker` keeps, per battery (vectorised):

- the **commanded power**: the EMS setpoint limited by the rating and the SoC window
  (:func:`models.battery.limit_power` at the measured SoC and nameplate capacity);
- the **expected temperature**: the battery model's lumped thermal step
  (:func:`models.battery.thermal_step`) driven by the losses of the *measured* power,
  started at the first measured temperature;
- the **integrated SoC** (Coulomb counting): the last estimate plus the cell energy of
  the measured power over the nameplate capacity, pulled towards each report with the
  gain :math:`\\Delta t / \\tau` (:math:`\\tau` = 6 h), so that a misreport shows as a
  residual for hours and sensor noise does not accumulate; a SoC jump back towards the
  estimate (the misreport ends) restarts it from the report;
- the **capacity estimate**: between two SoC reports that differ by at least
  ``swing`` (0.2), the cell energy throughput :math:`\\Delta E` and the SoC change
  :math:`\\Delta S` form one segment; the capacity is the weighted least-squares slope
  :math:`\\hat C = \\sum \\lambda^{n-i} \\Delta E_i \\Delta S_i /
  \\sum \\lambda^{n-i} \\Delta S_i^2` (forgetting factor :math:`\\lambda` = 0.8 per
  segment). A segment with a SoC jump (a reported change farther than
  ``jump_tol + 0.5 |expected change|`` from what the power explains) is dropped: a
  misreport does not bias the capacity.

References
----------
.. [1] Plett, G. L., "Recursive approximate weighted total least squares estimation of
   battery cell total capacity", J. Power Sources 196(4), 2011.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.battery import limit_power, thermal_step
from twin.diagnostics.arrays import fill_nan, ratio

__all__ = ["BatteryTracker"]


class BatteryTracker:
    """Expected power, temperature, SoC and the capacity estimate of ``B`` batteries.

    Parameters
    ----------
    ratings : list of dict
        Per battery: ``e_kwh``, ``p_max_kw``, ``eta_ch``, ``eta_dis``, ``soc_min``,
        ``soc_max``, ``soh_init``, ``t_ambient_c``, ``r_th_k_per_kw``,
        ``c_th_kj_per_k`` (:class:`twin.diagnostics.catalogue.Asset` ratings).
    step_s : int
        Step length (s).
    """

    tau_s = 6 * 3600.0
    swing = 0.2
    forgetting = 0.8
    jump_tol = 0.03
    edge = 0.02

    def __init__(self, ratings: list[dict[str, Any]], step_s: int) -> None:
        def arr(name: str, default: float) -> np.ndarray:
            return np.array([float(r.get(name, default)) for r in ratings])

        n = len(ratings)
        self.e_kwh = arr("e_kwh", np.nan)
        self.capacity = self.e_kwh * arr("soh_init", 1.0)
        self.p_max = arr("p_max_kw", np.nan)
        self.eta_ch, self.eta_dis = arr("eta_ch", 0.95), arr("eta_dis", 0.95)
        self.soc_min, self.soc_max = arr("soc_min", 0.0), arr("soc_max", 1.0)
        self.t_amb = arr("t_ambient_c", 25.0)
        self.r_th, self.c_th = arr("r_th_k_per_kw", 10.0), arr("c_th_kj_per_k", 200.0)
        self.step_s = step_s
        self.dt_h = step_s / 3600.0
        self.gain = min(1.0, step_s / self.tau_s)
        nan = np.full(n, np.nan)
        self.soc_last = nan.copy()  # last reported SoC
        self.soc_int = nan.copy()
        self.t_exp = nan.copy()
        self.e_since = np.zeros(n)  # cell energy since the last SoC report (kWh)
        self.anchor = nan.copy()
        self.e_seg = np.zeros(n)
        self.sxy = np.zeros(n)
        self.sxx = np.zeros(n)
        self.jump = np.zeros(n, dtype=bool)
        self.p_cmd = nan.copy()
        self.soc_residual = nan.copy()
        self._open_residual = np.zeros(n)  # the residual at the last SoC report

    @property
    def capacity_kwh(self) -> np.ndarray:
        """Estimated usable capacity (kWh), NaN until a swing is measured."""
        return ratio(self.sxy, self.sxx)

    def commanded(self, p_set_kw: np.ndarray) -> np.ndarray:
        """The setpoint limited by the rating and the SoC window at the estimated SoC.

        The SoC now is the last report carried on by the energy measured since (a lost
        SoC report does not leave it behind; the BMS limits by the SoC it reports). NaN where it is
        within ``edge`` (0.02) of the window's limit the setpoint moves towards (the
        true SoC may already be at the limit).
        """
        p_set = fill_nan(p_set_kw)
        soc = self.soc_last + self.e_since / self.capacity
        limited = limit_power(
            p_set,
            fill_nan(soc, 0.5),
            self.capacity,
            self.p_max,
            self.soc_min,
            self.soc_max,
            self.eta_ch,
            self.eta_dis,
            self.dt_h,
        )
        # at the edge of the SoC window the measured SoC cannot tell whether the battery
        # may still move towards it: no expectation there
        edge = ((soc <= self.soc_min + self.edge) & (p_set > 0)) | (
            (soc >= self.soc_max - self.edge) & (p_set < 0)
        )
        rated = np.clip(p_set, -self.p_max, self.p_max)
        self.p_cmd = np.where(np.isnan(soc), rated, np.where(edge, np.nan, limited))
        return self.p_cmd

    def update(
        self, p_kw: np.ndarray, soc: np.ndarray, t_c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step with the held measured power and this step's SoC/temperature reports.

        ``soc`` and ``t_c`` are the states at the end of the step (NaN: no report).
        Returns the expected SoC and temperature at the end of the step.
        """
        p = fill_nan(p_kw)
        de = np.where(p > 0, -p / self.eta_dis, -p * self.eta_ch) * self.dt_h
        loss = np.where(p > 0, p * (1.0 / self.eta_dis - 1.0), -p * (1.0 - self.eta_ch))
        self.t_exp = np.where(
            np.isnan(self.t_exp),
            t_c,
            thermal_step(self.t_exp, self.t_amb, loss, self.r_th, self.c_th, self.step_s),
        )
        self.e_since += de
        self.e_seg += de
        soc_exp = self.soc_int + de / self.capacity
        fresh = np.isfinite(soc)
        first = fresh & np.isnan(self.soc_int)
        residual = soc - soc_exp
        before = self._open_residual
        self._capacity(soc, fresh)
        # a jump back towards the integrated SoC ends a misreport: start again from it
        back = (
            self.jump & (np.abs(before) > self.jump_tol) & (np.sign(residual) == -np.sign(before))
        )
        self.soc_residual = np.where(fresh, np.where(back, 0.0, residual), np.nan)
        self.soc_int = np.where(
            first | back,
            soc,
            np.where(fresh, soc_exp + self.gain * residual, soc_exp),
        )
        self._open_residual = np.where(fresh, self.soc_residual, before)
        return np.where(first | back, soc, soc_exp), self.t_exp

    def _capacity(self, soc: np.ndarray, fresh: np.ndarray) -> None:
        expected = self.e_since / self.capacity
        change = soc - self.soc_last
        self.jump = (
            fresh
            & np.isfinite(self.soc_last)
            & (np.abs(change - expected) > self.jump_tol + 0.5 * np.abs(expected))
        )
        restart = fresh & (np.isnan(self.anchor) | self.jump)
        swing = soc - self.anchor
        done = fresh & ~restart & (np.abs(swing) >= self.swing)
        lam = self.forgetting
        self.sxy = np.where(done, lam * self.sxy + self.e_seg * swing, self.sxy)
        self.sxx = np.where(done, lam * self.sxx + swing**2, self.sxx)
        new_anchor = restart | done
        self.anchor = np.where(new_anchor, soc, self.anchor)
        self.e_seg = np.where(new_anchor, 0.0, self.e_seg)
        self.soc_last = np.where(fresh, soc, self.soc_last)
        self.e_since = np.where(fresh, 0.0, self.e_since)
