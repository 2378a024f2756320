"""Rule-based controller: price-aware self-consumption, urgency-first smart EV charging."""

from __future__ import annotations

import math
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
    "POC_IMPORT",
    "PRICE_IMPORT",
    "SOH",
    "PriceUnknownError",
    "RuleController",
    "cheapest_share",
    "ev_setpoints",
    "share_by_headroom",
]

#: The step's prices, as the tariff publishes them (NaN: not connected).
PRICE_IMPORT = Port("EUR/kWh", "import price of the step", group="site", default=float("nan"))
PRICE_EXPORT = Port("EUR/kWh", "export price of the step", group="site", default=float("nan"))
#: The import at the point of connection measured over the previous step (NaN: unknown).
POC_IMPORT = Port(
    "kW",
    "import at the POC over the previous step (> 0 into the site)",
    group="site",
    default=float("nan"),
)

#: Prices within this of a threshold count as at it (a flat tariff's discharge threshold
#: is its price, up to rounding): the tie costs nothing.
THRESHOLD_TOLERANCE_EUR_KWH = 1e-9


#: The battery's measured state of health (NaN: not connected; its initial one then).
SOH = Port("1", "measured state of health of the battery", default=float("nan"))


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


def cheapest_share(need_kwh: float, cap_kw: float, prices: np.ndarray, dt_h: float) -> float:
    """Power now (kW) that delivers ``need_kwh`` in the cheapest steps of ``prices``.

    ``prices`` are the import prices of the steps left, now first. Steps cheaper than
    the dearest price still needed get full power; ``need`` left over is spread evenly
    over the steps at that price (so on a flat tariff: the even share over the stay).
    """
    if need_kwh <= 0.0 or cap_kw <= 0.0 or prices.size == 0:
        return 0.0
    levels = np.unique(prices)
    for level in levels:
        if np.count_nonzero(prices <= level) * cap_kw * dt_h >= need_kwh - 1e-12:
            break
    now = prices[0]
    if now > level:
        return 0.0
    if now < level:
        return cap_kw
    rest = need_kwh - np.count_nonzero(prices < level) * cap_kw * dt_h
    return min(max(rest, 0.0) / (np.count_nonzero(prices == level) * dt_h), cap_kw)


