"""Stationary batteries: energy balance, limits, lumped thermal model and ageing.

Sign convention: ``p_kw`` > 0 is discharge (power into the bus), < 0 is charge.
``soc`` (0..1) is the stored energy over the usable capacity ``e_kwh * soh``.
State outputs (``soc``, ``soh``, ``t_c``, ``e_kwh``) are values at the *end* of the step;
power outputs are averages over the step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port, clip, differs

__all__ = [
    "SECONDS_PER_YEAR",
    "Battery",
    "ageing_rate",
    "calendar_fade_at_ref",
    "limit_power",
    "temperature_factor",
    "thermal_step",
]

SECONDS_PER_YEAR = 365.25 * 86400.0


def limit_power(
    p_set_kw: np.ndarray,
    soc: np.ndarray,
    capacity_kwh: np.ndarray,
    p_max_kw: np.ndarray,
    soc_min: np.ndarray,
    soc_max: np.ndarray,
    eta_ch: np.ndarray,
    eta_dis: np.ndarray,
    dt_h: float,
) -> np.ndarray:
    r"""Clip a power setpoint to the converter rating and the SoC window.

    The largest discharge keeps ``soc >= soc_min`` at the end of the step:

    .. math:: P_{dis,max} = (SoC - SoC_{min}) E \eta_{dis} / \Delta t

    and the largest charge keeps ``soc <= soc_max``:
    :math:`P_{ch,max} = (SoC_{max} - SoC) E / (\eta_{ch} \Delta t)`.

    Returns
    -------
    numpy.ndarray
        Feasible power in kW (> 0 discharge).
    """
    p_dis_max = np.maximum(soc - soc_min, 0.0) * capacity_kwh * eta_dis / dt_h
    p_ch_max = np.maximum(soc_max - soc, 0.0) * capacity_kwh / eta_ch / dt_h
    upper = np.minimum(p_max_kw, p_dis_max)
    lower = -np.minimum(p_max_kw, p_ch_max)
    return clip(p_set_kw, lower, upper)


def thermal_step(
    t_c: np.ndarray,
    t_ambient_c: np.ndarray,
    p_loss_kw: np.ndarray,
    r_th_k_per_kw: np.ndarray,
    c_th_kj_per_k: np.ndarray,
    dt_s: float,
) -> np.ndarray:
    r"""Exact step of a lumped (one-node RC) thermal model under constant losses.

    .. math:: C \dot T = P_{loss} - (T - T_{amb}) / R

    Returns
    -------
    numpy.ndarray
        Temperature (degC) at the end of the step.
    """
    t_steady = t_ambient_c + r_th_k_per_kw * p_loss_kw
    tau_s = r_th_k_per_kw * c_th_kj_per_k
    return t_steady + (t_c - t_steady) * np.exp(-dt_s / tau_s)


def ageing_rate(
    t_c: np.ndarray,
    calendar_life_years: np.ndarray,
    soh_eol: np.ndarray,
    t_ref_c: float = 25.0,
) -> np.ndarray:
    """Calendar fade per second: linear to end of life, doubling every 10 K.

    The Arrhenius dependence is taken in its common "doubles every 10 K" form.

    References
    ----------
    .. [1] Xu, B. et al., "Modeling of Lithium-Ion Battery Degradation for Cell Life
       Assessment", IEEE Trans. Smart Grid 9(2), 2018.
    """
    return calendar_fade_at_ref(calendar_life_years, soh_eol) * temperature_factor(t_c, t_ref_c)


def calendar_fade_at_ref(calendar_life_years: np.ndarray, soh_eol: np.ndarray) -> np.ndarray:
    """Calendar fade per second at the reference temperature (linear to end of life)."""
    return (1.0 - soh_eol) / (calendar_life_years * SECONDS_PER_YEAR)


def temperature_factor(t_c: np.ndarray, t_ref_c: float = 25.0) -> np.ndarray:
    """How much faster the cells age at ``t_c`` than at ``t_ref_c``: doubling every 10 K."""
    return 2.0 ** ((t_c - t_ref_c) / 10.0)


class Battery(Model):
    """A fleet of batteries behind bidirectional converters.

    Unit parameters: ``e_kwh`` (nominal capacity), ``p_max_kw`` (converter rating,
    both directions), ``eta_ch``/``eta_dis`` (one-way efficiencies), ``soc_min``,
    ``soc_max``, ``soc_init``, ``soh_init``, ``t_init_c``, ``t_ambient_c``,
    ``r_th_k_per_kw``, ``c_th_kj_per_k``, ``cycle_life_efc`` (equivalent full cycles
    to end of life), ``calendar_life_years`` (at 25 degC), ``soh_eol``, and the thermal
    protection ``t_derate_c`` / ``t_trip_c``: above ``t_derate_c`` the rating falls
    linearly to zero at ``t_trip_c`` (the converter trips), judged on the temperature
    at the start of the step.

    Modifier inputs (faults): ``derate`` (converter availability), ``cooling_factor``
    (thermal resistance multiplier) and ``capacity_factor`` (usable capacity; when it
    changes the stored energy is kept and the SoC rescaled).
    """

    kind = "battery"
    inputs = {
        "p_set_kw": Port("kW", "power setpoint, > 0 discharge"),
        "derate": Port(
            "1", "available fraction of the converter rating (0 = tripped)", default=1.0
        ),
        "cooling_factor": Port(
            "1", "multiplier on the thermal resistance (> 1: cooling lost)", default=1.0
        ),
        "capacity_factor": Port("1", "usable fraction of the capacity (a fade step)", default=1.0),
    }
    outputs = {
        "p_kw": Port(
            "kW", "power into the bus (> 0 discharge), average over the step", sensor="power"
        ),
        "soc": Port("1", "state of charge", state=True, sensor="soc"),
        "soh": Port("1", "state of health (usable / nominal capacity)", state=True, sensor="soh"),
        "t_c": Port("degC", "lumped cell temperature", state=True, sensor="temperature"),
        "e_kwh": Port("kWh", "stored energy", state=True),
        "p_loss_kw": Port("kW", "conversion losses"),
        "power_avail": Port("1", "available fraction of the rating (thermal derating x derate)"),
        "tripped": Port("1", "1 while the converter is off (over-temperature or trip)"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        for name in (
            "e_kwh",
            "p_max_kw",
            "eta_ch",
            "eta_dis",
            "soc_min",
            "soc_max",
            "t_ambient_c",
            "r_th_k_per_kw",
            "c_th_kj_per_k",
            "cycle_life_efc",
            "calendar_life_years",
            "soh_eol",
        ):
            setattr(self, name, self.param(name))
        self.t_derate_c = np.array([float(u.get("t_derate_c", 45.0)) for u in units])
        self.t_trip_c = np.array([float(u.get("t_trip_c", 55.0)) for u in units])
        self._capacity_factor = np.ones(self.n)
        self.soc = self.param("soc_init")
        self.soh = self.param("soh_init")
        self.t_c = self.param("t_init_c")
        # constants of the step's formulas, computed once (the same operations, same bits)
        self._derate_span = np.maximum(self.t_trip_c - self.t_derate_c, 1e-9)
        self._loss_dis = 1.0 / self.eta_dis - 1.0
        self._loss_ch = 1.0 - self.eta_ch
        self._two_e_kwh = 2.0 * self.e_kwh
        self._eol_fade = 1.0 - self.soh_eol
        self._calendar_fade = calendar_fade_at_ref(self.calendar_life_years, self.soh_eol)

    def state(self) -> dict[str, np.ndarray]:
        """SoC, SoH, temperature and stored energy now."""
        return {
            "soc": self.soc.copy(),
            "soh": self.soh.copy(),
            "t_c": self.t_c.copy(),
            "e_kwh": self.soc * self.e_kwh * self.soh * self._capacity_factor,
        }

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Apply the setpoints over the step, within limits, and age the cells."""
        dt_h = dt_s / 3600.0
        factor = inputs.get("capacity_factor", self._capacity_factor)
        if factor is not self._capacity_factor and differs(factor, self._capacity_factor):
            # stored energy is kept: the same kWh in a smaller usable capacity
            self.soc = clip(self.soc * self._capacity_factor / factor, 0.0, 1.0)
            self._capacity_factor = factor.copy()
        capacity = self.e_kwh * self.soh * self._capacity_factor
        thermal = clip((self.t_trip_c - self.t_c) / self._derate_span, 0.0, 1.0)
        avail = thermal * clip(inputs.get("derate", 1.0), 0.0, 1.0)
        p = limit_power(
            inputs["p_set_kw"],
            self.soc,
            capacity,
            self.p_max_kw * avail,
            self.soc_min,
            self.soc_max,
            self.eta_ch,
            self.eta_dis,
            dt_h,
        )
        discharging = p > 0.0
        # Energy change inside the cells (kWh): losses on the way in and on the way out.
        de_kwh = np.where(discharging, -p / self.eta_dis, -p * self.eta_ch) * dt_h
        p_loss = np.where(discharging, p * self._loss_dis, -p * self._loss_ch)
        self.soc = clip(self.soc + de_kwh / capacity, 0.0, 1.0)
        t_mean = self.t_c
        r_th = self.r_th_k_per_kw * inputs.get("cooling_factor", 1.0)
        self.t_c = thermal_step(self.t_c, self.t_ambient_c, p_loss, r_th, self.c_th_kj_per_k, dt_s)
        efc = np.abs(de_kwh) / self._two_e_kwh
        fade = self._eol_fade * efc / self.cycle_life_efc
        # ageing_rate at the step's mean temperature, its constant part computed once
        fade += self._calendar_fade * temperature_factor(0.5 * (t_mean + self.t_c)) * dt_s
        self.soh = self.soh - fade
        return {
            "p_kw": p,
            **self.state(),  # the states at the step's end, as state() reports them
            "p_loss_kw": p_loss,
            "power_avail": avail,
            "tripped": (avail <= 0.0).astype(float),
        }
