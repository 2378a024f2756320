"""Rule-based self-consumption controller."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from models.base import Clock, Model, Port
from models.battery import limit_power

__all__ = ["RuleController", "share_by_headroom"]


def share_by_headroom(total_kw: float, headroom_kw: np.ndarray) -> np.ndarray:
    """Split ``total_kw`` over units in proportion to their headroom (same sign).

    No unit gets more than its headroom; what exceeds the sum is not allocated.
    """
    capacity = headroom_kw.sum()
    if capacity <= 0.0 or total_kw == 0.0:
        return np.zeros_like(headroom_kw)
    return headroom_kw * min(abs(total_kw) / capacity, 1.0) * np.sign(total_kw)


class RuleController(Model):
    """Maximise self-consumption: charge from surplus, discharge into deficit.

    It measures the site's net non-dispatchable power (PV plus loads, > 0 when there
    is a surplus) and each battery's SoC, and sets each battery's power so the site
    exchanges as little as possible with the grid, inside SoC and power limits.
    Units are the batteries it dispatches (their scenario parameters).
    """

    kind = "controller"
    inputs = {
        "p_kw": Port("kW", "net PV + load power at the site (> 0 surplus)", group="site"),
        "soc": Port("1", "measured state of charge of the battery", default=0.5),
    }
    outputs = {"p_set_kw": Port("kW", "battery power setpoint (> 0 discharge)")}

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.elements["site"] = ["site"]
        self._limits = {
            name: self.param(name)
            for name in ("p_max_kw", "soc_min", "soc_max", "eta_ch", "eta_dis", "e_kwh")
        }

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Setpoints that cancel the site's net exchange as far as limits allow."""
        lim = self._limits
        surplus_kw = float(inputs["p_kw"][0])
        if surplus_kw == 0.0:
            return {"p_set_kw": np.zeros(self.n)}
        want = np.full(self.n, -np.sign(surplus_kw) * np.inf)
        headroom = np.abs(
            limit_power(
                want,
                inputs["soc"],
                lim["e_kwh"],
                lim["p_max_kw"],
                lim["soc_min"],
                lim["soc_max"],
                lim["eta_ch"],
                lim["eta_dis"],
                dt_s / 3600.0,
            )
        )
        return {"p_set_kw": share_by_headroom(-surplus_kw, headroom)}
