"""A Gymnasium environment that runs the twin's own model classes, one day per episode.

mosaik cannot reset a world, so training runs the models directly, with the same
physics as the co-simulation: the PV, load and tariff models precompute the whole
year, a fresh battery model starts every episode, and the grid model solves the AC
power flow of every step. Given the same setpoints, a step here equals a step of the
mosaik run (tested to 1e-9 on SoC and cost).

Actions are corrections in -1..1 of each battery's rating added to the rule-based
self-consumption setpoint (:mod:`twin.rl.baseline`; > 0 discharge). The
reward is the step's saving against doing nothing (energy cost with the battery idle,
at this step's grid losses, minus the cost with it, EUR), minus the degradation cost
of the throughput and a penalty for asking beyond the battery's limits; the last step
adds the change of stored energy valued at the terminal price, so emptying the battery
earns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from models.base import Clock
from models.battery import Battery
from models.grid import Grid
from models.load import Load
from models.pv import PVPlant
from models.tariff import Tariff
from twin.objective import Objective, objective_for
from twin.rl.baseline import RuleBaseline
from twin.rl.observation import ObservationBuilder
from twin.scenario import ScenarioBase

__all__ = ["LIMIT_PENALTY_EUR_KWH", "MicrogridEnv", "StepRecord", "split_days"]

LIMIT_PENALTY_EUR_KWH = 0.05
OBS_BOUND = 100.0


def split_days(n_days: int, every: int = 5) -> tuple[list[int], list[int]]:
    """Training and validation day indices, kept apart: every ``every``-th day validates."""
    days = list(range(n_days))
    return [d for d in days if d % every != 2], [d for d in days if d % every == 2]


@dataclass
class StepRecord:
    """What one environment step did (for tests and evaluation)."""

    p_battery_kw: np.ndarray
    soc: np.ndarray
    p_import_kw: float
    cost_eur: float
    losses_kw: float


class MicrogridEnv(gym.Env[np.ndarray, np.ndarray]):
    """One day of the scenario's site per episode, battery setpoints as actions.

    Parameters
    ----------
    scenario : ScenarioBase
        A resolved scenario with at least one battery; its ``start`` date's year
        (``year_days`` days from local midnight of its first day) is the day pool.
    days : list of int, optional
        Day indices the episodes draw from (default: all).
    year_days : int
        Days of data to prepare, starting at the scenario's first local midnight.
    """

    metadata = {"render_modes": []}

    def __init__(
        self, scenario: ScenarioBase, days: list[int] | None = None, year_days: int = 365
    ) -> None:
        super().__init__()
        if not scenario.units("battery"):
            raise ValueError("the RL environment dispatches batteries: the scenario has none")
        self.scenario = scenario
        tz = scenario.site.tz
        first = pd.Timestamp(scenario.start).tz_convert(tz).normalize()
        step_s = scenario.clock().step_s
        self.steps_per_day = 86400 // step_s
        self.clock = Clock(first, step_s, year_days * self.steps_per_day)
        self.days = list(range(year_days)) if days is None else list(days)
        context = {
            "site": scenario.site.model_dump(),
            "weather": scenario.weather,
            "grid": scenario.grid.source,
            "seed": scenario.seed,
        }
        self.context = context
        self.pv = (
            PVPlant(scenario.units("pv"), self.clock, context) if scenario.units("pv") else None
        )
        self.load = (
            Load(scenario.units("load"), self.clock, context) if scenario.units("load") else None
        )
        tariff_unit = {"name": "tariff", **scenario.tariff.model_dump()}
        self.tariff = Tariff([tariff_unit], self.clock, context)
        grid_unit = {"name": "poc", "grid": scenario.grid.source, "solver": scenario.grid.solver}
        self.grid = Grid([grid_unit], self.clock, context)
        self.batteries = scenario.units("battery")
        self.p_max = np.array([b["p_max_kw"] for b in self.batteries])
        self.dt_s = step_s
        self.dt_h = step_s / 3600.0
        bus_pos = {bus: i for i, bus in enumerate(self.grid.net.bus.index)}
        self._bus = {
            kind: np.array([bus_pos[u["bus"]] for u in scenario.units(kind)], dtype=np.int64)
            for kind in ("pv", "load", "battery")
        }
        prices = self.tariff.exogenous()
        self.price_import = prices["price_import_eur_kwh"][:, 0]
        self.price_export = prices["price_export_eur_kwh"][:, 0]
        p_scale = max(
            sum(u["p_dc_kw"] for u in scenario.units("pv")),
            sum(u["p_kw"] for u in scenario.units("load")),
            1.0,
        )
        # Site totals of every step, as the controller measures them (kW, load < 0).
        n = self.clock.n_steps
        self.site_pv_kw = self.pv.exogenous()["p_kw"].sum(axis=1) if self.pv else np.zeros(n)
        self.site_load_kw = self.load.exogenous()["p_kw"].sum(axis=1) if self.load else np.zeros(n)
        day = self.steps_per_day  # the first day stands in for the day before it
        self.observer = ObservationBuilder(
            self.clock.times.tz_convert(tz),
            self.price_import,
            step_s,
            p_scale,
            np.concatenate([self.site_pv_kw[:day], self.site_pv_kw]),
            -np.concatenate([self.site_load_kw[:day], self.site_load_kw]),
        )
        n_b = len(self.batteries)
        size = self.observer.size(n_b)
        # Features are scaled near -1..1 (prices in EUR/kWh): generous finite bounds.
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (size,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n_b,), np.float32)
        control = scenario.control
        self.terminal_price = control.terminal_price_eur_kwh
        self.baseline = RuleBaseline(
            self.batteries, self.clock, control.p_import_max_kw, self._day_objective(0)
        )
        #: The rule controller's setpoints (kW) for the current step; actions correct them.
        self.rule_kw = np.zeros(n_b)
        self.battery: Battery | None = None
        self.k = 0
        self.k_end = 0
        self.last: StepRecord | None = None

    # -- physics ----------------------------------------------------------------------
    def _asset_outputs(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PV and load outputs per unit at step ``k``, from the models' own ``step``."""
        now = self.clock.time_at(k * self.dt_s)
        pv = self.pv.step(now, self.dt_s, {"derate": np.ones(self.pv.n)}) if self.pv else None
        load = (
            self.load.step(now, self.dt_s, {"scale": np.ones(self.load.n)}) if self.load else None
        )
        pv_kw = pv["p_kw"] if pv else np.zeros(0)
        load_kw = load["p_kw"] if load else np.zeros(0)
        load_q = load["q_kvar"] if load else np.zeros(0)
        return pv_kw, load_kw, load_q

    def physics_step(self, p_set_kw: np.ndarray) -> StepRecord:
        """Advance one step with battery setpoints ``p_set_kw`` (kW, > 0 discharge)."""
        assert self.battery is not None, "call reset() first"
        k = self.k
        now = self.clock.time_at(k * self.dt_s)
        pv_kw, load_kw, load_q = self._asset_outputs(k)
        bat = self.battery.step(now, self.dt_s, {"p_set_kw": np.asarray(p_set_kw, float)})
        n_bus = len(self.grid.net.bus)
        p_bus = np.zeros(n_bus)
        q_bus = np.zeros(n_bus)
        np.add.at(p_bus, self._bus["pv"], pv_kw)
        np.add.at(p_bus, self._bus["load"], load_kw)
        np.add.at(q_bus, self._bus["load"], load_q)
        np.add.at(p_bus, self._bus["battery"], bat["p_kw"])
        inputs = {**self.grid.default_inputs(), "p_kw": p_bus, "q_kvar": q_bus}
        grid = self.grid.step(now, self.dt_s, inputs)
        p_import = float(grid["p_kw"][0])
        cost = (
            max(p_import, 0.0) * self.price_import[k] - max(-p_import, 0.0) * self.price_export[k]
        )
        record = StepRecord(
            bat["p_kw"], bat["soc"], p_import, cost * self.dt_h, float(grid["losses_kw"][0])
        )
        self.k += 1
        self.last = record
        return record

    def _day_objective(self, day: int) -> Objective:
        """The objective of an episode on ``day`` (its prices value the stored energy)."""
        steps = slice(day * self.steps_per_day, (day + 1) * self.steps_per_day)
        return objective_for(self.batteries, self.price_import[steps], self.terminal_price)

    # -- Gymnasium API ----------------------------------------------------------------
    def _observation(self) -> np.ndarray:
        k = min(self.k, self.clock.n_steps - 1)
        pv, load = self.site_pv_kw[k], self.site_load_kw[k]
        soc = self.battery.soc.copy() if self.battery is not None else np.zeros(len(self.batteries))
        self.rule_kw = self.baseline.setpoint(
            self.clock.time_at(k * self.dt_s),
            self.dt_s,
            pv + load,
            soc,
            self.price_import[k],
            self.price_export[k],
        )
        return self.observer.build(k, soc, self.rule_kw / self.p_max, pv, -load)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a day: ``options["day"]`` or one drawn from the day pool."""
        super().reset(seed=seed)
        options = options or {}
        day = int(options["day"]) if "day" in options else int(self.np_random.choice(self.days))
        self.day = day
        self.k = day * self.steps_per_day
        self.k_end = self.k + self.steps_per_day
        self.battery = Battery(self.batteries, self.clock, self.context)
        self.grid.reset()  # no warm start carried over from the previous episode
        self.baseline.objective = self._day_objective(day)
        self.e_start = self.battery.soc * self.battery.e_kwh * self.battery.soh
        return self._observation(), {"day": day}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the action for one step; the episode is truncated at the day's end."""
        k = self.k
        pv, load = self.site_pv_kw[k], self.site_load_kw[k]
        p_set = self.baseline.apply(self.rule_kw, action)
        record = self.physics_step(p_set)
        # What the site would import with the battery idle (this step's grid losses kept).
        idle = -(pv + load) + record.losses_kw
        cost_idle = max(idle, 0.0) * self.price_import[k] - max(-idle, 0.0) * self.price_export[k]
        wear = float(self.baseline.objective.wear @ (np.abs(record.p_battery_kw) * self.dt_h))
        reward = cost_idle * self.dt_h - record.cost_eur - wear
        reward -= (
            LIMIT_PENALTY_EUR_KWH * float(np.abs(p_set - record.p_battery_kw).sum()) * self.dt_h
        )
        truncated = self.k >= self.k_end
        if truncated:
            e_end = self.battery.soc * self.battery.e_kwh * self.battery.soh
            price = self.terminal_price
            if price is None:
                price = float(
                    self.price_import[self.k_end - self.steps_per_day : self.k_end].mean()
                )
            reward += price * float((e_end - self.e_start).sum())
        info = {"cost_eur": record.cost_eur, "p_import_kw": record.p_import_kw}
        return self._observation(), float(reward), False, truncated, info
