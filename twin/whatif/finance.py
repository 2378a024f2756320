r"""The finance of an investment: capital recovery, net present value, payback.

Pure functions of numbers, no scenario: the economics section (:mod:`twin.whatif.economics`)
feeds them what a run measured. Cash flows are ``(time in years, EUR)`` events, positive
for money received (a saving) and negative for money paid; the capital cost is paid at
time 0, the yearly net saving arrives at the end of each year :math:`t = 1..N`, a battery
replacement when its state of health reaches end of life.

.. math::

    CRF(r, N) = \frac{r (1+r)^N}{(1+r)^N - 1}, \quad CRF(0, N) = \frac{1}{N}

    NPV = \sum_k \frac{C_k}{(1+r)^{t_k}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "CashFlow",
    "capital_recovery_factor",
    "cash_flows",
    "discount",
    "discounted_payback_years",
    "net_present_value",
    "replacement_times",
    "simple_payback_years",
]

#: A cash flow: (time in years from the investment, EUR; positive = received).
CashFlow = tuple[float, float]


def capital_recovery_factor(rate: float, years: float) -> float:
    r"""Share of a present sum repaid each year to recover it over ``years`` at ``rate``.

    Parameters
    ----------
    rate : float
        Discount rate per year (0.05 for 5 %), at least 0.
    years : float
        Lifetime of the investment (years), above 0.

    Returns
    -------
    float
        :math:`r (1+r)^N / ((1+r)^N - 1)`, or :math:`1/N` at :math:`r = 0`.
    """
    if years <= 0 or rate < 0:
        raise ValueError(f"need years > 0 and rate >= 0, got years={years}, rate={rate}")
    repaid = -math.expm1(-years * math.log1p(rate))  # 1 - (1+r)^-N, exact for tiny r
    return rate / repaid if repaid > 0 else 1.0 / years


def discount(amount: float, rate: float, years: float) -> float:
    """``amount`` received ``years`` from now, valued today at ``rate`` per year."""
    return amount / (1.0 + rate) ** years


def replacement_times(first_years: float, every_years: float, lifetime_years: float) -> list[float]:
    """When a battery is replaced within the lifetime (years from the investment).

    The first replacement comes after ``first_years``, the next ones every
    ``every_years`` (a new battery ages from full health); one at the very end of the
    lifetime or after it is not bought, and ``inf`` (no ageing) is never.
    """
    if not (first_years > 0 and every_years > 0) or math.isinf(first_years):
        return []
    times, t = [], first_years
    while t < lifetime_years:
        times.append(t)
        t += every_years
    return times


def cash_flows(
    capex_eur: float,
    annual_net_saving_eur: float,
    lifetime_years: int,
    replacements: Sequence[CashFlow] = (),
) -> list[CashFlow]:
    """The investment's cash flows in time order.

    Parameters
    ----------
    capex_eur : float
        Capital cost paid at time 0 (EUR).
    annual_net_saving_eur : float
        Operating cost saved per year, less O&M (EUR/year), at the end of years 1..N.
    lifetime_years : int
        Lifetime :math:`N` (years).
    replacements : sequence of (float, float)
        ``(time, cost)`` of each replacement (EUR, a positive cost).
    """
    flows = [(0.0, -capex_eur)]
    flows += [(float(t), annual_net_saving_eur) for t in range(1, lifetime_years + 1)]
    flows += [(t, -cost) for t, cost in replacements]
    return sorted(flows, key=lambda flow: flow[0])


def net_present_value(flows: Sequence[CashFlow], rate: float) -> float:
    """Sum of the cash flows, each discounted to time 0 at ``rate`` per year (EUR)."""
    return sum(discount(amount, rate, t) for t, amount in flows)


def simple_payback_years(capex_eur: float, annual_net_saving_eur: float) -> float:
    """Capital over the net yearly saving, **excluding replacements**; ``inf`` if never.

    The economics KPIs use :func:`discounted_payback_years` at rate 0 instead, which
    counts the replacements too.
    """
    if capex_eur <= 0:
        return 0.0
    if annual_net_saving_eur <= 0:
        return math.inf
    return capex_eur / annual_net_saving_eur


def discounted_payback_years(flows: Sequence[CashFlow], rate: float) -> float:
    """The time after which the cumulative discounted cash flow stays non-negative (years).

    A replacement that pushes the total below 0 again later undoes an earlier crossing:
    the payback is the last crossing, interpolated linearly between the cash flow before
    it and the one that crosses; ``inf`` if the total ends below 0, 0 if it never drops
    below 0. At ``rate`` 0 this is the simple (undiscounted) payback.
    """
    total, previous_t, payback = 0.0, 0.0, 0.0
    for t, amount in sorted(flows, key=lambda flow: flow[0]):
        value = discount(amount, rate, t)
        before, total = total, total + value
        if total < 0:
            payback = math.inf
        elif before < 0:
            payback = previous_t + (t - previous_t) * (-before / value)
        previous_t = t
    return payback
