"""The ``rl`` controller: a trained stable-baselines3 policy acting in the mosaik run.

``control.policy: builtin`` selects the generalist policy shipped with the package
(:data:`BUILTIN_POLICY`, trained over the domain of :mod:`twin.rl.domain`); any other
value is the path of a policy saved by ``twin train``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock, Port
from twin.control.base import SOC, BatteryController
from twin.control.optimal import MPCController
from twin.control.site import SiteSeries, run_objective, site_series
from twin.errors import TwinError
from twin.forecast import (
    day_ahead_error,
    day_ahead_log_ratio,
    day_ahead_seed,
    day_ahead_trust,
)
from twin.rl.baseline import RuleBaseline
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

__all__ = ["BUILTIN_POLICY", "PolicyError", "RLController", "load_policy", "policy_metadata"]

#: The generalist policy shipped as package data (``control.policy: builtin``).
BUILTIN_POLICY = Path(__file__).parent / "policies" / "generalist_sac.zip"


class PolicyError(TwinError):
    """A policy file that is missing or not one ``twin train`` saved."""


def policy_path(policy: str) -> Path:
    """The file of ``policy`` (``builtin`` or a path)."""
    path = BUILTIN_POLICY if policy == "builtin" else Path(policy)
    if not path.exists():
        raise PolicyError(f"control.policy: no policy file {str(path)!r}")
    return path


def policy_metadata(policy: str) -> dict[str, Any]:
    """The training metadata saved beside the policy (``<stem>_train.json``), or ``{}``."""
    path = policy_path(policy)
    meta = path.with_name(path.stem + "_train.json")
    return json.loads(meta.read_text()) if meta.exists() else {}


def load_policy(policy: str) -> Any:
    """Load a policy saved by ``twin train`` (``builtin``: the shipped one)."""
    from stable_baselines3 import PPO, SAC

    path = str(policy_path(policy))
    for algo in (SAC, PPO):
        try:
            return algo.load(path, device="cpu")
        except (ValueError, KeyError, TypeError):
            continue
    raise PolicyError(f"control.policy: {path} is not a SAC or PPO policy of stable-baselines3")


class RLController(BatteryController):
    """Battery setpoints from a policy trained in :class:`twin.rl.env.MicrogridEnv`.

    The policy's action corrects a base setpoint (the price-aware rule's, the one
    following the day-ahead plan, or MPC's on persistence forecasts re-planned as often
    as in training: the ``base`` and ``replan`` of the policy's training metadata), or,
    with the ``forecast`` base, the PV and load forecasts MPC plans with
    (:mod:`twin.rl.forecast_action`). It
    observes what the environment showed the policy (:mod:`twin.rl.observation`): the
    measured SoC, PV and load power, the published prices of the day, the battery's
    data, yesterday's metered profiles and the day plan made from them at every local
    midnight. Units are the batteries; ``context["control"]["policy"]`` is the policy.
    """

    inputs = {
        "p_pv_kw": Port("kW", "measured PV power of the site (> 0)", group="site"),
        "p_load_kw": Port("kW", "measured load power of the site (< 0 consuming)", group="site"),
        "soc": SOC,
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        policy = self.control.get("policy") or "builtin"
        self.policy = load_policy(policy)
        meta = policy_metadata(policy)
        self.base_kind = meta.get("base", "rule")
        self.scale = float(meta.get("scale") or 1.0)
        tz = self.context.get("site", {}).get("tz", "UTC")
        spd = 86400 // clock.step_s
        self.steps_per_day = spd
        # Metered history and prices from the local midnight before the run's start, a
        # day before that (yesterday) and a day beyond the end (price look-ahead).
        midnight = pd.Timestamp(clock.start).tz_convert(tz).normalize()
        self.lead = int((pd.Timestamp(clock.start) - midnight).total_seconds()) // clock.step_s
        n = spd + self.lead + clock.n_steps + spd
        history = Clock(midnight - pd.Timedelta(days=1), clock.step_s, n)
        self.series = site_series(self.context, history)
        self.times_local = history.times.tz_convert(tz)
        self.objective = run_objective(units, clock, self.context)
        self.baseline = RuleBaseline(
            units, clock, self.context.get("p_import_max_kw"), self.objective
        )
        self.observer = ObservationBuilder(units, clock.step_s)
        expected = self.policy.observation_space.shape[0]
        if expected != self.observer.size():
            raise PolicyError(
                f"control.policy: {policy!r} observes {expected} features, this site's "
                f"{len(units)} battery(ies) give {self.observer.size()} (a policy dispatches "
                "as many batteries as it was trained with, the builtin one: 1; or the policy "
                "is from an older twin: train it again)"
            )
        self.p_max = self.param("p_max_kw")
        self.e_cap = self.param("e_kwh") * self.param("soh_init")
        self.eta_ch, self.eta_dis = self.param("eta_ch"), self.param("eta_dis")
        self.demand_charge = float(self.context.get("tariff", {}).get("demand_charge_eur_kw", 0.0))
        self.day_first = -1
        self.forecaster: CorrectedPersistence | None = None
        self.mpc = self._mpc_base(meta) if self.base_kind in MPC_BASES else None

    def _mpc_base(self, meta: dict[str, Any]) -> MPCController:
        """MPC over the run from the metered series (yesterday: its history), as in training.

        In training the run is one day, so the horizon ends at midnight; in a longer run
        it looks 24 h ahead across midnight (what MPC does), which training did not see.
        """
        spd, first = self.steps_per_day, self.steps_per_day + self.lead
        s, run = self.series, slice(first, first + self.clock.n_steps)
        series = SiteSeries(
            self.clock.times,
            s.net_kw[run],
            s.pv_kw[run],
            s.load_kw[run],
            s.price_import_eur_kwh[run],
            s.price_export_eur_kwh[run],
        )
        options = mpc_base_control(
            meta.get("replan") or DEFAULT_REPLAN, bool(meta.get("defer_grid"))
        )
        yesterday = slice(first - spd, first)
        if self.base_kind in FORECAST_BASES:  # the day_ahead prior is set at each midnight
            times = self.clock.times.tz_convert(self.times_local.tz)
            self.forecaster = CorrectedPersistence(
                s.pv_kw[yesterday],
                s.load_kw[yesterday],
                self.times_local[yesterday].append(times),
                spd,
            )
        context = {
            **self.context,
            "chargers": [],
            "objective": self.objective,
            "control": {**self.control, **options},
        }
        return MPCController(
            self.units, self.clock, context, series, s.net_kw[yesterday], self.forecaster
        )

    def _start_day(self, j: int, soc: np.ndarray) -> None:
        """Plan the local day whose first step is history index ``j`` (from ``soc`` now)."""
        spd = self.steps_per_day
        s = self.series
        first = j - (j % spd)  # history index of the day's midnight
        prices = s.price_import_eur_kwh[first:], s.price_export_eur_kwh[first:]
        net_yesterday = s.net_kw[first - spd : first]
        done = j - first  # steps of the day already past (a run starting mid-day)
        plan = np.tile(soc * self.e_cap, (spd, 1))
        plan[done:] = day_plan(
            self.units,
            soc,
            net_yesterday[done:],
            prices[0][done:spd],
            prices[1][done:spd],
            self.clock.dt_h,
            self.objective,
            self.demand_charge,
        )
        day, yesterday = slice(first, first + spd), slice(first - spd, first)
        forecast = day_ahead_log_ratio(
            (s.pv_kw[day], s.load_kw[day]),
            (s.pv_kw[yesterday], s.load_kw[yesterday]),
            day_ahead_seed(self.control, self.context),
            self.times_local[first].date().toordinal(),
            day_ahead_error(self.control),
        )
        self.observer.start_day(
            DayInputs(
                prices[0],
                prices[1],
                s.pv_kw[yesterday],
                -s.load_kw[yesterday],
                plan,
                self.objective,
                int(self.times_local[first].dayofyear) - 1,
                spd,
                forecast,
            )
        )
        if self.base_kind == "day_ahead":
            assert self.forecaster is not None
            self.forecaster.set_prior(day_ahead_trust(self.control) * forecast)
        self.day_first = first

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The policy's deterministic action on the base setpoint."""
        spd = self.steps_per_day
        j = spd + self.lead + self.clock.index_of(now)  # index in the history series
        soc = np.asarray(inputs["soc"], dtype=float)
        if j - (j % spd) != self.day_first:
            self._start_day(j, soc)
        i = j - self.day_first
        pv, load = float(inputs["p_pv_kw"][0]), float(inputs["p_load_kw"][0])
        price = self.series.price_import_eur_kwh[j]
        price_export = self.series.price_export_eur_kwh[j]
        rule = self.baseline.setpoint(now, dt_s, pv + load, soc, price, price_export)
        track = tracking_setpoint(
            self.observer.plan_target(i),
            soc,
            self.e_cap,
            self.p_max,
            self.eta_ch,
            self.eta_dis,
            dt_s / 3600.0,
        )
        mpc_inputs = {"p_kw": np.array([pv + load]), "soc": soc}
        if self.base_kind == "mpc":
            assert self.mpc is not None
            base = track = self.mpc.step(now, dt_s, mpc_inputs)["p_set_kw"]
        else:
            base = rule if self.base_kind == "rule" else track
        obs = self.observer.build(i, soc, rule, track, pv, -load)
        action, _ = self.policy.predict(obs, deterministic=True)
        if self.forecaster is not None:
            assert self.mpc is not None
            self.forecaster.correct(action)
            self.forecaster.observe_parts(self.clock.index_of(now), pv, load)
            return {"p_set_kw": self.mpc.step(now, dt_s, mpc_inputs)["p_set_kw"]}
        return {"p_set_kw": self.baseline.apply(base, action, self.scale)}
