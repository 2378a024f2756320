"""Rule-based controller: price-aware self-consumption, urgency-first smart EV charging."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Port
from models.battery import limit_power
from twin.control.base import EV_INPUTS, SITE_NET, SOC, SiteController
from twin.control.site import run_objective
from twin.errors import TwinError
from twin.objective import Objective, rule_thresholds

__all__ = [
    "PRICE_EXPORT",
    "PRICE_IMPORT",
    "PriceUnknownError",
    "RuleController",
    "ev_setpoints",
    "share_by_headroom",
]

#: The step's prices, as the tariff publishes them (NaN: not connected).
PRICE_IMPORT = Port("EUR/kWh", "import price of the step", group="site", default=float("nan"))
PRICE_EXPORT = Port("EUR/kWh", "export price of the step", group="site", default=float("nan"))

#: Prices within this of a threshold count as at it (a flat tariff's discharge threshold
#: is its price, up to rounding): the tie costs nothing.
THRESHOLD_TOLERANCE_EUR_KWH = 1e-9


class PriceUnknownError(TwinError):
    """The rule was stepped without the step's prices (its price inputs not connected)."""


def share_by_headroom(total_kw: float, headroom_kw: np.ndarray) -> np.ndarray:
    """Split ``total_kw`` over units in proportion to their headroom (same sign).

    No unit gets more than its headroom; what exceeds the sum is not allocated.
    """
    capacity = headroom_kw.sum()
    if capacity <= 0.0 or total_kw == 0.0:
        return np.zeros_like(headroom_kw)
    return headroom_kw * min(abs(total_kw) / capacity, 1.0) * np.sign(total_kw)


