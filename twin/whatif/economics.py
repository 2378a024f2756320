r"""Money of a what-if study: capital, battery replacements, NPV and payback.

The investment is the batteries and PV plants of ``economics.invest`` (default: every
one of the run), its capital cost

.. math:: K = c_{kWh} \sum_b E_b + c_{kW} \sum_b P_b + c_{kWp} \sum_p P^{dc}_p

paid at year 0. Each year it saves the operating cost it avoids against the reference
run, less the O&M cost. A run's operating cost per year is

.. math:: C_{year} = (C_{energy} - V_{stored})\, y + 12\, d\, P^{peak}

with the energy cost :math:`C_{energy}` and the value of the change of stored energy
:math:`V_{stored}` (``terminal_value_eur``: a battery that ends lower has spent energy
it did not pay for) scaled to a year by the run's length (:math:`y = 365` days / run
days), and the tariff's demand charge :math:`d` (EUR/kW) taken as **monthly**: the
run's peak import :math:`P^{peak}` paid in each of 12 months (never times :math:`y`).
A battery is replaced (at its ``replacement_eur_kwh`` times its capacity, or at
``economics.battery_eur_kwh`` when that is 0: ageing always costs what the battery
cost) when its state of health, fading at the
rate the run measured (SoH lost in the run times the year factor; cycling and calendar
ageing together), reaches ``soh_eol``: first after :math:`(SoH_0 - SoH_{eol}) / f`
years, then every :math:`(1 - SoH_{eol}) / f` years. The run's wear cost is left out of
the operating cost: the replacements pay for the ageing once.

Outputs: the net present value of these cash flows at the discount rate over the
lifetime, the annualised cost :math:`(K + PV_{repl}) \cdot CRF + O\&M`, and the simple
(undiscounted) and discounted payback: the time after which the cumulative cash flow,
replacements included, stays at or above 0 (NaN: never).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from twin.errors import TwinError
from twin.results import wide
from twin.whatif import finance
from twin.whatif.reference import Reference, invested, year_factor

__all__ = [
    "ECONOMICS_KPIS",
    "MONTHS_PER_YEAR",
    "EconomicsError",
    "battery_replacements",
    "capex_eur",
    "economics_kpis",
    "operating_cost_year_eur",
]

#: The tariff's demand charge is monthly: the run's peak is paid this many times a year.
MONTHS_PER_YEAR = 12


class EconomicsError(TwinError):
    """The economics of a run cannot be computed from what it measured."""


#: The KPIs of the ``economics`` section.
ECONOMICS_KPIS = (
    "capex_eur",
    "opex_year_eur",
    "reference_opex_year_eur",
    "saving_year_eur",
    "battery_years_to_eol",
    "replacement_pv_eur",
    "annualised_cost_eur_year",
    "npv_eur",
    "payback_simple_years",
    "payback_discounted_years",
)


def capex_eur(spec: Any, batteries: list[dict[str, Any]], pv: list[dict[str, Any]]) -> float:
    """Capital cost of the batteries (per kWh and kW) and PV plants (per kWp DC), EUR."""
    return (
        spec.battery_eur_kwh * sum(b["e_kwh"] for b in batteries)
        + spec.battery_eur_kw * sum(b["p_max_kw"] for b in batteries)
        + spec.pv_eur_kwp * sum(p["p_dc_kw"] for p in pv)
    )


def operating_cost_year_eur(
    kpis: dict[str, float], demand_charge_eur_kw: float, factor: float
) -> float:
    """A run's operating cost per year: energy less stored value times ``factor``, demand x 12.

    Parameters
    ----------
    kpis : dict
        The run's KPIs: ``cost_scored_no_wear_eur`` (energy + demand - value of the change
        of stored energy) and ``peak_import_kw``.
    demand_charge_eur_kw : float
        The tariff's demand charge (EUR per kW of peak import, per month).
    factor : float
        Runs per year (``365 days / run days``).

    Raises
    ------
    EconomicsError
        If the KPIs lack the scored cost or the peak import (a run of an older twin).
    """
    missing = [k for k in ("cost_scored_no_wear_eur", "peak_import_kw") if k not in kpis]
    if missing:
        raise EconomicsError(
            f"kpis.json has no {', '.join(missing)}: expected a run of this version of the "
            "twin (re-run the reference given as economics.reference_run)"
        )
    demand = demand_charge_eur_kw * kpis["peak_import_kw"]
    energy_net = kpis["cost_scored_no_wear_eur"] - demand
    return energy_net * factor + demand * MONTHS_PER_YEAR


def battery_replacements(
    batteries: list[dict[str, Any]],
    soh_end: dict[str, float],
    factor: float,
    lifetime_years: float,
    fallback_eur_kwh: float = 0.0,
) -> tuple[list[finance.CashFlow], float]:
    """Replacements of every battery at its measured fade, and the shortest battery life.

    Parameters
    ----------
    batteries : list of dict
        The resolved battery units (``name``, ``e_kwh``, ``soh_init``, ``soh_eol``,
        ``replacement_eur_kwh``).
    soh_end : dict of str to float
        State of health of each battery at the end of the run.
    factor : float
        Runs per year (``365 days / run days``).
    lifetime_years : float
        Lifetime of the investment (years).
    fallback_eur_kwh : float
        Replacement cost per kWh of a battery whose ``replacement_eur_kwh`` is 0 (the
        capital cost ``economics.battery_eur_kwh``).

    Returns
    -------
    replacements : list of (float, float)
        ``(years, EUR)`` of every replacement within the lifetime.
    years_to_eol : float
        Years until the first battery reaches end of life (``inf``: none ages).

    Raises
    ------
    EconomicsError
        If a battery starts at or below its end of life, or its final state of health is
        not a number.
    """
    flows: list[finance.CashFlow] = []
    shortest = math.inf
    for i, unit in enumerate(batteries):
        path = f"assets.battery[{i}] ({unit['name']})"
        if unit["soh_init"] <= unit["soh_eol"]:
            raise EconomicsError(
                f"{path}.soh_init: {unit['soh_init']} is at or below soh_eol "
                f"{unit['soh_eol']}; expected a battery above its end of life"
            )
        end = soh_end[unit["name"]]
        if not math.isfinite(end):
            raise EconomicsError(
                f"{path}: the run recorded no final state of health ({end}); expected a "
                "number to age the battery by"
            )
        fade_year = (unit["soh_init"] - end) * factor
        if fade_year <= 0:
            continue
        first = max(unit["soh_init"] - unit["soh_eol"], 0.0) / fade_year
        shortest = min(shortest, first)
        every = (1.0 - unit["soh_eol"]) / fade_year
        cost = (unit["replacement_eur_kwh"] or fallback_eur_kwh) * unit["e_kwh"]
        times = finance.replacement_times(first, every, lifetime_years)
        flows += [(t, cost) for t in times if cost > 0]
    return flows, shortest


def _nan_if_inf(value: float) -> float:
    return math.nan if math.isinf(value) else float(value)


def economics_kpis(
    scenario: Any,
    results: pd.DataFrame,
    kpis: dict[str, float],
    reference: Reference,
) -> tuple[dict[str, float], list[finance.CashFlow]]:
    """The economics KPIs of a run against its reference, and the investment's cash flows.

    Parameters
    ----------
    scenario : ScenarioBase
        The resolved scenario (its ``economics`` section, batteries and PV).
    results : pandas.DataFrame
        The run's tidy results (each battery's state of health).
    kpis : dict
        The run's KPIs (``cost_eur``).
    reference : Reference
        The reference run (its ``cost_eur``).
    """
    spec = scenario.economics
    names = invested(scenario)
    batteries = [unit for unit in scenario.units("battery") if unit["name"] in names]
    pv = [unit for unit in scenario.units("pv") if unit["name"] in names]
    factor = year_factor(scenario)
    soh_end: dict[str, float] = {}
    if batteries:
        soh = wide(results, "battery", "soh")
        soh_end = {unit["name"]: float(soh[unit["name"]].iloc[-1]) for unit in batteries}
    replacements, years_to_eol = battery_replacements(
        batteries, soh_end, factor, spec.lifetime_years, spec.battery_eur_kwh
    )
    capex = capex_eur(spec, batteries, pv)
    demand_charge = scenario.tariff.demand_charge_eur_kw
    opex = operating_cost_year_eur(kpis, demand_charge, factor)
    reference_opex = operating_cost_year_eur(reference.kpis, demand_charge, factor)
    saving = reference_opex - opex
    net_saving = saving - spec.om_eur_year
    flows = finance.cash_flows(capex, net_saving, spec.lifetime_years, replacements)
    rate = spec.discount_rate
    replacement_pv = sum(finance.discount(cost, rate, t) for t, cost in replacements)
    crf = finance.capital_recovery_factor(rate, spec.lifetime_years)
    out = {
        "capex_eur": capex,
        "opex_year_eur": opex,
        "reference_opex_year_eur": reference_opex,
        "saving_year_eur": saving,
        "battery_years_to_eol": _nan_if_inf(years_to_eol),
        "replacement_pv_eur": replacement_pv,
        "annualised_cost_eur_year": (capex + replacement_pv) * crf + spec.om_eur_year,
        "npv_eur": finance.net_present_value(flows, rate),
        "payback_simple_years": _nan_if_inf(finance.discounted_payback_years(flows, 0.0)),
        "payback_discounted_years": _nan_if_inf(finance.discounted_payback_years(flows, rate)),
    }
    return out, flows
