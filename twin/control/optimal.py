"""Optimisation controllers: the perfect-foresight oracle and MPC with forecasts.

Both dispatch the site's batteries with the LP of :mod:`twin.control.lp`, which
minimises the scored cost :math:`J` of :mod:`twin.objective` (energy, demand charge,
battery wear, minus the value of the energy left in the cells), the very quantity every
controller is scored by (:mod:`twin.kpi`). The oracle solves it once over the whole run
with the true PV, load and prices: no controller's scored cost is below it, beyond the
grid losses the LP leaves out. MPC re-solves it over a receding horizon from the
measured SoC, with a forecaster of the site's net power (:mod:`twin.forecast`) trained on
the meter history before the run.

Terminal value: both value the energy left at the end of the plan at the objective's
terminal value :math:`v_b` (``control.terminal_price_eur_kwh`` overrides it). MPC uses the
same :math:`v_b` at a horizon end inside the run: it depends on the tariff alone (the
run's cheapest and dearest import prices, known ahead), it is what the run's end is
scored at, and on time-of-use tariffs it is the shadow price of "end where you started",
so a horizon end neither rewards draining the battery nor filling it from the grid (the
mean price over the window, used before, rewarded draining at every horizon end).
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock
from models.ev import EVCharging
from twin.control.base import SiteController
from twin.control.lp import (
    DispatchPlan,
    DispatchProblem,
    EVSession,
    LPInfeasibleError,
    LPWarning,
    solve_dispatch,
)
from twin.control.site import SiteSeries, run_objective, site_series
from twin.forecast import (
    FORECASTERS,
    DayAheadForecaster,
    Forecaster,
    day_ahead_error,
    day_ahead_seed,
    day_ahead_trust,
)
from twin.units import parse_duration_s

__all__ = ["MPCController", "OracleController"]


def ev_sessions_ahead(
    parks: list[dict[str, Any]], clock: Clock, context: dict[str, Any]
) -> list[EVSession]:
    """Every EV charge of the run, known ahead (perfect foresight of the seeded fleet).

    Plug assignment and departures do not depend on how EVs are charged, so running
    the EV model once without charging reveals every session: its charger, the steps it
    can charge in, the energy it needs (grid side) and its battery (for the acceptance
    taper near full).
    """
    if not parks:
        return []
    model = EVCharging(parks, clock, context)
    n = len(model.elements["ev"])
    seen = np.full(n, -1.0)
    sessions = []
    idle = {"p_set_kw": np.zeros(n)}
    for k in range(clock.n_steps):
        model.step(clock.time_at(k * clock.step_s), clock.step_s, idle)
        for c in np.flatnonzero(model.connected & (model.arrival_s != seen)):
            seen[c] = model.arrival_s[c]
            end = min(int(np.ceil(model.departure_s[c] / clock.step_s)), clock.n_steps)
            need = max(model.target[c] - model.soc[c], 0.0) * model.capacity[c] / model.eta[c]
            if end > k + 1 and need > 0.0:
                sessions.append(
                    EVSession(
                        int(c),
                        k + 1,
                        end,
                        need,
                        float(model.p_max[c]),
                        capacity_kwh=float(model.capacity[c]),
                        soc_start=float(model.soc[c]),
                        efficiency=float(model.eta[c]),
                    )
                )
    return sessions


class _Planner(SiteController):
    """Shared part: battery limits, the site's series, the LP problem.

    ``series``: the run's site series when the caller has them already (the RL
    environment); by default they are computed from the context's assets.
    """

    def __init__(
        self,
        units: list[dict[str, Any]],
        clock: Clock,
        context: dict[str, Any] | None = None,
        series: SiteSeries | None = None,
    ) -> None:
        super().__init__(units, clock, context)
        #: What did not go as planned (LP notes), also in ``run.json`` (``control_notes``).
        self.notes: list[str] = []
        self.site = series if series is not None else site_series(self.context, clock)
        self.e_kwh = self.param("e_kwh") * self.param("soh_init")
        self.soc_init = self.param("soc_init")
        #: What the run is scored by: wear cost and terminal value per battery.
        self.objective = run_objective(
            units, clock, {"price_import_eur_kwh": self.site.price_import_eur_kwh, **self.context}
        )

    def problem(
        self,
        net_kw: np.ndarray,
        k: int,
        soc0: np.ndarray,
        terminal_value: np.ndarray | None,
        sessions: list[EVSession] | None = None,
    ) -> DispatchProblem:
        """The LP from step ``k`` for the (forecast) net power ``net_kw``.

        ``terminal_value``: EUR per kWh left in each battery at the horizon's end; None
        asks for the initial energy instead.
        """
        horizon = slice(k, k + len(net_kw))
        return DispatchProblem(
            net_kw=net_kw,
            price_import_eur_kwh=self.site.price_import_eur_kwh[horizon],
            price_export_eur_kwh=self.site.price_export_eur_kwh[horizon],
            dt_h=self.clock.dt_h,
            e_kwh=self.e_kwh,
            p_max_kw=self.param("p_max_kw"),
            eta_ch=self.param("eta_ch"),
            eta_dis=self.param("eta_dis"),
            soc_min=self.param("soc_min"),
            soc_max=self.param("soc_max"),
            # a measured SoC outside the window (a misreport, a capacity step) would
            # make the plan infeasible: plan from the nearest feasible state
            soc0=np.clip(soc0, self.param("soc_min"), self.param("soc_max")),
            wear_eur_kwh=self.objective.wear,
            demand_charge_eur_kw=float(self.context["tariff"].get("demand_charge_eur_kw", 0.0)),
            terminal_value_eur_kwh=terminal_value,
            e_terminal_min_kwh=self.soc_init * self.e_kwh if terminal_value is None else None,
            # among equally good plans, one that ends where the run started
            e_end_preferred_kwh=self.soc_init * self.e_kwh,
            p_import_max_kw=self.control.get("p_import_max_kw"),
            step_offset=k,
            steps_total=self.clock.n_steps,
            ev_sessions=sessions,
            n_chargers=len(self.chargers),
            defer_grid=bool(self.control.get("defer_grid", False)),
        )

    def solve(self, problem: DispatchProblem) -> DispatchPlan:
        """Solve; an import limit that cannot be kept is dropped rather than failing.

        Only when the LP is infeasible with it; that, and a tie-break that failed, is
        warned (:class:`twin.control.lp.LPWarning`) and noted in the run metadata
        (``control_notes`` in ``run.json``).
        """
        try:
            plan = solve_dispatch(problem)
        except LPInfeasibleError:
            if problem.p_import_max_kw is None:
                raise
            note = (
                f"control.p_import_max_kw: no dispatch keeps the import under "
                f"{problem.p_import_max_kw:g} kW from step {problem.step_offset or 0}: "
                "planned without the limit"
            )
            warnings.warn(note, LPWarning, stacklevel=2)
            self.note(note)
            problem.p_import_max_kw = None
            plan = solve_dispatch(problem)
        for note in plan.notes:
            self.note(note)
        return plan

    def note(self, message: str) -> None:
        """Record what did not go as planned in the run's notes (``context["notes_path"]``)."""
        self.notes.append(message)
        path = self.context.get("notes_path")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(self.notes))