def ev_setpoints(
    surplus_kw: float,
    connected: np.ndarray,
    e_needed_kwh: np.ndarray,
    t_departure_h: np.ndarray,
    p_max_kw: np.ndarray,
    efficiency: np.ndarray,
    dt_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Charging setpoints (kW, grid side) and the part of them that must not be cut.

    Every connected EV gets at least the even power that completes its need one step
    before its departure (so charging is spread over the stay instead of peaking on
    arrival); PV surplus beyond that goes to the most urgent EVs first (least laxity:
    time left minus time needed at full power).

    Returns
    -------
    setpoint_kw, must_kw : numpy.ndarray
        The setpoints, and the minimum each EV needs to still finish on time.
    """
    need_grid = np.where(connected, e_needed_kwh / efficiency, 0.0)
    cap = np.minimum(p_max_kw, need_grid / dt_h)  # what finishes the need this step
    time_left = np.maximum(t_departure_h - dt_h, dt_h)
    even = np.minimum(need_grid / time_left, cap)
    laxity = t_departure_h - need_grid / p_max_kw
    must = np.where(laxity <= dt_h, cap, 0.0)
    setpoint = np.maximum(even, must)
    spare = max(surplus_kw - setpoint.sum(), 0.0)
    for i in np.argsort(laxity, kind="stable"):
        if spare <= 0.0:
            break
        extra = min(spare, cap[i] - setpoint[i])
        if extra > 0.0:
            setpoint[i] += extra
            spare -= extra
    return setpoint, must


class RuleController(SiteController):
    """Self-consumption where it pays, and smart EV charging.

    It measures the site's net non-dispatchable power (PV plus loads, > 0 when there
    is a surplus), the step's import and export prices (``price_eur_kwh``,
    ``price_export_eur_kwh``, from the tariff), each battery's SoC and each charger's EV
    (connected, energy needed, time to departure). EVs get their even share of what they
    need plus PV surplus by urgency (:func:`ev_setpoints`); the batteries then absorb
    what is left of the surplus or cover the deficit, inside their limits, but only
    where that lowers the scored cost (:mod:`twin.objective`): a battery covers a deficit
    only when the import price is at least its discharge threshold and absorbs a surplus
    only when the export price is at most its charge threshold
    (:func:`twin.objective.rule_thresholds`). It never charges from the grid, so each
    step costs no more than without the battery (grid losses aside) and the peak import
    never rises. With a site import limit (``context["p_import_max_kw"]``), EV charging
    that is not urgent is cut first.

    Units are the batteries it dispatches (their scenario parameters); the chargers come
    from ``context["chargers"]`` (``name``, ``p_max_kw``, ``efficiency``); the objective
    from :func:`twin.control.site.run_objective` (``context["objective"]``, or the run's
    prices).
    """

    inputs = {
        "p_kw": SITE_NET,
        "price_eur_kwh": PRICE_IMPORT,
        "price_export_eur_kwh": PRICE_EXPORT,
        "soc": SOC,
        **EV_INPUTS,
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self._limits = {
            name: self.param(name)
            for name in ("p_max_kw", "soc_min", "soc_max", "eta_ch", "eta_dis", "e_kwh")
        }
        self._import_max = self.context.get("p_import_max_kw")
        self.objective = run_objective(units, clock, self.context)

    @property
    def objective(self) -> Objective:
        """Wear cost and terminal value per battery; setting it sets the thresholds."""
        return self._objective

    @objective.setter
    def objective(self, objective: Objective) -> None:
        self._objective = objective
        lim = self._limits
        self.discharge_min_eur_kwh, self.charge_max_eur_kwh = rule_thresholds(
            objective, lim["eta_ch"], lim["eta_dis"]
        )

    def _allowed(self, want_kw: float, price: float, price_export: float) -> np.ndarray:
        """Batteries whose use in the direction of ``want_kw`` lowers the scored cost."""
        tol = THRESHOLD_TOLERANCE_EUR_KWH
        if want_kw > 0.0:
            return price >= self.discharge_min_eur_kwh - tol
        return price_export <= self.charge_max_eur_kwh + tol

    def _battery_limit(self, want_kw: float, soc: np.ndarray, dt_h: float) -> np.ndarray:
        """Largest power each battery can give in the direction of ``want_kw``."""
        if want_kw == 0.0 or self.n == 0:
            return np.zeros(self.n)
        lim = self._limits
        return np.abs(
            limit_power(
                np.full(self.n, np.sign(want_kw) * np.inf),
                soc,
                lim["e_kwh"],
                lim["p_max_kw"],
                lim["soc_min"],
                lim["soc_max"],
                lim["eta_ch"],
                lim["eta_dis"],
                dt_h,
            )
        )

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Setpoints for the step from the measured site power, prices, SoCs and EVs.

        Raises
        ------
        PriceUnknownError
            If the step's prices are not known (NaN: the inputs are not connected).
        """
        dt_h = dt_s / 3600.0
        surplus_kw = float(inputs["p_kw"][0])
        price = float(inputs["price_eur_kwh"][0])
        price_export = float(inputs["price_export_eur_kwh"][0])
        if not (np.isfinite(price) and np.isfinite(price_export)):
            raise PriceUnknownError(
                f"rule: expected the step's prices (inputs price_eur_kwh, "
                f"price_export_eur_kwh from the tariff), got {price}, {price_export}"
            )
        ev, must = ev_setpoints(
            surplus_kw,
            inputs["connected"] >= 0.5,
            inputs["e_needed_kwh"],
            inputs["t_departure_h"],
            self.ev_p_max_kw,
            self.ev_efficiency,
            dt_h,
        )
        net_kw = surplus_kw - ev.sum()  # > 0: surplus left for the batteries
        headroom = self._battery_limit(-net_kw, inputs["soc"], dt_h)
        headroom = np.where(self._allowed(-net_kw, price, price_export), headroom, 0.0)
        battery = share_by_headroom(-net_kw, headroom)
        if self._import_max is not None and ev.size:
            # The batteries already cover all the deficit they can; cut flexible EV power.
            excess = -(net_kw + battery.sum()) - self._import_max
            if excess > 0.0:
                ev = ev - share_by_headroom(excess, np.maximum(ev - must, 0.0))
        return {"p_set_kw": battery, "p_ev_set_kw": ev}
