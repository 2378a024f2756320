"""Electricity tariffs: time-of-use import prices, an export price, or a price series."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock, Model, Port
from models.profiles import CsvSeries, MissingColumnError, csv_series
from models.series import clock_means
from models.window import StepWindows

__all__ = ["Tariff", "time_of_use_means", "time_of_use_price"]

#: Plausible prices (EUR/kWh) of a price series; beyond, someone wrote EUR/MWh.
PRICE_MAX_EUR_KWH = 100.0
PRICE_LIMITS = (-PRICE_MAX_EUR_KWH, PRICE_MAX_EUR_KWH)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def time_of_use_price(
    times_local: pd.DatetimeIndex, base_eur_kwh: float, periods: list[dict[str, Any]]
) -> np.ndarray:
    """Import price (EUR/kWh) at local times under a time-of-use schedule.

    Parameters
    ----------
    times_local : pandas.DatetimeIndex
        Times in the tariff's local time zone.
    base_eur_kwh : float
        Price outside every period.
    periods : list of dict
        ``{"start": "HH:MM", "end": "HH:MM", "import_eur_kwh": float}``; a period whose
        end is before its start wraps past midnight. Later periods win on overlap.
    """
    minute_of_day = times_local.hour.to_numpy() * 60 + times_local.minute.to_numpy()
    price = np.full(len(times_local), float(base_eur_kwh))
    for period in periods:
        start, end = _minutes(period["start"]), _minutes(period["end"])
        if start <= end:
            inside = (minute_of_day >= start) & (minute_of_day < end)
        else:
            inside = (minute_of_day >= start) | (minute_of_day < end)
        price[inside] = float(period["import_eur_kwh"])
    return price


def time_of_use_means(clock: Clock, tz: str, unit: dict[str, Any]) -> np.ndarray:
    """Mean time-of-use import price over every step (periods in local wall-clock time).

    A step that spans a period boundary gets the time-weighted mean of both prices,
    so ``price * energy`` summed over the steps is the cost at any step length.
    """
    periods = unit.get("periods", [])
    edges = [_minutes(p[key]) for p in periods for key in ("start", "end")]
    resolution_min = int(np.gcd.reduce([15, *edges]))

    def value_at(times_utc: pd.DatetimeIndex) -> np.ndarray:
        return time_of_use_price(times_utc.tz_convert(tz), unit["import_eur_kwh"], periods)

    return clock_means(clock, value_at, resolution_min * 60)


class Tariff(Model):
    """The site's tariff (one unit).

    Unit parameters: ``import_eur_kwh`` (base import price), ``periods`` (time-of-use
    periods, see :func:`time_of_use_price`), ``export_eur_kwh`` and ``price_csv``
    (optional CSV with ``time``, ``import_eur_kwh`` and optionally ``export_eur_kwh``
    columns, which then replaces the schedule). ``demand_charge_eur_kw`` (on the run's
    peak import) is applied by the KPIs and the planners, not per step.
    """

    kind = "tariff"
    outputs = {
        "price_import_eur_kwh": Port("EUR/kWh", "price paid per kWh imported"),
        "price_export_eur_kwh": Port("EUR/kWh", "price received per kWh exported"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self._tz = self.context.get("site", {}).get("tz", "UTC")
        # price files are read and checked against the whole run once
        self._files: list[tuple[CsvSeries | None, CsvSeries | None]] = []
        for unit in units:
            imports = exports = None
            if unit.get("price_csv"):
                imports = csv_series(unit["price_csv"], "import_eur_kwh", clock, PRICE_LIMITS)
                try:
                    exports = csv_series(unit["price_csv"], "export_eur_kwh", clock, PRICE_LIMITS)
                except MissingColumnError:  # an export column is optional
                    pass
            self._files.append((imports, exports))
        # working memory per step: both prices and the interval means' temporaries
        self._windows = StepWindows(clock, self._window_prices, 8 * 16 * self.n)
        self._windows.row(0)

    def _window_prices(self, clock: Clock) -> tuple[np.ndarray, np.ndarray]:
        """Import and export prices of every unit over the steps of ``clock`` (a window)."""
        imports, exports = [], []
        for unit, (import_file, export_file) in zip(self.units, self._files, strict=True):
            if import_file is not None:
                imports.append(import_file.means(clock))
            else:
                imports.append(time_of_use_means(clock, self._tz, unit))
            if export_file is not None:
                exports.append(export_file.means(clock))
            else:
                exports.append(np.full(clock.n_steps, float(unit["export_eur_kwh"])))
        return np.column_stack(imports), np.column_stack(exports)

    def exogenous(self) -> dict[str, np.ndarray]:
        """Import and export prices for every step (tariffs are known in advance)."""
        imports, exports = self._windows.whole()
        return {"price_import_eur_kwh": imports, "price_export_eur_kwh": exports}

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Prices of step ``now``."""
        imports, exports = self._windows.row(self.clock.index_of(now))
        return {"price_import_eur_kwh": imports, "price_export_eur_kwh": exports}
