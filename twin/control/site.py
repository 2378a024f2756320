"""What a planning controller knows about its site ahead of time.

Built from the same model classes as the run (one source of truth for the physics):
the net non-dispatchable power (PV + loads, > 0 surplus) and the prices, over any
window (the run, or the meter history before it), and the objective
(:mod:`twin.objective`) the run is scored by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock
from models.load import Load
from models.pv import PVPlant
from models.tariff import Tariff
from twin.errors import TwinError
from twin.objective import Objective, objective_for

__all__ = ["ObjectiveUnknownError", "SiteSeries", "run_objective", "site_series"]


class ObjectiveUnknownError(TwinError):
    """A controller was given neither the run's objective nor the prices to compute it."""


@dataclass
class SiteSeries:
    """Site series over a window (kW, EUR/kWh).

    PV (> 0), loads (< 0), their sum ``net_kw`` (> 0 surplus) and prices.
    """

    times: pd.DatetimeIndex
    net_kw: np.ndarray
    pv_kw: np.ndarray
    load_kw: np.ndarray
    price_import_eur_kwh: np.ndarray
    price_export_eur_kwh: np.ndarray


def site_series(context: dict[str, Any], clock: Clock) -> SiteSeries:
    """Exogenous site series over ``clock`` from the run context's assets and tariff.

    ``context["assets"]`` holds the resolved ``pv`` and ``load`` units and
    ``context["tariff"]`` the tariff unit.
    """
    assets = context.get("assets", {})
    totals = {}
    for cls, kind in ((PVPlant, "pv"), (Load, "load")):
        units = assets.get(kind, [])
        totals[kind] = np.zeros(clock.n_steps)
        if units:
            totals[kind] = cls(units, clock, context).exogenous()["p_kw"].sum(axis=1)
    prices = Tariff([context["tariff"]], clock, context).exogenous()
    return SiteSeries(
        clock.times,
        totals["pv"] + totals["load"],
        totals["pv"],
        totals["load"],
        prices["price_import_eur_kwh"][:, 0],
        prices["price_export_eur_kwh"][:, 0],
    )


def run_objective(
    batteries: list[dict[str, Any]], clock: Clock, context: dict[str, Any]
) -> Objective:
    """The objective the run over ``clock`` is scored by (wear, terminal value per battery).

    ``context["objective"]`` when given (an :class:`~twin.objective.Objective`), else
    :func:`~twin.objective.objective_for` over the run's import prices:
    ``context["price_import_eur_kwh"]``, else the prices of ``context["tariff"]`` over
    ``clock``. ``context["control"]["terminal_price_eur_kwh"]`` overrides the terminal
    value.

    Raises
    ------
    ObjectiveUnknownError
        If the context holds none of the three.
    """
    given = context.get("objective")
    if given is not None:
        return given
    prices = context.get("price_import_eur_kwh")
    if prices is None and context.get("tariff") is not None:
        prices = Tariff([context["tariff"]], clock, context).exogenous()["price_import_eur_kwh"]
    if prices is None:
        raise ObjectiveUnknownError(
            "context: expected 'objective', 'price_import_eur_kwh' or 'tariff' to know what "
            "a kWh of stored energy and of battery wear is worth (a controller is never "
            "price-blind)"
        )
    override = (context.get("control") or {}).get("terminal_price_eur_kwh")
    return objective_for(batteries, np.ravel(prices), override)
