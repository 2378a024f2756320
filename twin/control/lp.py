r"""Battery dispatch as a linear program (HiGHS through scipy).

Over steps ``t = 0..T-1`` of length ``dt`` (h) and batteries ``b``, with the site's net
non-dispatchable power :math:`N_t` (PV + loads, > 0 surplus):

.. math::

    \min \sum_t (\pi^{imp}_t G^+_t - \pi^{exp}_t G^-_t)\Delta t + c_{dem} \hat G
         + \sum_{t,b} w_b (\eta^{ch}_b C_{tb} + D_{tb} / \eta^{dis}_b)\Delta t
         - \sum_b v_b E_{Tb}

    G^+_t - G^-_t + \sum_b (D_{tb} - C_{tb}) = -N_t

    E_{t+1,b} = E_{tb} + (\eta^{ch}_b C_{tb} - D_{tb} / \eta^{dis}_b) \Delta t

    SoC^{min}_b E^{cap}_b \le E_{tb} \le SoC^{max}_b E^{cap}_b,\quad
    0 \le C_{tb}, D_{tb} \le P^{max}_b,\quad G^+_t \le \hat G

with import :math:`G^+`, export :math:`G^-`, bus-side charge :math:`C` and discharge
:math:`D` (the battery model's own equations, see :mod:`models.battery`). This is the
scored cost :math:`J` of :mod:`twin.objective` up to a constant: the wear cost
:math:`w_b` is per kWh through the cells, and a step's cell-side throughput is
:math:`(\eta^{ch} C + D / \eta^{dis})\Delta t` as long as a battery does not charge and
discharge at once (that only loses energy, and among equal plans the tie-break takes
the least throughput); the terminal value :math:`v_b` prices the energy left,
:math:`v_b E_{T b}` differing from :math:`v_b (E_{Tb} - E_{0b})` by a constant. With
``terminal_value_eur_kwh`` None the terminal rule is instead the constraint
:math:`E_{Tb} \ge E_{0b}` (or at least ``e_terminal_min_kwh``).

Two solves: the first minimises the cost above, the second picks among its optima (the
end state nearest ``e_end_preferred_kwh``, then the least throughput, earlier steps
first) without giving up more than the solver's accuracy of cost, so the plan is unique
and still the optimum of :math:`J`. Grid losses are not part of the LP (the grid's physics
stays in the power flow; on the shipped feeder they are mostly the transformer's no-load
losses, which no dispatch changes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from twin.errors import TwinError
from twin.objective import UNMET_EV_EUR_KWH

__all__ = [
    "DispatchPlan",
    "DispatchProblem",
    "EVSession",
    "ExportAboveImportError",
    "LPError",
    "LPInfeasibleError",
    "LPWarning",
    "solve_dispatch",
]

TIE_BREAK_EUR_KWH = 1e-5
TIE_BREAK_RAMP_EUR_KWH = 1e-4
#: Tie-break weight of each kWh the end state is away from the start state.
TIE_BREAK_END_EUR_KWH = 1.0
#: How much above the optimum (EUR) the tie-break's solve may go: solver accuracy.
OPTIMUM_TOLERANCE_EUR = 1e-7


class LPError(TwinError):
    """The dispatch LP has no solution (infeasible limits) or the solver failed."""


class LPInfeasibleError(LPError):
    """No dispatch keeps every limit (e.g. an import limit above what the site needs)."""


class LPWarning(UserWarning):
    """The LP solved, but not as asked (a tie-break that failed, a limit dropped)."""


class ExportAboveImportError(LPError):
    """An export price above the import price of its step: the LP is unbounded there.

    Importing and exporting in the same step would pay without limit; the true cost of
    the net exchange is then not convex and a linear program cannot plan it.
    """


def check_prices(price_import: np.ndarray, price_export: np.ndarray) -> None:
    """Raise :class:`ExportAboveImportError` unless export <= import at every step."""
    above = np.flatnonzero(np.asarray(price_export) > np.asarray(price_import))
    if above.size:
        k = int(above[0])
        raise ExportAboveImportError(
            f"tariff.export_eur_kwh: expected at most the import price at every step for "
            f"the dispatch LP (oracle, MPC); step {k} (of {above.size} such) exports at "
            f"{float(price_export[k]):g} EUR/kWh and imports at {float(price_import[k]):g}"
        )


@dataclass(frozen=True)
class EVSession:
    """A flexible EV charge: ``e_kwh`` (grid side) between steps ``start`` and ``end``.

    ``end`` is exclusive; the EV can draw up to ``p_max_kw`` at charger ``charger``.
    With the EV's battery known (``capacity_kwh``, its SoC at ``start`` and the
    charger's ``efficiency``), the plan keeps to the EV's acceptance, which tapers
    from full power at :data:`models.ev.TAPER_START_SOC` to zero when full, as the EV
    model does (linear in the energy charged so far).
    """

    charger: int
    start: int
    end: int
    e_kwh: float
    p_max_kw: float
    capacity_kwh: float | None = None
    soc_start: float = 0.0
    efficiency: float = 1.0


@dataclass
class DispatchProblem:
    """Inputs of the dispatch LP; arrays over steps ``(T,)`` and batteries ``(B,)``.

    ``wear_eur_kwh`` (per battery, EUR per kWh through the cells; None: no wear cost)
    and ``terminal_value_eur_kwh`` (per battery, EUR per kWh left in the cells at the
    end; None: the constraint "end with at least ``e_terminal_min_kwh``, default the
    initial energy") are :class:`twin.objective.Objective`'s ``wear`` and
    ``terminal_value``. Among plans of equal cost the LP picks one ending nearest
    ``e_end_preferred_kwh`` (default: the initial energy; a re-planning controller passes
    the run's).
    """

    net_kw: np.ndarray
    price_import_eur_kwh: np.ndarray
    price_export_eur_kwh: np.ndarray
    dt_h: float
    e_kwh: np.ndarray
    p_max_kw: np.ndarray
    eta_ch: np.ndarray
    eta_dis: np.ndarray
    soc_min: np.ndarray
    soc_max: np.ndarray
    soc0: np.ndarray
    wear_eur_kwh: np.ndarray | None = None
    demand_charge_eur_kw: float = 0.0
    terminal_value_eur_kwh: np.ndarray | None = None
    e_terminal_min_kwh: np.ndarray | None = None  # default: the initial energy
    e_end_preferred_kwh: np.ndarray | None = None  # tie-break target; default: initial
    step_offset: int | None = None  # absolute index of step 0 (for the tie-break ramp)
    steps_total: int = 1
    ev_sessions: list[EVSession] | None = None
    n_chargers: int = 0
    unmet_ev_penalty_eur_kwh: float = UNMET_EV_EUR_KWH
    p_import_max_kw: float | None = None
    #: Among equally good plans, import and export as late as possible (least
    #: commitment: a re-planning controller charges from the grid only when it must,
    #: keeping room for a surplus it did not foresee, and stores a surplus when it comes).
    defer_grid: bool = False


@dataclass
class DispatchPlan:
    """Solution: bus-side battery power (> 0 discharge), grid exchange, stored energy."""

    p_battery_kw: np.ndarray  # (T, B)
    p_import_kw: np.ndarray  # (T,)
    p_export_kw: np.ndarray  # (T,)
    e_kwh: np.ndarray  # (T + 1, B)
    cost_eur: float  # energy cost + wear + demand charge (no terminal value)
    p_ev_kw: np.ndarray  # (T, n_chargers) EV charging, grid side (>= 0)
    e_ev_unmet_kwh: float = 0.0
    wear_eur: float = 0.0  # the wear part of cost_eur
    #: What did not go as asked (each also warned as :class:`LPWarning`).
    notes: list[str] = field(default_factory=list)


def solve_dispatch(problem: DispatchProblem) -> DispatchPlan:
    """Solve the dispatch LP with HiGHS.

    Raises
    ------
    ExportAboveImportError
        If an export price exceeds the import price of its step (the LP is unbounded).
    LPError
        If the problem is infeasible (e.g. an import limit that cannot be kept) or the
        solver fails.
    """
    pr = problem
    check_prices(pr.price_import_eur_kwh, pr.price_export_eur_kwh)
    t_n, b_n = len(pr.net_kw), len(pr.e_kwh)
    dt = pr.dt_h
    # Variable layout: [C (T*B), D (T*B), E (T+1)*B, G+ (T), G- (T), peak (1)]
    n_c = t_n * b_n
    i_c, i_d, i_e = 0, n_c, 2 * n_c
    i_gp = i_e + (t_n + 1) * b_n
    i_gm = i_gp + t_n
    i_peak = i_gm + t_n
    # EV sessions: one charging variable per session and step of its window, then one
    # unmet-energy slack per session (penalised, so a too-short stay stays feasible).
    sessions = [s for s in (pr.ev_sessions or []) if min(s.end, t_n) > max(s.start, 0)]
    ev_session = np.concatenate(
        [np.full(min(s.end, t_n) - max(s.start, 0), j) for j, s in enumerate(sessions)] or [[]]
    ).astype(np.int64)
    ev_step = np.concatenate(
        [np.arange(max(s.start, 0), min(s.end, t_n)) for s in sessions] or [[]]
    ).astype(np.int64)
    i_x = i_peak + 1
    i_u = i_x + len(ev_step)
    # End state's distance from the start, above and below (for the tie-break only).
    i_dev = i_u + len(sessions)
    n_var = i_dev + 2 * b_n

    def cb(t: np.ndarray, b: np.ndarray) -> np.ndarray:
        return t * b_n + b

    # The objective: the scored cost (plus the penalty on EV energy not delivered).
    cost = np.zeros(n_var)
    wear = np.zeros(b_n) if pr.wear_eur_kwh is None else np.asarray(pr.wear_eur_kwh, float)
    wear_c = np.tile(wear * pr.eta_ch, t_n)  # per bus-side kWh charged
    wear_d = np.tile(wear / pr.eta_dis, t_n)  # per bus-side kWh discharged
    cost[i_c : i_c + n_c] = wear_c * dt
    cost[i_d : i_d + n_c] = wear_d * dt
    cost[i_gp : i_gp + t_n] = pr.price_import_eur_kwh * dt
    cost[i_gm : i_gm + t_n] = -pr.price_export_eur_kwh * dt
    cost[i_peak] = pr.demand_charge_eur_kw
    cost[i_u:i_dev] = pr.unmet_ev_penalty_eur_kwh
    if pr.terminal_value_eur_kwh is not None:
        cost[i_e + t_n * b_n + np.arange(b_n)] = -np.broadcast_to(
            np.asarray(pr.terminal_value_eur_kwh, float), (b_n,)
        )
    # Among the optima, a second solve picks one (:func:`_tie_break`): ending where the
    # battery started, then the least throughput, earlier steps first (a small cost
    # growing in time), so the plan is unique and a re-solve from a later step continues
    # it. It never trades scored cost for the tie-break.
    offset, total = (0, t_n) if pr.step_offset is None else (pr.step_offset, pr.steps_total)
    position = (offset + np.repeat(np.arange(t_n), b_n)) / max(total, 1)
    ramp = TIE_BREAK_EUR_KWH + TIE_BREAK_RAMP_EUR_KWH * position
    tie = np.zeros(n_var)
    tie[i_c:i_e] = np.tile(ramp * dt, 2)
    if pr.defer_grid:
        # the grid exchange as late as possible: import (grid charging) deferred, and
        # a surplus stored when it comes rather than exported for a later one
        late = TIE_BREAK_RAMP_EUR_KWH * (1.0 - (offset + np.arange(t_n)) / max(total, 1)) * dt
        tie[i_gp:i_gm] = late
        tie[i_gm:i_peak] = late
    offset_x = 0 if pr.step_offset is None else pr.step_offset
    tie[i_x:i_u] = TIE_BREAK_RAMP_EUR_KWH * (offset_x + ev_step) / max(total, 1) * dt
    tie[i_dev:] = TIE_BREAK_END_EUR_KWH

    tt, bb = np.meshgrid(np.arange(t_n), np.arange(b_n), indexing="ij")
    tt, bb = tt.ravel(), bb.ravel()
    # Balance rows (T): G+ - G- + sum_b D - C = -N
    # EV charging draws from the bus: - sum_s X[s, t].
    rows = [tt, tt, np.arange(t_n), np.arange(t_n), ev_step]
    cols = [
        i_d + cb(tt, bb), i_c + cb(tt, bb), i_gp + np.arange(t_n), i_gm + np.arange(t_n),
        i_x + np.arange(len(ev_step)),
    ]  # fmt: skip
    vals = [np.ones(n_c), -np.ones(n_c), np.ones(t_n), -np.ones(t_n), -np.ones(len(ev_step))]
    a_bal = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(t_n, n_var)
    )
    # Storage rows (T*B): E[t+1] - E[t] - eta_ch C dt + D dt / eta_dis = 0; plus E[0] = E0
    r = cb(tt, bb)
    rows = [r, r, r, r]
    cols = [i_e + cb(tt + 1, bb), i_e + cb(tt, bb), i_c + r, i_d + r]
    vals = [np.ones(n_c), -np.ones(n_c), -pr.eta_ch[bb] * dt, dt / pr.eta_dis[bb]]
    a_sto = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_c, n_var)
    )
    a_init = sparse.csr_matrix(
        (np.ones(b_n), (np.arange(b_n), i_e + np.arange(b_n))), shape=(b_n, n_var)
    )
    # EV energy rows: sum_t X[s, t] dt + U[s] = E[s]
    n_s = len(sessions)
    a_ev = sparse.csr_matrix(
        (
            np.concatenate([np.full(len(ev_step), dt), np.ones(n_s)]),
            (np.concatenate([ev_session, np.arange(n_s)]),
             np.concatenate([i_x + np.arange(len(ev_step)), i_u + np.arange(n_s)])),
        ),
        shape=(n_s, n_var),
    )  # fmt: skip
    # End-state distance rows (B): E_T - above + below = preferred end state
    e_end_col = i_e + t_n * b_n + np.arange(b_n)
    a_dev = sparse.csr_matrix(
        (np.concatenate([np.ones(b_n), -np.ones(b_n), np.ones(b_n)]),
         (np.tile(np.arange(b_n), 3),
          np.concatenate([e_end_col, i_dev + np.arange(b_n), i_dev + b_n + np.arange(b_n)]))),
        shape=(b_n, n_var),
    )  # fmt: skip
    e0 = pr.soc0 * pr.e_kwh
    a_eq = sparse.vstack([a_bal, a_sto, a_init, a_ev, a_dev]).tocsr()
    e_pref = e0 if pr.e_end_preferred_kwh is None else pr.e_end_preferred_kwh
    b_eq = np.concatenate([-pr.net_kw, np.zeros(n_c), e0, [s.e_kwh for s in sessions], e_pref])

    # Inequalities: G+ - peak <= 0; terminal E_T >= E0 (as -E_T <= -E0)
    ub_rows = [sparse.csr_matrix(
        (np.concatenate([np.ones(t_n), -np.ones(t_n)]),
         (np.concatenate([np.arange(t_n)] * 2),
          np.concatenate([i_gp + np.arange(t_n), np.full(t_n, i_peak)]))),
        shape=(t_n, n_var),
    )]  # fmt: skip
    b_ub = [np.zeros(t_n)]
    if pr.terminal_value_eur_kwh is None:
        ub_rows.append(
            sparse.csr_matrix(
                (-np.ones(b_n), (np.arange(b_n), i_e + t_n * b_n + np.arange(b_n))),
                shape=(b_n, n_var),
            )
        )
        e_end = e0 if pr.e_terminal_min_kwh is None else pr.e_terminal_min_kwh
        b_ub.append(-np.minimum(e_end, pr.soc_max * pr.e_kwh))

    bounds = np.zeros((n_var, 2))
    bounds[:, 1] = np.inf
    bounds[i_c:i_d, 1] = np.tile(pr.p_max_kw, t_n)
    bounds[i_d:i_e, 1] = np.tile(pr.p_max_kw, t_n)
    bounds[i_e:i_gp, 0] = np.tile(pr.soc_min * pr.e_kwh, t_n + 1)
    bounds[i_e:i_gp, 1] = np.tile(pr.soc_max * pr.e_kwh, t_n + 1)
    # The initial state may sit outside the window (it is fixed by its equality row).
    bounds[i_e : i_e + b_n, 0] = np.minimum(bounds[i_e : i_e + b_n, 0], e0)
    bounds[i_e : i_e + b_n, 1] = np.maximum(bounds[i_e : i_e + b_n, 1], e0)
    if pr.p_import_max_kw is not None:
        bounds[i_gp:i_gm, 1] = pr.p_import_max_kw
    bounds[i_x:i_u, 1] = np.array([sessions[j].p_max_kw for j in ev_session])

    taper = _taper_rows(sessions, ev_session, i_x, dt, n_var)
    if taper is not None:
        ub_rows.append(taper[0])
        b_ub.append(taper[1])
    a_ub = sparse.vstack(ub_rows).tocsr()
    notes: list[str] = []
    x = _solve_lexicographic(cost, tie, a_ub, np.concatenate(b_ub), a_eq, b_eq, bounds, notes)
    charge = x[i_c:i_d].reshape(t_n, b_n)
    discharge = x[i_d:i_e].reshape(t_n, b_n)
    wear_eur = float(wear_c @ x[i_c:i_d] + wear_d @ x[i_d:i_e]) * dt
    energy_cost = (
        float(pr.price_import_eur_kwh @ x[i_gp:i_gm] - pr.price_export_eur_kwh @ x[i_gm:i_peak])
        * dt
        + wear_eur
        + pr.demand_charge_eur_kw * float(x[i_peak])
    )
    p_ev = np.zeros((t_n, pr.n_chargers))
    if len(ev_step):
        chargers = np.array([sessions[j].charger for j in ev_session])
        np.add.at(p_ev, (ev_step, chargers), x[i_x:i_u])
    return DispatchPlan(
        p_battery_kw=discharge - charge,
        p_import_kw=x[i_gp:i_gm],
        p_export_kw=x[i_gm:i_peak],
        e_kwh=x[i_e:i_gp].reshape(t_n + 1, b_n),
        cost_eur=energy_cost,
        p_ev_kw=p_ev,
        e_ev_unmet_kwh=float(x[i_u:i_dev].sum()),
        wear_eur=wear_eur,
        notes=notes,
    )


def _taper_rows(
    sessions: list[EVSession], ev_session: np.ndarray, i_x: int, dt: float, n_var: int
) -> tuple[sparse.csr_matrix, np.ndarray] | None:
    """The EVs' acceptance: ``X_t <= P (1 - SoC_t) / (1 - SoC_taper)`` per session step.

    With ``SoC_t = SoC_start + eta dt sum_{u<t} X_u / capacity`` this is linear in the
    session's charging so far (and slack below the taper's start).
    """
    from models.ev import TAPER_START_SOC

    rows, cols, vals, rhs = [], [], [], []
    span = 1.0 - TAPER_START_SOC
    for j, s in enumerate(sessions):
        if s.capacity_kwh is None:
            continue
        columns = i_x + np.flatnonzero(ev_session == j)
        slope = s.p_max_kw * s.efficiency * dt / (span * s.capacity_kwh)
        for i, col in enumerate(columns):
            row = len(rhs)
            rows += [row] * (i + 1)
            cols += [*columns[:i], col]
            vals += [slope] * i + [1.0]
            rhs.append(s.p_max_kw * (1.0 - s.soc_start) / span)
    if not rhs:
        return None
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(rhs), n_var))
    return matrix, np.array(rhs)


def _solve_lexicographic(
    cost: np.ndarray,
    tie: np.ndarray,
    a_ub: sparse.csr_matrix,
    b_ub: np.ndarray,
    a_eq: sparse.csr_matrix,
    b_eq: np.ndarray,
    bounds: np.ndarray,
    notes: list[str],
) -> np.ndarray:
    """Minimise ``cost``, then ``tie`` among the minimisers of ``cost`` (two HiGHS solves).

    The second solve keeps ``cost`` within :data:`OPTIMUM_TOLERANCE_EUR` (plus a 1e-9
    relative margin) of the first's optimum, so the tie-break never costs more than the
    solver's accuracy. Should it fail numerically, the first solution stands (an
    optimum too, not the tie-break's pick): said in ``notes`` and warned (:class:`LPWarning`).
    """
    first = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if first.status == 2:
        raise LPInfeasibleError(f"dispatch LP infeasible: {first.message}")
    if first.status != 0:
        raise LPError(f"dispatch LP failed ({first.status}): {first.message}")
    margin = OPTIMUM_TOLERANCE_EUR + 1e-9 * abs(first.fun)
    second = linprog(
        tie,
        A_ub=sparse.vstack([a_ub, sparse.csr_matrix(cost)]).tocsr(),
        b_ub=np.append(b_ub, first.fun + margin),
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    if second.status == 0:
        return second.x
    note = (
        f"dispatch LP: the tie-break solve failed ({second.status}: {second.message}); "
        "the cost optimum's first solution is used"
    )
    notes.append(note)
    warnings.warn(note, LPWarning, stacklevel=3)
    return first.x
