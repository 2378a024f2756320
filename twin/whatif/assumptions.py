"""What a what-if study assumed, in words: unit costs, lifetime, rates, year, reference.

Read from a run's ``run.json`` (its recorded scenario and the reference it used), so a
report states every input its economics and carbon figures rest on.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["assumption_rows", "assumptions_summary", "assumptions_table", "year_factor_of"]

SECONDS_PER_YEAR = 365 * 86_400


def year_factor_of(scenario: dict[str, Any]) -> float | None:
    """``365 days / run days`` of a recorded scenario (None: no duration recorded)."""
    from twin.units import parse_duration_s

    try:
        return SECONDS_PER_YEAR / parse_duration_s(scenario["duration"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _reference(meta: dict[str, Any]) -> str:
    economics = (meta.get("scenario") or {}).get("economics") or {}
    given = economics.get("reference_run")
    run_id = meta.get("reference_run_id") or "?"
    if given:
        return f"the given run {run_id} ({given})"
    removed = meta.get("reference_removed")
    if removed is None:
        return f"run {run_id}, made beside this one"
    return f"run {run_id}, made beside this one without: {', '.join(removed) or 'nothing'}"


def assumption_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) of every input of the run's economics and carbon figures."""
    scenario = meta.get("scenario") or {}
    economics, carbon = scenario.get("economics"), scenario.get("carbon")
    if economics is None and carbon is None:
        return []
    factor = year_factor_of(scenario)
    rows = [
        (
            "Year",
            f"the run ({scenario.get('duration')}) x {factor:,.4g} = 365 days"
            if factor
            else "unknown run length",
        ),
        ("Reference", _reference(meta)),
    ]
    if economics is not None:
        invest = economics.get("invest")
        demand = ((scenario.get("tariff") or {}).get("demand_charge_eur_kw")) or 0.0
        rows += [
            ("Invested", ", ".join(invest) if invest else "every battery and PV plant"),
            (
                "Unit costs",
                f"battery {economics.get('battery_eur_kwh'):,.4g} EUR/kWh + "
                f"{economics.get('battery_eur_kw'):,.4g} EUR/kW, PV "
                f"{economics.get('pv_eur_kwp'):,.4g} EUR/kWp",
            ),
            (
                "Battery replacement",
                "each battery's replacement_eur_kwh (if 0: the battery's capital cost per "
                "kWh) at end of life, ageing at the rate the run measured",
            ),
            ("Lifetime", f"{economics.get('lifetime_years')} years"),
            ("Discount rate", f"{100 * economics.get('discount_rate', 0.0):.4g} % per year"),
            ("O&M", f"{economics.get('om_eur_year'):,.4g} EUR/year"),
            (
                "Operating cost per year",
                "(energy cost - value of the stored energy change) x the year factor, plus "
                f"the demand charge ({demand:,.4g} EUR/kW, monthly) on the run's peak x 12",
            ),
        ]
    if carbon is not None:
        source = (
            f"constant {carbon['intensity_g_kwh']:,.4g} gCO2/kWh"
            if carbon.get("intensity_g_kwh") is not None
            else f"series {carbon.get('intensity_csv')}"
        )
        rows += [
            ("Carbon intensity", source),
            ("Exports credited", "yes" if carbon.get("credit_exports") else "no (imports only)"),
            ("Stored energy change", "valued at the run's mean carbon intensity"),
        ]
    return rows


def assumptions_table(meta: dict[str, Any]) -> str:
    """The assumptions as an HTML table (empty without a what-if section)."""
    rows = assumption_rows(meta)
    if not rows:
        return ""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h4>Assumptions</h4><table class='assumptions'>{body}</table>"


def assumptions_summary(meta: dict[str, Any]) -> list[str]:
    """The assumptions as lines of the page's summary (``what: value``)."""
    return [f"{k}: {v}" for k, v in assumption_rows(meta)]
