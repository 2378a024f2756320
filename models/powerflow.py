"""Power-flow solvers behind the grid model.

``PandapowerSolver`` calls :func:`pandapower.runpp` every step: the reference.

``FastSolver`` builds the solver model once from the pandapower net (pandapower's own
conversion: admittance matrices, bus types, element-to-bus lookups), then per step only
updates the bus injections and runs lightsim2grid's Newton-Raphson (C++, KLU),
warm-started from the last voltages. Results are computed with pandapower's own
formulas (branch currents from |S| / (sqrt(3) |V| U_n), line loading against
``max_i_ka * df * parallel``, transformer loading from rated current), so the fast
path equals ``runpp``. A topology change (a line switched in or out of service)
rebuilds the model once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, GS, SL_FAC

__all__ = ["SOLVERS", "FastSolver", "GridResult", "PandapowerSolver", "PowerFlowError"]

SQRT3 = np.sqrt(3.0)
#: Mismatch tolerance (MVA on the net's base) of the fast path. runpp's default is 1e-8;
#: on case118 (100 MVA base) that leaves ~1.5e-6 MW of slack-power difference between two
#: converged solutions from different starting points, so the fast path solves tighter.
TOLERANCE_MVA = 1e-10
MAX_ITERATION = 10  # pandapower's runpp default for Newton-Raphson


class PowerFlowError(RuntimeError):
    """The power flow did not converge."""


@dataclass
class GridResult:
    """One power-flow solution, in ``net.bus``/``net.line``/``net.trafo`` order."""

    vm_pu: np.ndarray
    va_degree: np.ndarray
    line_loading_pct: np.ndarray
    trafo_loading_pct: np.ndarray
    p_ext_mw: float
    q_ext_mvar: float
    losses_mw: float


class PandapowerSolver:
    """Reference path: ``pandapower.runpp`` on the net every step.

    Parameters
    ----------
    net : pandapowerNet
        The prepared net (see :func:`models.grid.prepare_net`).
    injection : numpy.ndarray
        ``sgen`` index of each bus's injection element, in ``net.bus`` order.
    """

    name = "pandapower"

    def __init__(self, net: pp.pandapowerNet, injection: np.ndarray) -> None:
        self.net = net
        self.injection = injection

    def topology_changed(self) -> None:
        """Nothing to rebuild: runpp converts the net every call."""

    def reset(self) -> None:
        """Nothing to forget: ``runpp`` starts every call from its own initial guess."""

    def solve(self, p_mw: np.ndarray, q_mvar: np.ndarray, v_ext_scale: float = 1.0) -> GridResult:
        """Set the bus injections (MW, Mvar; > 0 into the bus) and run ``runpp``.

        ``v_ext_scale`` multiplies the external grid's voltage setpoint (a sag or spike).
        """
        net = self.net
        if not hasattr(self, "_vm_ext0"):
            self._vm_ext0 = net.ext_grid["vm_pu"].to_numpy(float).copy()
        net.ext_grid["vm_pu"] = self._vm_ext0 * v_ext_scale
        net.sgen.loc[self.injection, "p_mw"] = p_mw
        net.sgen.loc[self.injection, "q_mvar"] = q_mvar
        try:
            pp.runpp(net, numba=False)
        except pp.LoadflowNotConverged as exc:
            raise PowerFlowError(str(exc)) from exc
        return GridResult(
            vm_pu=net.res_bus["vm_pu"].to_numpy(),
            va_degree=net.res_bus["va_degree"].to_numpy(),
            line_loading_pct=net.res_line["loading_percent"].to_numpy(),
            trafo_loading_pct=net.res_trafo["loading_percent"].to_numpy(),
            p_ext_mw=float(net.res_ext_grid["p_mw"].sum()),
            q_ext_mvar=float(net.res_ext_grid["q_mvar"].sum()),
            losses_mw=pandapower_losses_mw(net),
        )


#: Result tables whose ``pl_mw`` (branches) or ``p_mw`` (shunts) are grid losses.
LOSS_TABLES = (("line", "pl_mw"), ("trafo", "pl_mw"), ("trafo3w", "pl_mw"), ("impedance", "pl_mw"))


def pandapower_losses_mw(net: pp.pandapowerNet) -> float:
    """Active losses of every branch plus the active power drawn by shunts (MW)."""
    total = 0.0
    for table, column in (*LOSS_TABLES, ("shunt", "p_mw")):
        result = net.get(f"res_{table}")
        if result is not None and column in result and not result.empty:
            total += float(result[column].sum())
    return total


class FastSolver:
    """Fast path: the solver model is built once; each step updates injections only.

    Parameters
    ----------
    net : pandapowerNet
        The prepared net (see :func:`models.grid.prepare_net`). Switches, merged
        buses and out-of-service elements are handled by pandapower's own conversion.
    injection : numpy.ndarray
        ``sgen`` index of each bus's injection element, in ``net.bus`` order.
    """

    name = "fast"

    def __init__(self, net: pp.pandapowerNet, injection: np.ndarray) -> None:
        from lightsim2grid.algorithm import NRSing_KLU

        self.net = net
        self.injection = injection
        self._algorithm = NRSing_KLU
        self.rebuilds = 0
        self._build()

    def topology_changed(self) -> None:
        """Rebuild the solver model once after a change of the net's topology."""
        self._build()

    def reset(self) -> None:
        """Forget the warm start: the next solve starts from the as-built voltages.

        Newton-Raphson converges to the same voltages from any nearby start only to
        its tolerance; the last bits depend on the start. Reset between episodes so
        that an episode never depends on the one before.
        """
        self._v = self._v_start.copy()

    def _build(self) -> None:
        net = self.net
        net.sgen.loc[self.injection, ["p_mw", "q_mvar"]] = 0.0
        try:
            pp.runpp(net, numba=False)
        except pp.LoadflowNotConverged as exc:
            raise PowerFlowError(f"the unloaded grid does not converge: {exc}") from exc
        internal = net._ppc["internal"]
        self._ybus = internal["Ybus"].tocsc()
        self._yf = internal["Yf"].tocsr()
        self._yt = internal["Yt"].tocsr()
        self._sbus0 = internal["Sbus"].astype(complex).copy()
        self._ref = internal["ref"].astype(np.int32)
        self._pv = internal["pv"].astype(np.int32)
        self._pq = internal["pq"].astype(np.int32)
        self._weights = internal["bus"][:, SL_FAC].real.astype(float)
        self._base_mva = float(internal["baseMVA"])
        self._v_start = internal["V"].astype(complex).copy()
        self._v = self._v_start.copy()
        self._v_ref0 = self._v[self._ref].copy()
        n_internal = self._ybus.shape[0]
        lookup = net._pd2ppc_lookups["bus"][net.bus.index.to_numpy()]
        self._bus_int = np.where((lookup >= 0) & (lookup < n_internal), lookup, -1)
        self._bus_ok = self._bus_int >= 0
        self._base_kv = internal["bus"][:, BASE_KV].real
        self._shunt_mw = internal["bus"][:, GS].real.astype(float)  # drawn at 1 pu
        # ppc branch rows of lines/trafos -> rows of the internal (in-service) branch table
        branch_is = internal["branch_is"]
        internal_row = np.cumsum(branch_is) - 1
        self._f = internal["branch"][:, F_BUS].real.astype(np.int64)
        self._t = internal["branch"][:, T_BUS].real.astype(np.int64)
        self._rows = {}
        for table in ("line", "trafo"):
            start, end = net._pd2ppc_lookups["branch"].get(table, (0, 0))
            rows = np.arange(start, end)
            self._rows[table] = np.where(branch_is[rows], internal_row[rows], -1)
        line = net.line
        self._line_i_max = (line["max_i_ka"] * line["df"] * line["parallel"]).to_numpy(float)
        trafo = net.trafo
        self._trafo_vn = trafo[["vn_hv_kv", "vn_lv_kv"]].to_numpy(float)
        self._trafo_scale = (trafo["sn_mva"] * trafo["parallel"] * trafo["df"]).to_numpy(float)
        self._solver = self._algorithm()
        self.rebuilds += 1

    def solve(self, p_mw: np.ndarray, q_mvar: np.ndarray, v_ext_scale: float = 1.0) -> GridResult:
        """Solve with bus injections ``p_mw``/``q_mvar`` (> 0 into the bus).

        ``v_ext_scale`` multiplies the slack buses' voltage magnitude (a sag or spike).
        """
        s_pu = (p_mw + 1j * q_mvar) / self._base_mva
        # the slack voltages as built, scaled: exact and the same on every call
        self._v[self._ref] = self._v_ref0 * v_ext_scale
        ok = self._bus_ok
        sbus = (
            self._sbus0
            + np.bincount(self._bus_int[ok], weights=s_pu.real[ok], minlength=len(self._sbus0))
            + 1j * np.bincount(self._bus_int[ok], weights=s_pu.imag[ok], minlength=len(self._sbus0))
        )
        solver = self._solver
        solver.solve(
            self._ybus,
            self._v,
            sbus,
            self._ref,
            self._weights,
            self._pv,
            self._pq,
            MAX_ITERATION,
            TOLERANCE_MVA,
        )
        if not solver.converged():
            self._v = self._v / np.abs(self._v)  # do not warm-start from a failed state
            raise PowerFlowError(f"Newton-Raphson did not converge in {MAX_ITERATION} iterations")
        v = solver.get_Vm() * np.exp(1j * solver.get_Va())
        self._v = v
        return self._results(v, s_pu)

    def _results(self, v: np.ndarray, s_pu: np.ndarray) -> GridResult:
        base = self._base_mva
        s_f = v[self._f] * np.conj(self._yf @ v) * base
        s_t = v[self._t] * np.conj(self._yt @ v) * base
        vm = np.abs(v)
        i_f = np.abs(s_f) / (vm[self._f] * self._base_kv[self._f]) / SQRT3
        i_t = np.abs(s_t) / (vm[self._t] * self._base_kv[self._t]) / SQRT3

        def per_element(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
            out = np.zeros(len(rows))  # out-of-service elements carry nothing
            live = rows >= 0
            out[live] = values[rows[live]]
            return out

        lines = self._rows["line"]
        line_i = np.maximum(per_element(i_f, lines), per_element(i_t, lines))
        trafos = self._rows["trafo"]
        trafo_i = np.column_stack([per_element(i_f, trafos), per_element(i_t, trafos)])
        with np.errstate(invalid="ignore", divide="ignore"):
            line_loading = line_i / self._line_i_max * 100.0
            trafo_loading = (trafo_i * self._trafo_vn).max(axis=1) * SQRT3 / self._trafo_scale * 100
        s_bus = v * np.conj(self._ybus @ v) * base
        ok = self._bus_ok
        s_inj_ref = np.bincount(
            self._bus_int[ok], weights=(s_pu.real * base)[ok], minlength=len(v)
        ) + 1j * np.bincount(self._bus_int[ok], weights=(s_pu.imag * base)[ok], minlength=len(v))
        s_ext = (s_bus[self._ref] - s_inj_ref[self._ref]).sum()
        vm_bus = np.full(len(ok), np.nan)
        va_bus = np.full(len(ok), np.nan)
        vm_bus[ok] = vm[self._bus_int[ok]]
        va_bus[ok] = np.degrees(np.angle(v[self._bus_int[ok]]))
        # every branch (lines, trafos, trafo3w, impedances) plus shunts' active power
        losses = (s_f.real + s_t.real).sum() + (self._shunt_mw * vm**2).sum()
        return GridResult(
            vm_pu=vm_bus,
            va_degree=va_bus,
            line_loading_pct=line_loading,
            trafo_loading_pct=trafo_loading,
            p_ext_mw=float(s_ext.real),
            q_ext_mvar=float(s_ext.imag),
            losses_mw=float(losses),
        )


SOLVERS = {"pandapower": PandapowerSolver, "fast": FastSolver}
