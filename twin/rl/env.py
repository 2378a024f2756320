"""A Gymnasium environment that runs the twin's own model classes, one day per episode.

mosaik cannot reset a world, so training runs the models directly, with the same
physics as the co-simulation: the PV and load models precompute the year of every base
site once (:mod:`twin.rl.domain`), a fresh battery model starts every episode, and the
grid model solves the AC power flow of every step. Given the same setpoints, a step
here equals a step of the mosaik run (tested to 1e-9 on SoC and cost).

Every episode is one local day of a site drawn from the domain (domain randomisation:
another battery, PV size, tariff, feeder and day each time), or of one scenario's own
site (:meth:`twin.rl.domain.Domain.fixed`). Nothing carries over from one episode to the
next: the battery, the grid's warm start, the rule and the day plan are rebuilt.

Actions are corrections in -1..1 of each battery's rating added to a base setpoint
(:mod:`twin.rl.baseline`; > 0 discharge): the price-aware rule's (``base="rule"``),
the one that follows the day-ahead plan (``base="plan"``, :mod:`twin.rl.plan`), or
that of MPC re-planning every ``replan`` on persistence forecasts (``base="mpc"``:
:class:`twin.control.optimal.MPCController` itself, fed the episode's series, so a
zero correction is MPC's own dispatch; it sees only what was metered so far).
With ``base="forecast"`` the action is not a setpoint: its two values correct the PV
and load forecasts of that MPC (:mod:`twin.rl.forecast_action`), which dispatches; with
``base="day_ahead"`` they correct MPC's day-ahead forecast instead of persistence.

Besides meters and prices the agent reads the modelled day-ahead forecast of the day's
PV and load energy (:func:`twin.forecast.day_ahead_log_ratio`, error
``forecast_error``). Its error is drawn from a forecast seed per episode (drawn by the
environment, or ``options["forecast_seed"]``), so that a policy cannot learn the errors
of particular dates.

The reward is the per-step decomposition of the scored cost :math:`J` of
:mod:`twin.objective` (energy, demand charge increment, wear on the cells' throughput,
and the step's change of stored energy valued at the terminal value: summed over the
day, the terminal term of :math:`J`; valued as it happens, so that discounting cannot
make draining the battery early look like a saving), taken
against the same quantities with the battery idle at this step's grid losses (a
baseline independent of the action), divided by what a step at full power costs at the
day's mean import price (rating x mean price x step length), so that rewards have the
same scale on every site.
Summed over the episode, ``info["cost_eur"]`` is the day's scored cost (tested equal to
:func:`twin.objective.scored_cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from models.base import Clock
from models.battery import Battery
from twin.control.optimal import MPCController
from twin.control.site import SiteSeries
from twin.forecast import DAY_AHEAD_ERROR, DAY_AHEAD_TRUST, day_ahead_log_ratio
from twin.objective import Objective, objective_for
from twin.rl.baseline import RuleBaseline
from twin.rl.domain import BaseSite, Domain, Site, split_days
from twin.rl.forecast_action import CorrectedPersistence
from twin.rl.observation import DayInputs, ObservationBuilder
from twin.rl.plan import (
    DEFAULT_REPLAN,
    FORECAST_BASES,
    MPC_BASES,
    day_plan,
    mpc_base_control,
    tracking_setpoint,
)
from twin.scenario import ScenarioBase

__all__ = [
    "BASES",
    "MicrogridEnv",
    "StepRecord",
    "split_days",
]

OBS_BOUND = 100.0
#: What the residual action corrects.
BASES = ("rule", "plan", "mpc", *FORECAST_BASES)


@dataclass
class StepRecord:
    """What one environment step did (for tests and evaluation)."""

    p_battery_kw: np.ndarray
    soc: np.ndarray
    p_import_kw: float
    cost_eur: float
    losses_kw: float
    e_kwh: np.ndarray
    throughput_kwh: np.ndarray


class MicrogridEnv(gym.Env[np.ndarray, np.ndarray]):
    """One day of a (randomised) site per episode, battery setpoints as actions.

    Parameters
    ----------
    source : ScenarioBase or Domain
        A resolved scenario with at least one battery (its own site every episode) or
        a domain to draw sites from.
    days : list of int, optional
        Day indices the episodes draw from (default: all).
    year_days : int
        Days of data to prepare for a scenario (from its first local midnight).
    base : str
        What the action corrects: the setpoint of ``"rule"``, ``"plan"`` or ``"mpc"``,
        or the forecast MPC plans with: persistence (``"forecast"``) or the modelled
        day-ahead forecast (``"day_ahead"``).
    replan : str
        How often the MPC bases re-plan (a duration, e.g. ``1h`` or ``15min``).
    defer_grid : bool
        The MPC bases' least-commitment tie-break (MPC's ``control.defer_grid``).
    scale : float
        The largest setpoint correction, as a fraction of the battery's rating (not
        used by the ``forecast`` base).
    forecast_error : tuple of float
        Log errors of the day-ahead forecast of PV and load energy (observed).
    forecast_trust : float
        The weight of that forecast against persistence in the ``day_ahead`` base's plan.

    Notes
    -----
    A domain's sampled sites have one battery; a scenario's site as many as it has.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        source: ScenarioBase | Domain,
        days: list[int] | None = None,
        year_days: int = 365,
        base: str = "rule",
        replan: str = DEFAULT_REPLAN,
        defer_grid: bool = True,
        scale: float = 1.0,
        forecast_error: tuple[float, float] = DAY_AHEAD_ERROR,
        forecast_trust: float = DAY_AHEAD_TRUST,
    ) -> None:
        super().__init__()
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}; expected one of {', '.join(BASES)}")
        if isinstance(source, Domain):
            self.domain = source
        else:
            if not source.units("battery"):
                raise ValueError("the RL environment dispatches batteries: the scenario has none")
            self.domain = Domain.fixed(source, year_days)
        self.base_kind = base
        self.replan = replan
        self.defer_grid = defer_grid
        self.scale = scale
        if len(forecast_error) != 2 or not all(0.0 <= float(e) <= 3.0 for e in forecast_error):
            raise ValueError(
                "forecast_error: expected two log errors (PV, load) in 0..3, "
                f"got {forecast_error!r}"
            )
        if not 0.0 <= float(forecast_trust) <= 1.0:
            raise ValueError(f"forecast_trust: expected a weight in 0..1, got {forecast_trust!r}")
        self.forecast_error = forecast_error
        self.forecast_trust = forecast_trust
        self.forecast_seed = 0
        self.mpc: MPCController | None = None
        self.forecaster: CorrectedPersistence | None = None
        first = self.domain.bases[0]
        self.steps_per_day = first.steps_per_day
        self.dt_s = first.step_s
        self.dt_h = self.dt_s / 3600.0
        self.days = list(range(first.year_days)) if days is None else list(days)
        fixed = self.domain.fixed_site
        n_b = len(fixed.batteries) if fixed is not None else 1
        size = ObservationBuilder([_PROBE] * n_b, self.dt_s).size()
        # Features are normalised near -1..1: generous finite bounds.
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (size,), np.float32)
        n_actions = 2 if base in FORECAST_BASES else n_b
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n_actions,), np.float32)
        self.site: Site | None = None
        self.base: BaseSite = first
        self.battery: Battery | None = None
        self.rule_kw = np.zeros(n_b)
        self.track_kw = np.zeros(n_b)
        self.base_kw = np.zeros(n_b)
        self.k = 0
        self.k0 = 0
        self.k_end = 0
        self.last: StepRecord | None = None

    # -- the episode's site -------------------------------------------------------------
    def _start(self, site: Site, day: int) -> None:
        """Set up ``site`` on ``day``: prices, objective, battery, rule, plan, observer."""
        base = self.domain.bases[site.base]
        spd = self.steps_per_day
        self.site, self.base, self.day = site, base, day
        self.k0 = self.k = base.day_start(day)
        self.k_end = self.k0 + spd
        self.batteries = site.batteries
        self.p_max = np.array([b["p_max_kw"] for b in site.batteries], dtype=float)
        # Prices of the day and the next (look-ahead past midnight).
        self.price_import, self.price_export = base.prices(site, self.k0, 2 * spd)
        self.objective: Objective = objective_for(
            site.batteries, self.price_import[:spd], site.terminal_price
        )
        self.demand_charge = float(site.tariff.get("demand_charge_eur_kw") or 0.0)
        self.load_scale = site.load_scale
        window = slice(self.k0 - spd, self.k_end)
        self.pv_scale = np.broadcast_to(np.asarray(site.pv_scale, float), (base.pv_kw.shape[1],))
        self.site_pv_kw = base.pv_kw[window] @ self.pv_scale
        self.site_load_kw = base.load_kw[window].sum(axis=1) * site.load_scale  # < 0
        self.battery = Battery(site.batteries, base.clock, base.context)
        base.grid.reset()  # no warm start carried over from the previous episode
        self.e_start = self._stored()
        self.e_prev = self.e_start.copy()
        self.peak, self.peak_idle = 0.0, 0.0
        self.baseline = RuleBaseline(site.batteries, base.clock, None, self.objective)
        self.e_cap = np.array([b["e_kwh"] * b["soh_init"] for b in site.batteries])
        self.eta_ch = np.array([b["eta_ch"] for b in site.batteries])
        self.eta_dis = np.array([b["eta_dis"] for b in site.batteries])
        net_yesterday = self.site_pv_kw[:spd] + self.site_load_kw[:spd]
        plan = day_plan(
            site.batteries,
            self.battery.soc,
            net_yesterday,
            self.price_import[:spd],
            self.price_export[:spd],
            self.dt_h,
            self.objective,
            self.demand_charge,
        )
        local = base.times_local[self.k0]
        self.day_ahead = day_ahead_log_ratio(
            (self.site_pv_kw[spd:], self.site_load_kw[spd:]),
            (self.site_pv_kw[:spd], self.site_load_kw[:spd]),
            self.forecast_seed,
            local.date().toordinal(),
            self.forecast_error,
        )
        self.mpc = self._mpc_base(site) if self.base_kind in MPC_BASES else None
        self.observer = ObservationBuilder(site.batteries, self.dt_s)
        self.observer.start_day(
            DayInputs(
                self.price_import,
                self.price_export,
                self.site_pv_kw[:spd],
                -self.site_load_kw[:spd],
                plan,
                self.objective,
                int(local.dayofyear) - 1,
                spd,
                self.day_ahead,
            )
        )
        # rewards in units of a step at full power at the day's mean price
        self.reward_scale = (
            float(self.p_max.sum()) * max(float(self.price_import[:spd].mean()), 1e-3) * self.dt_h
        )

    def _mpc_base(self, site: Site) -> MPCController:
        """MPC for the episode's day (a one-day run), on persistence forecasts.

        Fed the env's own series: yesterday's metered net power (its history) and
        today's prices; it re-plans every :attr:`replan` from the measured SoC.
        """
        base, spd = self.base, self.steps_per_day
        clock = Clock(pd.Timestamp(base.clock.time_at(self.k0 * self.dt_s)), self.dt_s, spd)
        pv, load = self.site_pv_kw[spd:], self.site_load_kw[spd:]
        series = SiteSeries(
            clock.times, pv + load, pv, load, self.price_import[:spd], self.price_export[:spd]
        )
        net_yesterday = self.site_pv_kw[:spd] + self.site_load_kw[:spd]
        self.forecaster = None
        if self.base_kind in FORECAST_BASES:
            times = Clock(clock.start - pd.Timedelta(days=1), self.dt_s, spd).times
            self.forecaster = CorrectedPersistence(
                self.site_pv_kw[:spd], self.site_load_kw[:spd], times.append(clock.times), spd
            )
            if self.base_kind == "day_ahead":
                self.forecaster.set_prior(self.forecast_trust * self.day_ahead)
        context = {
            "site": base.context["site"],
            "tariff": {"name": "tariff", **site.tariff},
            "chargers": [],
            "objective": self.objective,
            "control": mpc_base_control(self.replan, self.defer_grid),
        }
        return MPCController(site.batteries, clock, context, series, net_yesterday, self.forecaster)

    def _stored(self) -> np.ndarray:
        bat = self.battery
        assert bat is not None
        return bat.soc * bat.e_kwh * bat.soh

    # -- physics ----------------------------------------------------------------------
    def physics_step(self, p_set_kw: np.ndarray) -> StepRecord:
        """Advance one step with battery setpoints ``p_set_kw`` (kW, > 0 discharge)."""
        assert self.battery is not None, "call reset() first"
        base, k = self.base, self.k
        now = base.clock.time_at(k * self.dt_s)
        bat = self.battery.step(now, self.dt_s, {"p_set_kw": np.asarray(p_set_kw, float)})
        grid = base.grid
        n_bus = len(grid.net.bus)
        p_bus = np.zeros(n_bus)
        q_bus = np.zeros(n_bus)
        np.add.at(p_bus, base.bus["pv"], base.pv_kw[k] * self.pv_scale)
        np.add.at(p_bus, base.bus["load"], base.load_kw[k] * self.load_scale)
        np.add.at(q_bus, base.bus["load"], base.load_kvar[k] * self.load_scale)
        np.add.at(p_bus, base.battery_bus[: len(bat["p_kw"])], bat["p_kw"])
        result = grid.step(
            now, self.dt_s, {**grid.default_inputs(), "p_kw": p_bus, "q_kvar": q_bus}
        )
        p_import = float(result["p_kw"][0])
        i = k - self.k0
        cost = (
            max(p_import, 0.0) * self.price_import[i] - max(-p_import, 0.0) * self.price_export[i]
        )
        e_now = self._stored()
        throughput = np.abs(e_now - self.e_prev)
        self.e_prev = e_now
        record = StepRecord(
            bat["p_kw"],
            bat["soc"],
            p_import,
            cost * self.dt_h,
            float(result["losses_kw"][0]),
            e_now,
            throughput,
        )
        self.k += 1
        self.last = record
        return record

    # -- Gymnasium API ----------------------------------------------------------------
    def _observation(self) -> np.ndarray:
        spd = self.steps_per_day
        i = min(self.k - self.k0, spd - 1)
        pv, load = self.site_pv_kw[spd + i], self.site_load_kw[spd + i]
        soc = self.battery.soc.copy()
        now = self.base.clock.time_at((self.k0 + i) * self.dt_s)
        self.rule_kw = self.baseline.setpoint(
            now, self.dt_s, pv + load, soc, self.price_import[i], self.price_export[i]
        )
        self.track_kw = tracking_setpoint(
            self.observer.plan_target(i),
            soc,
            self.e_cap,
            self.p_max,
            self.eta_ch,
            self.eta_dis,
            self.dt_h,
        )
        if self.base_kind == "mpc":
            assert self.mpc is not None
            inputs = {"p_kw": np.array([pv + load]), "soc": soc}
            self.base_kw = self.mpc.step(now, self.dt_s, inputs)["p_set_kw"]
            # the base's own setpoint in the plan-following slot
            return self.observer.build(i, soc, self.rule_kw, self.base_kw, pv, -load)
        if self.base_kind == "rule":
            self.base_kw = self.rule_kw
        elif self.base_kind == "plan":
            self.base_kw = self.track_kw
        # the forecast base's setpoint comes with the action (step)
        return self.observer.build(i, soc, self.rule_kw, self.track_kw, pv, -load)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a day: ``options["site"]``, ``["day"]``, ``["forecast_seed"]`` or drawn."""
        super().reset(seed=seed)
        options = options or {}
        # always draw both, so that the random stream does not depend on the options
        site = self.domain.sample(self.np_random)
        day = int(self.np_random.choice(self.days))
        forecast_seed = int(self.np_random.integers(2**31))
        site = options.get("site", site)
        day = int(options.get("day", day))
        self.forecast_seed = int(options.get("forecast_seed", forecast_seed))
        self._start(site, day)
        return self._observation(), {"day": day}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the action for one step; the episode is truncated at the day's end."""
        i = self.k - self.k0
        spd = self.steps_per_day
        pv, load = self.site_pv_kw[spd + i], self.site_load_kw[spd + i]
        net = pv + load
        if self.base_kind in FORECAST_BASES:
            p_set = self._forecast_setpoint(action, i, pv, load)
        else:
            p_set = self.baseline.apply(self.base_kw, action, self.scale)
        e_before = self.e_prev.copy()
        record = self.physics_step(p_set)
        obj = self.objective
        # the step's increment of the scored cost J, the stored energy valued as it changes
        peak = max(self.peak, record.p_import_kw)
        cost = record.cost_eur + self.demand_charge * (peak - self.peak)
        cost += float(obj.wear @ record.throughput_kwh)
        cost -= float(obj.terminal_value @ (record.e_kwh - e_before))
        self.peak = peak
        # the same with the battery idle, at this step's grid losses (action-free baseline)
        idle = -net + record.losses_kw
        idle_cost = (
            max(idle, 0.0) * self.price_import[i] - max(-idle, 0.0) * self.price_export[i]
        ) * self.dt_h
        peak_idle = max(self.peak_idle, idle)
        idle_cost += self.demand_charge * (peak_idle - self.peak_idle)
        self.peak_idle = peak_idle
        truncated = self.k >= self.k_end
        reward = (idle_cost - cost) / self.reward_scale
        info = {"cost_eur": cost, "idle_cost_eur": idle_cost, "p_import_kw": record.p_import_kw}
        obs = self._observation() if not truncated else self._final_observation()
        return obs, float(reward), False, truncated, info

    def _forecast_setpoint(self, action: np.ndarray, i: int, pv: float, load: float) -> np.ndarray:
        """MPC's setpoint at step ``i`` planned on the forecast the action corrects."""
        assert self.mpc is not None and self.forecaster is not None
        self.forecaster.correct(action)
        self.forecaster.observe_parts(i, pv, load)
        now = self.base.clock.time_at(self.k * self.dt_s)
        inputs = {"p_kw": np.array([pv + load]), "soc": self.battery.soc.copy()}
        self.base_kw = self.mpc.step(now, self.dt_s, inputs)["p_set_kw"]
        return self.base_kw

    def _final_observation(self) -> np.ndarray:
        """The observation after the day's last step (the episode is over)."""
        spd = self.steps_per_day
        pv, load = self.site_pv_kw[-1], self.site_load_kw[-1]
        zero = np.zeros(len(self.p_max))
        return self.observer.build(spd - 1, self.battery.soc.copy(), zero, zero, pv, -load)


#: A stand-in battery for sizing the observation before any site is drawn.
_PROBE = {
    "p_max_kw": 1.0,
    "e_kwh": 1.0,
    "soh_init": 1.0,
    "soc_min": 0.1,
    "soc_max": 0.9,
    "eta_ch": 0.95,
    "eta_dis": 0.95,
}
