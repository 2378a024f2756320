"""The ``rl`` controller: a trained stable-baselines3 policy acting in the mosaik run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port
from twin.control.site import site_series
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


class RLController(Model):
    """Battery setpoints from a policy trained in :class:`twin.rl.env.MicrogridEnv`.

    It observes what the environment showed the policy: measured SoC, PV and load
    power, published import prices now and ahead, and the time of day. Units are the
    batteries; ``context["control"]["policy"]`` is the policy file.
    """

    kind = "controller"
    inputs = {
        "p_pv_kw": Port("kW", "measured PV power of the site (> 0)", group="site"),
        "p_load_kw": Port("kW", "measured load power of the site (< 0 consuming)", group="site"),
        "soc": Port("1", "measured state of charge of the battery", default=0.5),
    }
    outputs = {"p_set_kw": Port("kW", "battery power setpoint (> 0 discharge)")}

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.elements["site"] = ["site"]
        self.policy = load_policy(self.context["control"]["policy"])
        site = site_series(self.context, clock)
        assets = self.context.get("assets", {})
        p_scale = max(
            sum(u["p_dc_kw"] for u in assets.get("pv", [])),
            sum(u["p_kw"] for u in assets.get("load", [])),
            1.0,
        )
        tz = self.context.get("site", {}).get("tz", "UTC")
        self.observer = ObservationBuilder(
            clock.times.tz_convert(tz), site.price_import_eur_kwh, clock.step_s, p_scale
        )
        self.p_max = self.param("p_max_kw")

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The policy's deterministic action, scaled to each battery's rating."""
        k = self.clock.index_of(now)
        obs = self.observer.build(
            k, inputs["soc"], float(inputs["p_pv_kw"][0]), -float(inputs["p_load_kw"][0])
        )
        action, _ = self.policy.predict(obs, deterministic=True)
        return {"p_set_kw": np.clip(action, -1.0, 1.0) * self.p_max}
