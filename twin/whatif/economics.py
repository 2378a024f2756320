r"""Money of a what-if study: capital, battery replacements, NPV and payback.

The investment is every battery and PV plant of the run, its capital cost

.. math:: K = c_{kWh} \sum_b E_b + c_{kW} \sum_b P_b + c_{kWp} \sum_p P^{dc}_p

paid at year 0. Each year it saves the operating cost it avoids against the reference
run (``cost_eur``: energy and demand charge), both runs scaled to a year by their length
(``365 days / run days``), less the O&M cost. A battery is replaced (at its
``replacement_eur_kwh`` times its capacity) when its state of health, fading at the
rate the run measured (SoH lost in the run times the year factor; cycling and calendar
ageing together), reaches ``soh_eol``: first after :math:`(SoH_0 - SoH_{eol}) / f`
years, then every :math:`(1 - SoH_{eol}) / f` years. The run's wear cost is left out of
the operating cost: the replacements pay for the ageing once.

Outputs: the net present value of these cash flows at the discount rate over the
lifetime, the annualised cost :math:`(K + PV_{repl}) \cdot CRF + O\&M`, and the simple
(capital over net yearly saving) and discounted payback (NaN: never).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import pandas as pd

from twin.results import wide
from twin.whatif import finance
from twin.whatif.reference import Reference, year_factor

__all__ = [
    "ECONOMICS_KPIS",
    "battery_replacements",
    "capex_eur",
    "economics_kpis",
    "economics_section",
]

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


def battery_replacements(
    batteries: list[dict[str, Any]],
    soh_end: dict[str, float],
    factor: float,
    lifetime_years: float,
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

    Returns
    -------
    replacements : list of (float, float)
        ``(years, EUR)`` of every replacement within the lifetime.
    years_to_eol : float
        Years until the first battery reaches end of life (``inf``: none ages).
    """
    flows: list[finance.CashFlow] = []
    shortest = math.inf
    for unit in batteries:
        fade_year = (unit["soh_init"] - soh_end[unit["name"]]) * factor
        if fade_year <= 0:
            continue
        first = max(unit["soh_init"] - unit["soh_eol"], 0.0) / fade_year
        shortest = min(shortest, first)
        every = (1.0 - unit["soh_eol"]) / fade_year
        cost = unit["replacement_eur_kwh"] * unit["e_kwh"]
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
    batteries, pv = scenario.units("battery"), scenario.units("pv")
    factor = year_factor(scenario)
    soh_end: dict[str, float] = {}
    if batteries:
        soh = wide(results, "battery", "soh")
        soh_end = {unit["name"]: float(soh[unit["name"]].iloc[-1]) for unit in batteries}
    replacements, years_to_eol = battery_replacements(
        batteries, soh_end, factor, spec.lifetime_years
    )
    capex = capex_eur(spec, batteries, pv)
    opex, reference_opex = kpis["cost_eur"] * factor, reference.kpis["cost_eur"] * factor
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
        "payback_simple_years": _nan_if_inf(finance.simple_payback_years(capex, net_saving)),
        "payback_discounted_years": _nan_if_inf(finance.discounted_payback_years(flows, rate)),
    }
    return out, flows


def economics_section(meta: dict[str, Any], kpis: dict[str, float]) -> tuple[str, list[Any]]:
    """The report's economics section: a KPI table and the cumulative discounted cash flow.

    Parameters
    ----------
    meta : dict
        The run metadata (``run.json``): the cash flows (``economics_cash_flows``), the
        discount rate and the reference run id the run recorded.
    kpis : dict
        The run's KPIs (``kpis.json``).

    Returns
    -------
    html : str
        An HTML fragment (empty if the run had no ``economics`` section).
    figures : list of plotly.graph_objects.Figure
        The cumulative discounted cash flow over the lifetime (payback where it crosses 0).
    """
    if "npv_eur" not in kpis:
        return "", []
    import plotly.graph_objects as go

    from twin.whatif.labels import kpi_table

    reference = escape(str(meta.get("reference_run_id") or "the reference run"))
    html = (
        "<div class='economics'>"
        f"<p>The batteries and PV of this run against {reference} (the site without "
        "them): operating costs scaled to a year by the run's length, battery "
        "replacements from the state of health the run lost.</p>"
        f"{kpi_table(kpis, ECONOMICS_KPIS)}</div>"
    )
    flows = meta.get("economics_cash_flows") or []
    rate = float(meta.get("economics_discount_rate", 0.0))
    times, cumulative, total = [], [], 0.0
    for t, amount in flows:
        total += finance.discount(amount, rate, t)
        times.append(t)
        cumulative.append(total)
    figure = go.Figure(go.Scatter(x=times, y=cumulative, mode="lines+markers", line_shape="hv"))
    figure.add_hline(y=0.0, line_dash="dot", line_color="grey")
    figure.update_layout(
        title=f"Cumulative discounted cash flow (NPV {kpis['npv_eur']:,.0f} EUR)",
        xaxis_title="years from the investment",
        yaxis_title="EUR (discounted)",
        height=360,
        template="plotly_white",
    )
    return html, [figure]
