r"""The one objective every controller plans for and is scored by.

A run's **scored cost** (EUR) is what the site paid plus what the battery wore out,
minus what the energy left in it is worth:

.. math::

    J = \sum_t (\pi^{imp}_t G^+_t - \pi^{exp}_t G^-_t)\Delta t + c_{dem} \max_t G^+_t
        + \sum_b w_b \sum_t |\Delta E_{tb}| - \sum_b v_b \sum_t \Delta E_{tb}
        + \pi^{EV} U

with import :math:`G^+` and export :math:`G^-` (kW), the energy :math:`\Delta E_{tb}`
(kWh) put into battery b's cells over step t (its bus-side power through its
efficiencies, :math:`-P/\eta^{dis}` discharging, :math:`-P\eta^{ch}` charging: the stored
energy's change :math:`E_{Tb} - E_{0b}` over the run, save capacity fade, which shrinks
the stored energy at constant SoC and is neither dispatch nor wear), the **wear cost**
:math:`w_b` (EUR per kWh through the cells), the **terminal value** :math:`v_b` (EUR
per kWh left in the cells) and, with EVs, the energy :math:`U`
(kWh, grid side: what the charger would have drawn) the EVs still needed when they left,
at :math:`\pi^{EV}` = :data:`UNMET_EV_EUR_KWH` (the price the dispatch LP puts on it, so
no controller scores below the oracle by leaving EVs uncharged).

EV energy not delivered
    :math:`\pi^{EV}` is far above any energy price: a missed kWh costs more than any
    saving on it, so a planner delivers what the stays allow and trades delivery only
    against a hard limit (the site import limit).

Wear
    The battery model's cycle ageing takes :math:`(1 - SoH_{eol}) / (2 L)` of state of
    health per kWh through the cells per kWh of capacity (:math:`L` the cycle life in
    equivalent full cycles); replacing the battery at :math:`SoH_{eol}` costs
    :math:`r` EUR per kWh of capacity, so a kWh through the cells costs
    :math:`w = r / (2 L)` (300 EUR/kWh and 6,000 cycles: 0.025 EUR/kWh). Calendar ageing
    does not depend on the dispatch and is not part of the cost.

Terminal value (the rule, decided once)
    A kWh left in the cells is worth what it would cost to put it back from the grid at
    the run's cheapest import price, :math:`\pi^{imp}_{min} / \eta^{ch} + w`, but never
    more than the most it can ever displace, :math:`\pi^{imp}_{max} \eta^{dis} - w`:

    .. math:: v_b = \max(0, \min(\pi^{imp}_{min} / \eta^{ch}_b + w_b,
                                 \pi^{imp}_{max} \eta^{dis}_b - w_b))

    It needs only the tariff (every controller can compute it, none needs foresight), it
    is linear in the end state (the oracle's LP minimises exactly :math:`J`, so no
    controller can score below it, beyond grid losses the LP leaves out), and on time-of-use
    tariffs it equals the shadow price of "end where you started" (refilling at the
    cheapest hour), so neither draining the battery at the end nor filling it from the
    grid pays. A mean-price valuation, used before, rewarded filling from the grid at the
    end (mean above the cheapest refill cost) or draining (below it). Where tomorrow's PV
    surplus would refill the battery for free, the true value is lower; the rule does not
    guess tomorrow. ``control.terminal_price_eur_kwh`` overrides :math:`v` for every
    battery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.errors import TwinError

__all__ = [
    "UNMET_EV_EUR_KWH",
    "Objective",
    "PricesUnknownError",
    "ScoredCost",
    "objective_for",
    "rule_thresholds",
    "scored_cost",
    "scored_cost_of",
    "terminal_values",
    "wear_eur_kwh",
]


class PricesUnknownError(TwinError):
    """The run's prices are missing or not finite: the objective cannot be known."""


#: Price of a kWh (grid side) an EV still needed at departure, in the scored cost and
#: in the dispatch LP alike (EUR/kWh).
UNMET_EV_EUR_KWH = 10.0


