"""The ``rl`` controller: a trained stable-baselines3 policy acting in the mosaik run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock, Port
from twin.control.base import SOC, BatteryController
from twin.control.site import run_objective, site_series
from twin.rl.baseline import RuleBaseline
from twin.rl.observation import ObservationBuilder

__all__ = ["RLController", "load_policy"]


def load_policy(path: str) -> Any:
    """Load a policy saved by ``twin train`` (the algorithm is read from the file)."""
    from stable_baselines3 import PPO, SAC

    for algo in (SAC, PPO):
        try:
            return algo.load(path, device="cpu")
        except (ValueError, KeyError, TypeError):
            continue
    raise ValueError(f"{path}: not a SAC or PPO policy saved by stable-baselines3")


class RLController(BatteryController):
    """Battery setpoints from a policy trained in :class:`twin.rl.env.MicrogridEnv`.

    The policy's action corrects the rule-based setpoint (:mod:`twin.rl.baseline`).

    It observes what the environment showed the policy: measured SoC, PV and load
    power, published import prices now and ahead, and the time of day. Units are the
    batteries; ``context["control"]["policy"]`` is the policy file.
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
        self.policy = load_policy(self.control["policy"])
        # Metered history: the run plus the day before it (yesterday's profiles).
        day = 86400 // clock.step_s
        history = Clock(clock.start - pd.Timedelta(days=1), clock.step_s, clock.n_steps + day)
        site = site_series(self.context, history)
        assets = self.context.get("assets", {})
        p_scale = max(
            sum(u["p_dc_kw"] for u in assets.get("pv", [])),
            sum(u["p_kw"] for u in assets.get("load", [])),
            1.0,
        )
        tz = self.context.get("site", {}).get("tz", "UTC")
        self.observer = ObservationBuilder(
            clock.times.tz_convert(tz),
            site.price_import_eur_kwh[day:],
            clock.step_s,
            p_scale,
            site.pv_kw,
            -site.load_kw,
        )
        self.p_max = self.param("p_max_kw")
        self.price_import = site.price_import_eur_kwh[day:]
        self.price_export = site.price_export_eur_kwh[day:]
        self.baseline = RuleBaseline(
            units,
            clock,
            self.context.get("p_import_max_kw"),
            run_objective(units, clock, self.context),
        )

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The policy's deterministic action, scaled to each battery's rating."""
        k = self.clock.index_of(now)
        pv, load = float(inputs["p_pv_kw"][0]), float(inputs["p_load_kw"][0])
        base = self.baseline.setpoint(
            now, dt_s, pv + load, inputs["soc"], self.price_import[k], self.price_export[k]
        )
        obs = self.observer.build(k, inputs["soc"], base / self.p_max, pv, -load)
        action, _ = self.policy.predict(obs, deterministic=True)
        return {"p_set_kw": self.baseline.apply(base, action)}
