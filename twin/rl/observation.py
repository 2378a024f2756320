"""What an RL policy observes: only what the controller could measure or knows, normalised.

One builder serves the training environment and the controller in the mosaik run, so
the policy sees the same features in both. Every feature is dimensionless: powers in
units of the batteries' rating, energies in hours at full power or in units of the
usable capacity, prices relative to the day's range and mean. Scaling a site's battery
energy and power, PV and loads by one factor and all its prices (and the battery's
replacement cost) by another leaves the observation unchanged, so one policy can serve
sites of any size and price level (tested).

Per battery: SoC within its window, hours of discharge and of charge left at full
power, the rule's setpoint and the day plan's tracking setpoint (in units of the
rating), the plan's energy ahead of the measured one now and in an hour (hours at full
power), the efficiencies, the energy-to-power ratio (/4 h), the margins of the import
price over the discharge threshold and of the export price over the charge threshold
(:func:`twin.objective.rule_thresholds`), the wear cost and the terminal value (all per
mean price of the day). For the site: net, PV and load power, yesterday's PV and load
energy from this time of day to midnight (persistence, in usable capacities, log scale),
how today differs from yesterday so far (PV power now, PV and load energy since
midnight, and their ratios, log: a cloudier or sunnier day than the persistence
forecast, what the ``forecast`` base corrects), the day-ahead forecast of today's PV
and load energy over yesterday's (log, :func:`twin.forecast.day_ahead_log_ratio`: a
forecast service's figure with its error, known from midnight on), the import price now
and ahead
within the day's range, the day's spread and the export price (per mean price), the
part of the day left, time of day and day of year (sin, cos).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.forecast import energy_log_ratio
from twin.objective import Objective, rule_thresholds

__all__ = ["PER_BATTERY", "PRICE_LOOKAHEAD_H", "DayInputs", "ObservationBuilder"]

#: Hours ahead at which the (published) import price is observed.
PRICE_LOOKAHEAD_H = (0, 1, 2, 4, 8, 12)
#: Features per battery.
PER_BATTERY = 16
SITE_FEATURES = 3 + 2 + 3 + 2 + 2 + len(PRICE_LOOKAHEAD_H) + 2 + 1 + 4
HOURS_CLIP = 8.0
POWER_CLIP = 10.0
#: Bound of the log ratios of today's energy (so far, or forecast) to yesterday's.
LOG_RATIO_CLIP = 3.0


def _signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) log(1 + |x|)``: energies of any size on a scale near -5..5."""
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class DayInputs:
    """What is known at the start of a local day.

    Attributes
    ----------
    price_import, price_export : numpy.ndarray
        Prices (EUR/kWh) from the day's first step on, at least the day's steps (more
        steps: the look-ahead beyond midnight).
    pv_yesterday_kw, load_yesterday_kw : numpy.ndarray
        Metered site PV and load (> 0 consuming) of the day before, per step.
    plan_e_kwh : numpy.ndarray
        The day plan's stored energy at the end of every step, ``(steps, B)``.
    objective : Objective
        Wear cost and terminal value per battery.
    day_of_year : int
        0-based day of the year.
    steps : int
        Steps of the day (fewer than a full day when the run ends earlier).
    forecast_log_ratio : numpy.ndarray
        The day-ahead forecast of the day's PV and load energy over yesterday's (log).
    """

    price_import: np.ndarray
    price_export: np.ndarray
    pv_yesterday_kw: np.ndarray
    load_yesterday_kw: np.ndarray
    plan_e_kwh: np.ndarray
    objective: Objective
    day_of_year: int
    steps: int
    forecast_log_ratio: np.ndarray