class OracleController(_Planner):
    """Perfect foresight: one LP over the whole run with the true series."""

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        sessions = ev_sessions_ahead(self.context.get("ev_parks", []), clock, self.context)
        terminal = self.objective.terminal_value
        problem = self.problem(self.site.net_kw, 0, self.soc_init, terminal, sessions)
        self.plan = self.solve(problem)

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The planned setpoints of this step."""
        k = self.clock.index_of(now)
        return {
            "p_set_kw": self.plan.p_battery_kw[k].copy(),
            "p_ev_set_kw": self.plan.p_ev_kw[k].copy(),
        }


class MPCController(_Planner):
    """Receding-horizon LP from the measured SoC with forecast net power.

    Control options: ``horizon`` (e.g. ``24h``), ``resolve_every`` (e.g. ``15min``),
    ``forecaster`` (``persistence``, ``regression``, ``perfect`` or ``day_ahead``),
    ``history_days`` (meter history the forecaster is trained on) and ``defer_grid``
    (among equally good plans, import and export as late as possible: grid charging
    waits for a surplus the forecast missed, a surplus is stored when it comes; off by
    default; see BENCHMARKS.md for what it is worth on persistence forecasts).

    ``series`` and ``history`` (the run's site series and the net power metered over
    the ``history_days`` before it) may be given by a caller that has them (the RL
    environment re-plans with this controller as its base); by default both are
    computed from the context's assets. Only the perfect forecaster reads the run's
    future net power; the others see what :meth:`step` measured so far. A caller may
    also give its own ``forecaster`` (then ``forecaster`` and ``history_days`` of the
    control options and ``history`` are not used): the RL agent's forecast correction.
    """

    def __init__(
        self,
        units: list[dict[str, Any]],
        clock: Clock,
        context: dict[str, Any] | None = None,
        series: SiteSeries | None = None,
        history: np.ndarray | None = None,
        forecaster: Forecaster | None = None,
    ) -> None:
        super().__init__(units, clock, context, series)
        step_s = clock.step_s
        self.horizon = max(parse_duration_s(self.control.get("horizon") or "24h") // step_s, 1)
        every = parse_duration_s(self.control.get("resolve_every") or f"{step_s}s")
        self.resolve_every = max(every // step_s, 1)
        self.forecaster = forecaster if forecaster is not None else self._forecaster(history)
        self.plan: DispatchPlan | None = None
        self.planned_at = 0

    def _forecaster(self, history: np.ndarray | None) -> Forecaster:
        """The control options' forecaster, trained on ``history`` (or the metered past)."""
        clock = self.clock
        step_s = clock.step_s
        steps_per_day = 86400 // step_s
        history_days = int(self.control.get("history_days") or 14)
        start = clock.start - pd.Timedelta(days=history_days)
        history_clock = Clock(start, step_s, history_days * steps_per_day)
        name = self.control.get("forecaster") or "persistence"
        tz = self.context.get("site", {}).get("tz", "UTC")
        times = history_clock.times.append(clock.times).tz_convert(tz)
        if name == "day_ahead":  # the PV and load parts, history and run
            if history is not None:
                raise ValueError(
                    "history: the day_ahead forecaster reads PV and load apart, from the "
                    "context's assets; give no net history"
                )
            past = site_series(self.context, history_clock)
            return DayAheadForecaster(
                np.concatenate([past.pv_kw, self.site.pv_kw]),
                np.concatenate([past.load_kw, self.site.load_kw]),
                history_clock.n_steps,
                times,
                steps_per_day,
                day_ahead_seed(self.control, self.context),
                day_ahead_error(self.control),
                day_ahead_trust(self.control),
            )
        if history is None:
            history = site_series(self.context, history_clock).net_kw
        elif len(history) != history_clock.n_steps:
            raise ValueError(
                f"history: expected {history_clock.n_steps} steps ({history_days} days), "
                f"got {len(history)}"
            )
        return FORECASTERS[name](history, times, steps_per_day, self.site.net_kw)

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Re-plan when due (from the measured state), then apply the plan's first move."""
        k = self.clock.index_of(now)
        measured = float(inputs["p_kw"][0])
        self.forecaster.observe(k, measured)
        if self.plan is None or k - self.planned_at >= self.resolve_every:
            horizon = min(self.horizon, self.clock.n_steps - k)
            net = self.forecaster.predict(k, horizon)
            net[0] = measured
            # The horizon's end, inside the run or at its end: the objective's value.
            terminal = self.objective.terminal_value
            sessions = self.connected_sessions(inputs)
            self.plan = self.solve(self.problem(net, k, inputs["soc"], terminal, sessions))
            self.planned_at = k
        i = k - self.planned_at
        return {
            "p_set_kw": self.plan.p_battery_kw[i].copy(),
            "p_ev_set_kw": self.plan.p_ev_kw[i].copy(),
        }

    def connected_sessions(self, inputs: dict[str, np.ndarray]) -> list[EVSession]:
        """Sessions of the EVs plugged in now (future arrivals are not forecast)."""
        sessions = []
        for c in range(len(self.chargers)):
            if inputs["connected"][c] < 0.5 or inputs["e_needed_kwh"][c] <= 0.0:
                continue
            steps_left = int(np.ceil(inputs["t_departure_h"][c] * 3600.0 / self.clock.step_s))
            need = inputs["e_needed_kwh"][c] / self.ev_efficiency[c]
            sessions.append(EVSession(c, 0, max(steps_left, 1), need, self.ev_p_max_kw[c]))
        return sessions