def wear_eur_kwh(replacement_eur_kwh: Any, cycle_life_efc: Any) -> np.ndarray:
    """Wear cost per kWh through the cells: ``replacement / (2 * cycle_life)``.

    Parameters
    ----------
    replacement_eur_kwh : array_like
        Replacement cost per kWh of capacity (EUR/kWh), per battery.
    cycle_life_efc : array_like
        Cycle life in equivalent full cycles to end of life, per battery.

    Returns
    -------
    numpy.ndarray
        EUR per kWh of cell-side throughput, per battery.
    """
    return np.asarray(replacement_eur_kwh, dtype=float) / (
        2.0 * np.asarray(cycle_life_efc, dtype=float)
    )


def terminal_values(
    price_import: Any,
    eta_ch: Any,
    eta_dis: Any,
    wear: Any,
    override: float | None = None,
) -> np.ndarray:
    """The value of a kWh left in each battery's cells (EUR/kWh), see the module notes.

    Parameters
    ----------
    price_import : array_like
        Import prices over the run (EUR/kWh).
    eta_ch, eta_dis : array_like
        One-way charge and discharge efficiencies, per battery.
    wear : array_like
        Wear cost per cell-side kWh, per battery (:func:`wear_eur_kwh`).
    override : float, optional
        One stated value for every battery (``control.terminal_price_eur_kwh``).

    Returns
    -------
    numpy.ndarray
        Terminal value per battery (EUR per cell-side kWh), never negative.

    Raises
    ------
    PricesUnknownError
        If there are no prices or one is not finite (and no override).
    """
    eta_ch = np.asarray(eta_ch, dtype=float)
    eta_dis, wear = np.broadcast_arrays(np.asarray(eta_dis, dtype=float), np.asarray(wear, float))
    if override is not None:
        return np.full(eta_ch.shape, float(override))
    prices = np.asarray(price_import, dtype=float)
    if prices.size == 0 or not np.all(np.isfinite(prices)):
        bad = "none" if prices.size == 0 else f"{np.count_nonzero(~np.isfinite(prices))} not finite"
        raise PricesUnknownError(
            f"price_import_eur_kwh: expected the run's import prices, finite, to value "
            f"stored energy (got {prices.size} prices, {bad}); a controller is never "
            "price-blind"
        )
    refill = prices.min() / eta_ch + wear
    displace = prices.max() * eta_dis - wear
    return np.maximum(0.0, np.minimum(refill, displace))


@dataclass(frozen=True)
class Objective:
    """Wear cost and terminal value per battery: what the scored cost needs.

    Attributes
    ----------
    wear : numpy.ndarray
        EUR per kWh through the cells, per battery.
    terminal_value : numpy.ndarray
        EUR per kWh left in the cells at the end, per battery.
    """

    wear: np.ndarray
    terminal_value: np.ndarray


def objective_for(
    batteries: Sequence[dict[str, Any]],
    price_import: Any,
    override: float | None = None,
) -> Objective:
    """The objective for batteries given as scenario parameter dicts.

    Parameters
    ----------
    batteries : sequence of dict
        Each with ``eta_ch``, ``eta_dis``, ``cycle_life_efc`` and ``replacement_eur_kwh``
        (missing: 0, no wear cost).
    price_import : array_like
        Import prices over the run (EUR/kWh).
    override : float, optional
        ``control.terminal_price_eur_kwh``.

    Returns
    -------
    Objective
    """
    wear = wear_eur_kwh(
        [b.get("replacement_eur_kwh") or 0.0 for b in batteries],
        [b.get("cycle_life_efc", 6000.0) for b in batteries],
    )
    eta_ch = [b.get("eta_ch", 0.95) for b in batteries]
    eta_dis = [b.get("eta_dis", 0.95) for b in batteries]
    value = terminal_values(price_import, eta_ch, eta_dis, wear, override)
    return Objective(wear=wear, terminal_value=value)


@dataclass(frozen=True)
class ScoredCost:
    """A run's scored cost and its parts (EUR).

    Attributes
    ----------
    energy : float
        Import paid minus export earned.
    demand : float
        Demand charge on the peak import.
    wear : float
        Wear cost of the cell-side throughput.
    terminal : float
        Value of the change of stored energy (positive: energy gained).
    ev_unmet : float
        Price of the EV energy not delivered by departure (:data:`UNMET_EV_EUR_KWH`).
    """

    energy: float
    demand: float
    wear: float
    terminal: float
    ev_unmet: float = 0.0

    @property
    def total(self) -> float:
        """The scored cost: energy + demand + wear - terminal + EV energy unmet."""
        return self.without_wear + self.wear

    @property
    def without_wear(self) -> float:
        """The scored cost without the wear cost (energy + demand - terminal + EV unmet)."""
        return self.energy + self.demand - self.terminal + self.ev_unmet


