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

The solver model (:class:`SolverModel`) is plain arrays: :func:`build_model` derives it
from a net with one ``runpp``; :class:`FastSolver` can start from a stored one
(:meth:`FastSolver.from_model`, see :func:`models.grid.solver_model`) and then needs
pandapower only when the topology changes. pandapower is imported where it is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandapower as pp
    import scipy.sparse

__all__ = [
    "SOLVERS",
    "FastSolver",
    "GridResult",
    "PandapowerSolver",
    "PowerFlowError",
    "SolverModel",
    "build_model",
]

#: Columns of pandapower's internal (PYPOWER) tables the fast path reads, as in
#: ``pandapower.pypower.idx_brch``/``idx_bus`` (equal in a test): importing those
#: modules imports all of pandapower (a second), which a warm run does not need.
F_BUS, T_BUS = 0, 1  # idx_brch: from and to bus
GS, BASE_KV, SL_FAC = 4, 9, 15  # idx_bus: shunt MW at 1 pu, base kV, slack weight

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
        import pandapower as pp

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


@dataclass(frozen=True)
class SolverModel:
    """What the fast path solves with: pandapower's conversion of one net, as arrays.

    Derived once per net and topology by :func:`build_model`; deterministic, so it can
    be stored (:func:`models.grid.solver_model`) and read without importing pandapower.
    Never changed after it is built (a solver copies what it changes).
    """

    ybus: scipy.sparse.csc_matrix  # bus admittance matrix (internal buses, per unit)
    yf: scipy.sparse.csr_matrix  # branch from-end admittances
    yt: scipy.sparse.csr_matrix  # branch to-end admittances
    sbus0: np.ndarray  # injections of the unloaded grid (pu, complex)
    ref: np.ndarray  # internal slack buses
    pv: np.ndarray  # internal voltage-controlled buses
    pq: np.ndarray  # internal load buses
    weights: np.ndarray  # slack weights
    base_mva: float
    v_start: np.ndarray  # voltages of the unloaded grid (pu, complex)
    bus_int: np.ndarray  # internal bus of every ``net.bus`` row (-1: out of service)
    base_kv: np.ndarray  # base voltage of every internal bus
    shunt_mw: np.ndarray  # shunt active power of every internal bus at 1 pu
    f: np.ndarray  # from bus of every internal branch
    t: np.ndarray  # to bus of every internal branch
    line_rows: np.ndarray  # internal branch of every ``net.line`` row (-1: out)
    trafo_rows: np.ndarray  # internal branch of every ``net.trafo`` row (-1: out)
    line_i_max: np.ndarray  # line rating (kA): max_i_ka * df * parallel
    trafo_vn: np.ndarray  # (n_trafo, 2) rated voltages hv, lv (kV)
    trafo_scale: np.ndarray  # sn_mva * parallel * df


