"""The rule controller's setpoint: the starting point the RL agent corrects.

The agent's action is a correction (in -1..1 of each battery's rating) added to the
rule-based self-consumption setpoint (residual policy learning): the agent starts
from a sound dispatch and learns what the rule misses (topping up before the evening
peak, keeping energy for tomorrow), which trains far faster than learning from scratch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock
from twin.control.rule import RuleController
from twin.objective import Objective

__all__ = ["RuleBaseline"]


class RuleBaseline:
    """Rule setpoints for batteries ``batteries`` and the residual action mapping.

    ``objective``: the scored objective the rule's price thresholds come from; set
    :attr:`objective` again when the run (episode) and so its prices change.
    """

    def __init__(
        self,
        batteries: list[dict[str, Any]],
        clock: Clock,
        p_import_max_kw: float | None,
        objective: Objective,
    ) -> None:
        context = {"chargers": [], "p_import_max_kw": p_import_max_kw, "objective": objective}
        self.rule = RuleController(batteries, clock, context)
        self.p_max = np.array([b["p_max_kw"] for b in batteries], dtype=float)

    @property
    def objective(self) -> Objective:
        """The objective of the rule's thresholds."""
        return self.rule.objective

    @objective.setter
    def objective(self, objective: Objective) -> None:
        self.rule.objective = objective

    def setpoint(
        self,
        now: datetime,
        dt_s: int,
        net_kw: float,
        soc: np.ndarray,
        price: float,
        price_export: float,
    ) -> np.ndarray:
        """The rule's setpoints (kW) for site net power ``net_kw`` (> 0 surplus).

        ``price`` and ``price_export`` are the step's import and export prices (EUR/kWh).
        """
        inputs = {
            **self.rule.default_inputs(),
            "p_kw": np.array([net_kw]),
            "soc": soc,
            "price_eur_kwh": np.array([price]),
            "price_export_eur_kwh": np.array([price_export]),
        }
        return self.rule.step(now, dt_s, inputs)["p_set_kw"]

    def apply(self, base_kw: np.ndarray, action: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Setpoints: the base's plus the action's correction, within the ratings.

        ``scale``: the largest correction as a fraction of the rating (action 1).
        """
        correction = np.clip(np.asarray(action, dtype=float), -1.0, 1.0) * scale * self.p_max
        return np.clip(base_kw + correction, -self.p_max, self.p_max)
