"""A day-ahead plan the agent can follow or correct: one LP per day, persistence forecast.

At the start of every local day the agent's controller solves the dispatch LP of
:mod:`twin.control.lp` for the rest of the day with yesterday's net power as the
forecast (persistence) and the day's known prices, valuing the energy left at midnight
at the objective's terminal value. The plan's stored-energy trajectory is a feature of
the observation, and :func:`tracking_setpoint` the setpoint that follows it from the
measured state (the base the residual action corrects, see :mod:`twin.rl.baseline`).

The ``mpc`` base re-plans instead: :class:`twin.control.optimal.MPCController` with the
options of :func:`mpc_base_control` (persistence, the rest of the day, every
:data:`DEFAULT_REPLAN`, the least-commitment tie-break), the same LP as the ``mpc``
controller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.control.lp import DispatchProblem, LPError, solve_dispatch
from twin.objective import Objective

__all__ = [
    "DEFAULT_REPLAN",
    "FORECAST_BASES",
    "MPC_BASES",
    "day_plan",
    "mpc_base_control",
    "tracking_setpoint",
]

#: The bases whose action corrects MPC's forecast (:mod:`twin.rl.forecast_action`):
#: persistence (``forecast``) or the day-ahead forecast (``day_ahead``).
FORECAST_BASES = ("forecast", "day_ahead")
#: The bases (what the agent's action corrects) that re-plan with MPC.
MPC_BASES = ("mpc", *FORECAST_BASES)
#: How often the ``mpc`` base re-plans by default: every step of the training domain (an
#: hourly re-plan with the plan followed open-loop in between captured 78 % instead of 90 %).
DEFAULT_REPLAN = "15min"


def mpc_base_control(replan: str, defer_grid: bool = True) -> dict[str, Any]:
    """Control options of the ``mpc`` base: persistence, 24 h horizon, re-plan every ``replan``.

    ``defer_grid``: MPC's least-commitment tie-break (import and export as late as
    equally good plans allow), which captured more of the oracle's saving.
    """
    return {
        "forecaster": "persistence",
        "horizon": "24h",
        "resolve_every": replan,
        "history_days": 1,  # persistence looks one day back only
        "defer_grid": defer_grid,
    }


def _param(batteries: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([float(b[name]) for b in batteries])


def day_plan(
    batteries: list[dict[str, Any]],
    soc0: np.ndarray,
    net_forecast_kw: np.ndarray,
    price_import: np.ndarray,
    price_export: np.ndarray,
    dt_h: float,
    objective: Objective,
    demand_charge_eur_kw: float = 0.0,
) -> np.ndarray:
    """Planned cell-side stored energy (kWh) at the end of every step, shape ``(T, B)``.

    Parameters
    ----------
    batteries : list of dict
        Battery unit parameters.
    soc0 : numpy.ndarray
        Measured SoC at the plan's start.
    net_forecast_kw : numpy.ndarray
        Forecast net non-dispatchable power (> 0 surplus) of the ``T`` steps.
    price_import, price_export : numpy.ndarray
        The steps' prices (EUR/kWh).
    dt_h : float
        Step length (h).
    objective : Objective
        Wear cost and terminal value per battery.
    demand_charge_eur_kw : float
        Demand charge on the peak import.

    Returns
    -------
    numpy.ndarray
        Energy after each step; if the LP fails, the initial energy held (no plan).
    """
    e_cap = _param(batteries, "e_kwh") * _param(batteries, "soh_init")
    soc_min, soc_max = _param(batteries, "soc_min"), _param(batteries, "soc_max")
    soc0 = np.clip(np.asarray(soc0, dtype=float), soc_min, soc_max)
    problem = DispatchProblem(
        net_kw=np.asarray(net_forecast_kw, dtype=float),
        price_import_eur_kwh=np.asarray(price_import, dtype=float),
        price_export_eur_kwh=np.asarray(price_export, dtype=float),
        dt_h=dt_h,
        e_kwh=e_cap,
        p_max_kw=_param(batteries, "p_max_kw"),
        eta_ch=_param(batteries, "eta_ch"),
        eta_dis=_param(batteries, "eta_dis"),
        soc_min=soc_min,
        soc_max=soc_max,
        soc0=soc0,
        wear_eur_kwh=objective.wear,
        demand_charge_eur_kw=demand_charge_eur_kw,
        terminal_value_eur_kwh=objective.terminal_value,
    )
    try:
        return solve_dispatch(problem).e_kwh[1:]
    except LPError:
        return np.tile(soc0 * e_cap, (len(net_forecast_kw), 1))


def tracking_setpoint(
    e_target_kwh: np.ndarray,
    soc: np.ndarray,
    e_cap_kwh: np.ndarray,
    p_max_kw: np.ndarray,
    eta_ch: np.ndarray,
    eta_dis: np.ndarray,
    dt_h: float,
) -> np.ndarray:
    """The setpoint (kW, > 0 discharge) that brings the stored energy to the target.

    Parameters
    ----------
    e_target_kwh : numpy.ndarray
        Planned cell-side energy at the step's end, per battery.
    soc : numpy.ndarray
        Measured SoC now.
    e_cap_kwh : numpy.ndarray
        Usable capacity (kWh) the SoC refers to.
    p_max_kw, eta_ch, eta_dis : numpy.ndarray
        Rating and one-way efficiencies per battery.
    dt_h : float
        Step length (h).

    Returns
    -------
    numpy.ndarray
        Setpoints within the ratings.
    """
    de = np.asarray(e_target_kwh, float) - np.asarray(soc, float) * e_cap_kwh
    p = np.where(de < 0.0, -de * eta_dis / dt_h, -de / (eta_ch * dt_h))
    return np.clip(p, -p_max_kw, p_max_kw)
