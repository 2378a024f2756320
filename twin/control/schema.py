"""Schema of the ``controller`` and ``control`` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from twin.bounds import (
    MAX_HORIZON_S,
    PowerKw,
    Price,
    bounded,
    whole,
)
from twin.forecast import DAY_AHEAD_ERROR, DAY_AHEAD_TRUST
from twin.scenario import Duration, Strict
from twin.units import parse_duration_s

__all__ = ["CONTROLLERS", "ControlSpec"]

#: The controllers a scenario may name.
CONTROLLERS = ("none", "rule", "mpc", "oracle", "rl", "schedule")


class ControlSpec(Strict):
    """Controller options: site limits, planning horizon, forecaster, policy, terminal value.

    ``terminal_price_eur_kwh`` overrides the objective's terminal value of every battery
    (:func:`twin.objective.terminal_values`). ``day_ahead_error_pv`` and
    ``day_ahead_error_load`` are the standard deviations of the log error of the modelled
    day-ahead forecast of a day's PV and load energy (:mod:`twin.forecast`), which MPC
    with ``forecaster: day_ahead`` and the RL agent read; their errors are drawn from
    ``day_ahead_seed`` (default: the scenario's seed) and the date; ``day_ahead_trust``
    weighs the forecast against persistence (1: the forecast as it is).
    """

    p_import_max_kw: PowerKw | None = None
    horizon: Duration = "24h"
    resolve_every: Duration | None = None
    forecaster: Literal["persistence", "regression", "perfect", "day_ahead"] = "persistence"
    day_ahead_error_pv: bounded(0.0, 3.0) = DAY_AHEAD_ERROR[0]
    day_ahead_error_load: bounded(0.0, 3.0) = DAY_AHEAD_ERROR[1]
    day_ahead_seed: whole(0, 2**32 - 1) | None = None
    day_ahead_trust: bounded(0.0, 1.0) = DAY_AHEAD_TRUST
    history_days: whole(2, 365) = 14
    defer_grid: bool = False  # MPC: among equal plans, import/export as late as possible
    terminal_price_eur_kwh: Price | None = None
    policy: str | None = None
    schedule_csv: str | None = None

    @model_validator(mode="after")
    def _horizon_bounded(self) -> ControlSpec:
        horizon_s = parse_duration_s(self.horizon)
        if horizon_s > MAX_HORIZON_S:
            raise ValueError(
                f"expected horizon of at most {MAX_HORIZON_S // 86400}d, got {self.horizon}"
            )
        if self.resolve_every is not None and parse_duration_s(self.resolve_every) > horizon_s:
            raise ValueError(
                f"expected resolve_every <= horizon, got {self.resolve_every} > {self.horizon}"
            )
        return self