def build_model(net: pp.pandapowerNet, injection: np.ndarray) -> SolverModel:
    """The solver model of ``net`` (one ``runpp`` of the unloaded grid).

    Parameters
    ----------
    net : pandapowerNet
        The prepared net (see :func:`models.grid.prepare_net`); its injection elements
        are set to zero.
    injection : numpy.ndarray
        ``sgen`` index of each bus's injection element, in ``net.bus`` order.

    Raises
    ------
    PowerFlowError
        If the unloaded grid does not converge.
    """
    import pandapower as pp

    net.sgen.loc[injection, ["p_mw", "q_mvar"]] = 0.0
    try:
        pp.runpp(net, numba=False)
    except pp.LoadflowNotConverged as exc:
        raise PowerFlowError(f"the unloaded grid does not converge: {exc}") from exc
    internal = net._ppc["internal"]
    ybus = internal["Ybus"].tocsc()
    n_internal = ybus.shape[0]
    lookup = net._pd2ppc_lookups["bus"][net.bus.index.to_numpy()]
    # ppc branch rows of lines/trafos -> rows of the internal (in-service) branch table
    branch_is = internal["branch_is"]
    internal_row = np.cumsum(branch_is) - 1
    rows = {}
    for table in ("line", "trafo"):
        start, end = net._pd2ppc_lookups["branch"].get(table, (0, 0))
        ppc_rows = np.arange(start, end)
        rows[table] = np.where(branch_is[ppc_rows], internal_row[ppc_rows], -1)
    line, trafo = net.line, net.trafo
    return SolverModel(
        ybus=ybus,
        yf=internal["Yf"].tocsr(),
        yt=internal["Yt"].tocsr(),
        sbus0=internal["Sbus"].astype(complex).copy(),
        ref=internal["ref"].astype(np.int32),
        pv=internal["pv"].astype(np.int32),
        pq=internal["pq"].astype(np.int32),
        weights=internal["bus"][:, SL_FAC].real.astype(float),
        base_mva=float(internal["baseMVA"]),
        v_start=internal["V"].astype(complex).copy(),
        bus_int=np.where((lookup >= 0) & (lookup < n_internal), lookup, -1),
        base_kv=internal["bus"][:, BASE_KV].real.copy(),
        shunt_mw=internal["bus"][:, GS].real.astype(float),  # drawn at 1 pu
        f=internal["branch"][:, F_BUS].real.astype(np.int64),
        t=internal["branch"][:, T_BUS].real.astype(np.int64),
        line_rows=rows["line"],
        trafo_rows=rows["trafo"],
        line_i_max=(line["max_i_ka"] * line["df"] * line["parallel"]).to_numpy(float),
        trafo_vn=trafo[["vn_hv_kv", "vn_lv_kv"]].to_numpy(float),
        trafo_scale=(trafo["sn_mva"] * trafo["parallel"] * trafo["df"]).to_numpy(float),
    )


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
        self._prepared = lambda: (net, injection)
        self.rebuilds = 0
        self._use(build_model(net, injection))

    @classmethod
    def from_model(
        cls,
        model: SolverModel,
        prepared: Callable[[], tuple[pp.pandapowerNet, np.ndarray]],
    ) -> FastSolver:
        """A solver starting from a stored model; ``prepared()`` gives the net if needed.

        Parameters
        ----------
        model : SolverModel
            The model of the net as prepared (its own topology).
        prepared : callable
            Returns the prepared net and its injection elements (the net whose topology
            :meth:`topology_changed` reads); called only on a topology change.
        """
        solver = cls.__new__(cls)
        solver._prepared = prepared
        solver.rebuilds = 0
        solver._use(model)
        return solver

    @property
    def net(self) -> pp.pandapowerNet:
        """The prepared net (built on first use when the solver started from a model)."""
        return self._prepared()[0]

    @property
    def model(self) -> SolverModel:
        """The solver model in use (of the topology as last built)."""
        return self._model

    def topology_changed(self) -> None:
        """Rebuild the solver model once after a change of the net's topology."""
        self._use(build_model(*self._prepared()))

    def reset(self) -> None:
        """Forget the warm start: the next solve starts from the as-built voltages.

        Newton-Raphson converges to the same voltages from any nearby start only to
        its tolerance; the last bits depend on the start. Reset between episodes so
        that an episode never depends on the one before.
        """
        self._v = self._model.v_start.copy()

    def _use(self, model: SolverModel) -> None:
        from lightsim2grid.algorithm import NRSing_KLU

        self._model = model
        self._v = model.v_start.copy()
        self._v_ref0 = self._v[model.ref].copy()
        self._bus_ok = model.bus_int >= 0
        self._lookups = _Lookups.of(model)
        self._solver = NRSing_KLU()
        self.rebuilds += 1

    def solve(self, p_mw: np.ndarray, q_mvar: np.ndarray, v_ext_scale: float = 1.0) -> GridResult:
        """Solve with bus injections ``p_mw``/``q_mvar`` (> 0 into the bus).

        ``v_ext_scale`` multiplies the slack buses' voltage magnitude (a sag or spike).
        """
        m, look = self._model, self._lookups
        s_pu = (p_mw + 1j * q_mvar) / m.base_mva
        # the slack voltages as built, scaled: exact and the same on every call
        self._v[m.ref] = self._v_ref0 * v_ext_scale
        bus_int, n = look.bus_int, len(m.sbus0)
        sbus = (
            m.sbus0
            + np.bincount(bus_int, weights=look.in_service(s_pu.real), minlength=n)
            + 1j * np.bincount(bus_int, weights=look.in_service(s_pu.imag), minlength=n)
        )
        solver = self._solver
        solver.solve(
            m.ybus,
            self._v,
            sbus,
            m.ref,
            m.weights,
            m.pv,
            m.pq,
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
        m, look = self._model, self._lookups
        base = m.base_mva
        # both ends of every branch at once: from ends, then to ends (yf stacked on yt)
        ends = look.ends
        s_ends = v[ends] * np.conj(look.y_ends(v)) * base
        vm = np.abs(v)
        i_ends = np.abs(s_ends) / (vm[ends] * look.base_kv_ends) / SQRT3
        line_i = np.maximum(look.lines_f.take(i_ends), look.lines_t.take(i_ends))
        # the larger of the two ends' apparent powers at rated voltage
        trafo_s = np.maximum(
            look.trafos_f.take(i_ends) * look.trafo_vn_hv,
            look.trafos_t.take(i_ends) * look.trafo_vn_lv,
        )
        with look.quiet():  # a zero rating (a line or trafo out of the model) divides by zero
            line_loading = line_i / m.line_i_max * 100.0
            trafo_loading = trafo_s * SQRT3 / m.trafo_scale * 100
        s_bus = v * np.conj(look.ybus(v)) * base
        bus_int = look.bus_int
        s_inj_ref = np.bincount(
            bus_int, weights=look.in_service(s_pu.real * base), minlength=len(v)
        ) + 1j * np.bincount(bus_int, weights=look.in_service(s_pu.imag * base), minlength=len(v))
        s_ext = (s_bus[m.ref] - s_inj_ref[m.ref]).sum()
        vm_bus = look.per_bus(vm[bus_int])
        va_bus = look.per_bus(np.degrees(np.angle(v[bus_int])))
        # every branch (lines, trafos, trafo3w, impedances) plus shunts' active power
        n_branches = len(m.f)
        losses = (s_ends.real[:n_branches] + s_ends.real[n_branches:]).sum() + (
            m.shunt_mw * vm**2
        ).sum()
        return GridResult(
            vm_pu=vm_bus,
            va_degree=va_bus,
            line_loading_pct=line_loading,
            trafo_loading_pct=trafo_loading,
            p_ext_mw=float(s_ext.real),
            q_ext_mvar=float(s_ext.imag),
            losses_mw=float(losses),
        )


@dataclass(frozen=True)
class _Rows:
    """Where each element (line, trafo) of the net sits among the internal branches."""

    rows: np.ndarray  # internal branch of every element (-1: out of service)
    live: np.ndarray  # rows >= 0
    live_rows: np.ndarray  # rows[live]
    all_live: bool

    @classmethod
    def of(cls, rows: np.ndarray) -> _Rows:
        live = rows >= 0
        return cls(rows, live, rows[live], bool(live.all()))

    def take(self, values: np.ndarray) -> np.ndarray:
        """Each element's value of the branch values (0.0: out of service, carries nothing)."""
        if self.all_live:
            return values[self.rows]
        out = np.zeros(len(self.rows))
        out[self.live] = values[self.live_rows]
        return out


def _matvec(matrix: scipy.sparse.csr_matrix | scipy.sparse.csc_matrix) -> Callable[..., np.ndarray]:
    """``matrix @ x`` for a complex vector ``x``, without scipy's per-call dispatch.

    The same compiled kernel ``@`` ends in (scipy's ``_sparsetools.<format>_matvec``,
    what ``_compressed._matmul_vector`` calls), so the same bits; ``@`` itself where
    that kernel is not there or the operands are of other types.
    """
    try:
        from scipy.sparse import _sparsetools

        kernel = getattr(_sparsetools, f"{matrix.format}_matvec")
    except (ImportError, AttributeError):
        kernel = None
    if kernel is None or matrix.dtype != np.complex128:
        return matrix.__matmul__
    n_rows, n_cols = matrix.shape
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data

    def product(x: np.ndarray) -> np.ndarray:
        if x.dtype != np.complex128 or x.shape != (n_cols,):
            return matrix @ x
        out = np.zeros(n_rows, dtype=np.complex128)
        kernel(n_rows, n_cols, indptr, indices, data, x, out)
        return out

    return product


@dataclass(frozen=True)
class _Lookups:
    """What :meth:`FastSolver._results` reads of a solver model, derived once per model."""

    bus_ok: np.ndarray  # the ``net.bus`` rows that are internal buses
    all_buses: bool
    bus_int: np.ndarray  # their internal buses
    ends: np.ndarray  # the bus at every branch end: from ends, then to ends
    base_kv_ends: np.ndarray  # its base voltage
    lines_f: _Rows  # every line's from end among the ends
    lines_t: _Rows  # ... and its to end
    trafos_f: _Rows
    trafos_t: _Rows
    trafo_vn_hv: np.ndarray
    trafo_vn_lv: np.ndarray
    zero_rating: bool  # a line or transformer rated 0 (its loading divides by zero)
    y_ends: Callable[[np.ndarray], np.ndarray]  # yf stacked on yt: each row as in its own
    ybus: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def of(cls, m: SolverModel) -> _Lookups:
        import scipy.sparse

        ok = m.bus_int >= 0
        ends = np.concatenate([m.f, m.t])
        n_branches = len(m.f)

        def to_end(rows: np.ndarray) -> _Rows:
            return _Rows.of(np.where(rows >= 0, rows + n_branches, -1))

        return cls(
            bus_ok=ok,
            all_buses=bool(ok.all()),
            bus_int=m.bus_int[ok],
            ends=ends,
            base_kv_ends=m.base_kv[ends],
            lines_f=_Rows.of(m.line_rows),
            lines_t=to_end(m.line_rows),
            trafos_f=_Rows.of(m.trafo_rows),
            trafos_t=to_end(m.trafo_rows),
            trafo_vn_hv=np.ascontiguousarray(m.trafo_vn[:, 0]),
            trafo_vn_lv=np.ascontiguousarray(m.trafo_vn[:, 1]),
            zero_rating=bool((m.line_i_max == 0).any() or (m.trafo_scale == 0).any()),
            y_ends=_matvec(scipy.sparse.vstack([m.yf, m.yt], format="csr")),
            ybus=_matvec(m.ybus),
        )

    def in_service(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per ``net.bus`` row) of the buses in the model."""
        return values if self.all_buses else values[self.bus_ok]

    def per_bus(self, values: np.ndarray) -> np.ndarray:
        """Internal buses' ``values`` per ``net.bus`` row (NaN: out of service)."""
        if self.all_buses:
            return values
        out = np.full(len(self.bus_ok), np.nan)
        out[self.bus_ok] = values
        return out

    def quiet(self) -> contextlib.AbstractContextManager[Any]:
        """No warnings of a division by a zero rating (``inf``/``nan`` loading is the result)."""
        if self.zero_rating:
            return np.errstate(invalid="ignore", divide="ignore")
        return contextlib.nullcontext()


SOLVERS = {"pandapower": PandapowerSolver, "fast": FastSolver}