def _param(batteries: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([float(b[name]) for b in batteries])


class ObservationBuilder:
    """Builds observation vectors for batteries ``batteries`` (see the module notes).

    Parameters
    ----------
    batteries : list of dict
        Battery unit parameters.
    step_s : int
        Step length in seconds.
    """

    def __init__(self, batteries: list[dict[str, Any]], step_s: int) -> None:
        self.n_b = len(batteries)
        self.step_s = step_s
        self.dt_h = step_s / 3600.0
        self.steps_per_day = 86400 // step_s
        self.p_max = _param(batteries, "p_max_kw")
        self.e_cap = _param(batteries, "e_kwh") * _param(batteries, "soh_init")
        self.soc_min = _param(batteries, "soc_min")
        self.soc_max = _param(batteries, "soc_max")
        self.eta_ch = _param(batteries, "eta_ch")
        self.eta_dis = _param(batteries, "eta_dis")
        self.p_total = float(self.p_max.sum())
        self.e_usable = float(((self.soc_max - self.soc_min) * self.e_cap).sum())
        self.offsets = np.array([int(h * 3600 // step_s) for h in PRICE_LOOKAHEAD_H])
        self.day: DayInputs | None = None

    def size(self) -> int:
        """Length of the observation vector."""
        return PER_BATTERY * self.n_b + SITE_FEATURES

    def start_day(self, day: DayInputs) -> None:
        """Take the day's known inputs (call at every local midnight and at the start)."""
        self.day = day
        n = day.steps
        prices = day.price_import[:n]
        self.mean_price = max(float(prices.mean()), 1e-3)
        self.low = float(prices.min())
        self.spread = float(prices.max()) - self.low
        discharge, charge = rule_thresholds(day.objective, self.eta_ch, self.eta_dis)
        self.discharge_threshold, self.charge_threshold = discharge, charge
        # Yesterday's energy from step i to midnight (kWh), from metered power.
        for name, series in (("pv", day.pv_yesterday_kw), ("load", day.load_yesterday_kw)):
            series = np.asarray(series, dtype=float)
            rest = np.concatenate([np.cumsum(series[::-1])[::-1], [0.0]]) * self.dt_h
            setattr(self, f"_{name}_rest", rest)
            setattr(self, f"_{name}_yesterday", series)
        # Today's metered power, by step (filled as the day goes).
        self._pv_today = np.zeros(len(day.pv_yesterday_kw))
        self._load_today = np.zeros(len(day.load_yesterday_kw))
        angle = 2 * np.pi * day.day_of_year / 365.0
        self._season = [np.sin(angle), np.cos(angle)]

    def plan_target(self, i: int) -> np.ndarray:
        """The plan's stored energy at the end of step ``i`` of the day (kWh)."""
        assert self.day is not None
        plan = self.day.plan_e_kwh
        return plan[min(i, len(plan) - 1)]

    def build(
        self,
        i: int,
        soc: np.ndarray,
        rule_kw: np.ndarray,
        track_kw: np.ndarray,
        pv_kw: float,
        load_kw: float,
    ) -> np.ndarray:
        """Observation at step ``i`` of the day (``load_kw`` > 0 consuming)."""
        day = self.day
        assert day is not None, "call start_day() first"
        soc = np.asarray(soc, dtype=float)
        e_now = soc * self.e_cap
        window = np.maximum(self.soc_max - self.soc_min, 1e-9)
        one_h = max(int(round(1.0 / self.dt_h)), 1)
        obj = day.objective
        pi = self.mean_price
        price = day.price_import[min(i, len(day.price_import) - 1)]
        export = day.price_export[min(i, len(day.price_export) - 1)]
        per_battery = np.stack(
            [
                (soc - self.soc_min) / window,
                np.clip(
                    (soc - self.soc_min) * self.e_cap * self.eta_dis / self.p_max, 0, HOURS_CLIP
                ),
                np.clip(
                    (self.soc_max - soc) * self.e_cap / (self.eta_ch * self.p_max), 0, HOURS_CLIP
                ),
                np.asarray(rule_kw, dtype=float) / self.p_max,
                np.asarray(track_kw, dtype=float) / self.p_max,
                np.clip((self.plan_target(i) - e_now) / self.p_max, -HOURS_CLIP, HOURS_CLIP),
                np.clip(
                    (self.plan_target(i + one_h) - e_now) / self.p_max, -HOURS_CLIP, HOURS_CLIP
                ),
                self.eta_ch,
                self.eta_dis,
                self.e_cap / self.p_max / 4.0,
                (price - self.discharge_threshold) / pi,
                (export - self.charge_threshold) / pi,
                obj.wear / pi,
                obj.terminal_value / pi,
                np.full(self.n_b, (self.soc_max - self.soc_min).mean()),
                self.soc_min,
            ],
            axis=1,
        ).ravel()
        ahead = np.minimum(i + self.offsets, len(day.price_import) - 1)
        relative = (
            (day.price_import[ahead] - self.low) / self.spread
            if self.spread > 1e-9
            else np.zeros(len(ahead))
        )
        j = min(i, len(self._pv_rest) - 1)
        m = min(i, len(self._pv_today) - 1)
        self._pv_today[m], self._load_today[m] = pv_kw, load_kw
        scale_e = max(self.e_usable, 1e-9)
        today = np.array([self._pv_today[: m + 1].sum(), self._load_today[: m + 1].sum()])
        before = np.array([self._pv_yesterday[: m + 1].sum(), self._load_yesterday[: m + 1].sum()])
        so_far = (today - before) * self.dt_h
        log_ratio = np.array(
            [
                energy_log_ratio(t, b, float(y.sum()))
                for t, b, y in zip(
                    today, before, (self._pv_yesterday, self._load_yesterday), strict=True
                )
            ]
        )
        hour_angle = 2 * np.pi * i / self.steps_per_day
        site = np.concatenate(
            [
                np.clip(
                    np.array([pv_kw - load_kw, pv_kw, load_kw]) / self.p_total,
                    -POWER_CLIP,
                    POWER_CLIP,
                ),
                np.log1p(np.array([self._pv_rest[j], self._load_rest[j]]) / scale_e),
                [np.clip((pv_kw - self._pv_yesterday[m]) / self.p_total, -POWER_CLIP, POWER_CLIP)],
                _signed_log(so_far / scale_e),
                np.clip(log_ratio, -LOG_RATIO_CLIP, LOG_RATIO_CLIP),
                np.clip(day.forecast_log_ratio, -LOG_RATIO_CLIP, LOG_RATIO_CLIP),
                relative,
                [self.spread / pi, export / pi],
                [1.0 - i / self.steps_per_day],
                [np.sin(hour_angle), np.cos(hour_angle), *self._season],
            ]
        )
        return np.concatenate([per_battery, site]).astype(np.float32)