def scored_cost(
    p_import_kw: Any,
    p_export_kw: Any,
    price_import: Any,
    price_export: Any,
    dt_h: float,
    demand_charge_eur_kw: float,
    throughput_cell_kwh: Any,
    delta_e_kwh: Any,
    objective: Objective,
    ev_unmet_kwh: float = 0.0,
) -> ScoredCost:
    """The scored cost of a run (see the module notes).

    Parameters
    ----------
    p_import_kw, p_export_kw : array_like
        Grid import and export per step (kW, both >= 0).
    price_import, price_export : array_like
        Prices per step (EUR/kWh).
    dt_h : float
        Step length (h).
    demand_charge_eur_kw : float
        Demand charge on the run's peak import (EUR/kW).
    throughput_cell_kwh : array_like
        Cell-side throughput per battery over the run, sum of ``|dE|`` (kWh).
    delta_e_kwh : array_like
        Cell-side stored energy at the end minus at the start, per battery (kWh).
    objective : Objective
        Wear cost and terminal value per battery.
    ev_unmet_kwh : float, optional
        EV energy (grid side) still needed at departure over the run (kWh).

    Returns
    -------
    ScoredCost
    """
    imp = np.asarray(p_import_kw, dtype=float)
    exp = np.asarray(p_export_kw, dtype=float)
    energy = float(imp @ np.asarray(price_import, float) - exp @ np.asarray(price_export, float))
    peak = float(imp.max()) if imp.size else 0.0
    return scored_cost_of(
        energy * dt_h,
        peak,
        demand_charge_eur_kw,
        throughput_cell_kwh,
        delta_e_kwh,
        objective,
        ev_unmet_kwh,
    )


def scored_cost_of(
    energy_eur: float,
    peak_import_kw: float,
    demand_charge_eur_kw: float,
    throughput_cell_kwh: Any,
    delta_e_kwh: Any,
    objective: Objective,
    ev_unmet_kwh: float = 0.0,
) -> ScoredCost:
    """The scored cost from the run's sums: what :func:`scored_cost` adds up, already added.

    Parameters
    ----------
    energy_eur : float
        Import paid minus export earned over the run (EUR).
    peak_import_kw : float
        The run's peak import (kW; 0 for a run without steps).
    demand_charge_eur_kw, throughput_cell_kwh, delta_e_kwh, objective, ev_unmet_kwh
        As for :func:`scored_cost`.

    Returns
    -------
    ScoredCost
    """
    return ScoredCost(
        energy=float(energy_eur),
        demand=float(demand_charge_eur_kw) * float(peak_import_kw),
        wear=float(objective.wear @ np.asarray(throughput_cell_kwh, dtype=float)),
        terminal=float(objective.terminal_value @ np.asarray(delta_e_kwh, dtype=float)),
        ev_unmet=UNMET_EV_EUR_KWH * float(ev_unmet_kwh),
    )


def rule_thresholds(
    objective: Objective, eta_ch: Any, eta_dis: Any
) -> tuple[np.ndarray, np.ndarray]:
    r"""Prices at which a self-consumption rule may use each battery without losing.

    Discharging a kWh (bus side) into the site's own deficit saves the import price and
    costs :math:`(v + w) / \eta^{dis}`; absorbing a kWh of surplus forgoes the export
    price and gains :math:`\eta^{ch} (v - w)`. A rule that discharges only at or above
    the first price and charges only at or below the second never costs more than no
    battery (step by step, losses aside).

    Parameters
    ----------
    objective : Objective
        Wear cost and terminal value per battery.
    eta_ch, eta_dis : array_like
        One-way efficiencies per battery.

    Returns
    -------
    discharge_min_import_price : numpy.ndarray
        Lowest import price (EUR/kWh) at which each battery may cover a deficit.
    charge_max_export_price : numpy.ndarray
        Highest export price (EUR/kWh) at which each battery may absorb a surplus.
    """
    v, w = objective.terminal_value, objective.wear
    discharge = (v + w) / np.asarray(eta_dis, dtype=float)
    charge = np.asarray(eta_ch, dtype=float) * (v - w)
    return discharge, charge