def ev_setpoints(
    surplus_kw: float,
    connected: np.ndarray,
    e_needed_kwh: np.ndarray,
    t_departure_h: np.ndarray,
    p_max_kw: np.ndarray,
    efficiency: np.ndarray,
    dt_h: float,
    prices_ahead: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Charging setpoints (kW, grid side) and the part of them that must not be cut.

    Every connected EV gets at least its share of what it needs in the cheapest steps
    before its departure (:func:`cheapest_share` over ``prices_ahead``, the import prices
    from this step on; without them, or on a flat tariff, the even power that completes
    its need one step before departure, so charging is spread over the stay instead of
    peaking on arrival); PV surplus beyond that goes to the most urgent EVs first (least
    laxity: time left minus time needed at full power).

    Returns
    -------
    setpoint_kw, must_kw : numpy.ndarray
        The setpoints, and the minimum each EV needs to still finish on time.
    """
    need_grid = np.where(connected, e_needed_kwh / efficiency, 0.0)
    cap = np.minimum(p_max_kw, need_grid / dt_h)  # what finishes the need this step
    time_left = np.maximum(t_departure_h - dt_h, dt_h)
    even = np.minimum(need_grid / time_left, cap)
    if prices_ahead is not None and prices_ahead.size:
        for i in np.flatnonzero(need_grid > 0.0):
            window = prices_ahead[: max(int(round(time_left[i] / dt_h)), 1)]
            even[i] = cheapest_share(need_grid[i], p_max_kw[i], window, dt_h)
        even = np.minimum(even, cap)
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


def _prices_ahead(clock: Clock, context: dict[str, Any]) -> np.ndarray | None:
    """The run's import prices per step from the context's tariff (None: no tariff)."""
    if context.get("tariff") is None:
        return None
    from models.tariff import Tariff

    prices = Tariff([context["tariff"]], clock, context).exogenous()["price_import_eur_kwh"]
    return np.asarray(prices[:, 0], dtype=float)


class RuleController(SiteController):
    """Self-consumption where it pays, and smart EV charging.

    It measures the site's net non-dispatchable power (PV plus loads, > 0 when there
    is a surplus), the step's import and export prices (``price_eur_kwh``,
    ``price_export_eur_kwh``, from the tariff), each battery's SoC and each charger's EV
    (connected, energy needed, time to departure). EVs get what they need in the cheapest
    steps of their stay (the tariff is known ahead; evenly over them) plus PV surplus by
    urgency (:func:`ev_setpoints`); the batteries then absorb
    what is left of the surplus or cover the deficit, inside their limits, but only
    where that lowers the scored cost (:mod:`twin.objective`): a battery covers a deficit
    only when the import price is at least its discharge threshold and absorbs a surplus
    only when the export price is at most its charge threshold
    (:func:`twin.objective.rule_thresholds`). It never charges from the grid, so each
    step costs no more than without the battery and the peak import never rises: the
    grid's own losses (transformer no-load losses above all) are fed by a small PV
    surplus before any of it reaches the POC, so the batteries absorb only the surplus
    beyond the grid's losses. Those are estimated from the POC import measured over the
    previous step (``p_poc_kw``, time-shifted) and the rule's own setpoints then, else
    (first step, or not connected) taken as ``context["standing_loss_kw"]`` (the
    transformers' no-load losses; default 0). With a site import limit
    (``context["p_import_max_kw"]``) the limit comes before prices: the batteries cover
    what exceeds it whatever the price, then EV charging that is not urgent is cut; EVs
    then charge evenly over their stay (postponed into the cheapest steps, their urgent
    charge could exceed the limit later).

    Units are the batteries it dispatches (their scenario parameters); the chargers come
    from ``context["chargers"]`` (``name``, ``p_max_kw``, ``efficiency``); the objective
    from :func:`twin.control.site.run_objective` (``context["objective"]``, or the run's
    prices).
    """

    inputs = {
        "p_kw": SITE_NET,
        "price_eur_kwh": PRICE_IMPORT,
        "price_export_eur_kwh": PRICE_EXPORT,
        "p_poc_kw": POC_IMPORT,
        "soc": SOC,
        "soh": SOH,
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
        #: State of health at the start (usable / nominal capacity); the measured one
        #: (input ``soh``) replaces it when connected.
        self._soh_init = np.array([float(u.get("soh_init", 1.0)) for u in units])
        #: The setpoints that ask each battery for all it can give (read-only, shared).
        self._unbounded = {sign: np.full(self.n, sign * np.inf) for sign in (1.0, -1.0)}
        for setpoints in self._unbounded.values():
            setpoints.flags.writeable = False
        self._import_max = self.context.get("p_import_max_kw")
        self._standing_loss_kw = float(self.context.get("standing_loss_kw", 0.0))
        #: Measured site surplus and the setpoints' net injection (kW) of the last step.
        self._last: tuple[float, float] | None = None
        self.objective = run_objective(units, clock, self.context)
        #: The run's import prices, known ahead (a tariff is), for smart EV charging.
        self._prices = _prices_ahead(clock, self.context) if self.chargers else None

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

    def _battery_limit(
        self, want_kw: float, soc: np.ndarray, soh: np.ndarray, dt_h: float
    ) -> np.ndarray:
        """Largest power each battery can give in the direction of ``want_kw``.

        On the usable capacity, ``e_kwh * soh`` (SoC is relative to it).
        """
        if want_kw == 0.0 or self.n == 0:
            return np.zeros(self.n)
        lim = self._limits
        unbounded = self._unbounded.get(float(np.sign(want_kw)))  # +-inf: as far as it goes
        return np.abs(
            limit_power(
                np.full(self.n, np.sign(want_kw) * np.inf) if unbounded is None else unbounded,
                soc,
                lim["e_kwh"] * soh,
                lim["p_max_kw"],
                lim["soc_min"],
                lim["soc_max"],
                lim["eta_ch"],
                lim["eta_dis"],
                dt_h,
            )
        )

    def _grid_loss_kw(self, poc_import_kw: float) -> float:
        """The grid's losses over the last step: what the site's injections did not export."""
        if self._last is None or not math.isfinite(poc_import_kw):
            return self._standing_loss_kw
        surplus_kw, injected_kw = self._last
        return max(poc_import_kw + surplus_kw + injected_kw, 0.0)

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
        if not (math.isfinite(price) and math.isfinite(price_export)):
            raise PriceUnknownError(
                f"rule: expected the step's prices (inputs price_eur_kwh, "
                f"price_export_eur_kwh from the tariff), got {price}, {price_export}"
            )
        measured_kw = surplus_kw
        loss_kw = self._grid_loss_kw(float(inputs.get("p_poc_kw", [np.nan])[0]))
        # A surplus feeds the grid's losses first; only what is left would be exported.
        surplus_kw = surplus_kw - min(max(surplus_kw, 0.0), loss_kw)
        if not self.chargers:  # no EV to charge (what ev_setpoints gives for none)
            ev, must = np.zeros(0), np.zeros(0)
        else:
            ev, must = ev_setpoints(
                surplus_kw,
                inputs["connected"] >= 0.5,
                inputs["e_needed_kwh"],
                inputs["t_departure_h"],
                self.ev_p_max_kw,
                self.ev_efficiency,
                dt_h,
                # Under a site import limit EVs charge evenly over their stay: postponed
                # into the cheapest steps, their urgent charge could exceed the limit later.
                None
                if self._prices is None or self._import_max is not None
                else self._prices[self.clock.index_of(now) :],
            )
        net_kw = surplus_kw - ev.sum()  # > 0: surplus left for the batteries
        soh = np.asarray(inputs["soh"] if "soh" in inputs else np.full(self.n, np.nan), float)
        soh = np.where(np.isfinite(soh), soh, self._soh_init)
        physical = self._battery_limit(-net_kw, inputs["soc"], soh, dt_h)
        headroom = np.where(self._allowed(-net_kw, price, price_export), physical, 0.0)
        battery = share_by_headroom(-net_kw, headroom)
        if self._import_max is not None:
            # A site limit is kept before prices count: the batteries cover what exceeds
            # it whatever the price, then flexible EV power is cut.
            excess = -(net_kw + battery.sum()) - self._import_max
            if excess > 0.0:
                battery = battery + share_by_headroom(excess, np.maximum(physical - battery, 0.0))
                excess = -(net_kw + battery.sum()) - self._import_max
            if excess > 0.0 and ev.size:
                ev = ev - share_by_headroom(excess, np.maximum(ev - must, 0.0))
        self._last = (measured_kw, float(battery.sum() - ev.sum()))
        return {"p_set_kw": battery, "p_ev_set_kw": ev}
