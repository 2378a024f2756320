r"""Measurement functions h(x) and their Jacobian H on a fixed sparsity pattern.

State (pandapower's): :math:`x = [\theta_{ns}, |V|]`, the angles of the non-slack ppci
buses and the magnitudes of all ppci buses. Every power or current row belongs to one
row :math:`y` of :math:`[Y_{bus}; Y_f; Y_t]` with a terminal bus :math:`s` (the bus
itself, or the branch's from/to bus): :math:`I = y V`, :math:`S = V_s \bar I`.
With :math:`a_k = y_k V_k`:

.. math::

    \frac{\partial S}{\partial \theta_k} = j V_s (\delta_{ks} \bar I - \bar a_k), \qquad
    \frac{\partial S}{\partial |V_k|} = V_s \bar a_k / |V_k|
        + \delta_{ks} \bar I V_s / |V_s|,

    \frac{\partial |I|}{\partial \theta_k} = -\operatorname{Im}(\bar I a_k) / |I|, \qquad
    \frac{\partial |I|}{\partial |V_k|} = \operatorname{Re}(\bar I a_k) / (|I| |V_k|),

the pypower formulas (``dSbus_dV``, ``dSbr_dV``, ``dIbr_dV``) that pandapower's
``BaseAlgebra`` uses, evaluated only on the entries that exist: the pattern of H is
computed once per sensor set, and each evaluation fills its values with one gather.

References
----------
.. [1] A. Abur and A. G. Exposito, *Power System State Estimation: Theory and
   Implementation*, ch. 2. New York: Marcel Dekker, 2004.
.. [2] R. D. Zimmerman, C. E. Murillo-Sanchez, "MATPOWER User's Manual", derivatives of
   complex power and current injections (``dSbus_dV``, ``dSbr_dV``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from models.estimation.sensors import BRANCH_SIDES, Sensors

if TYPE_CHECKING:
    from models.estimation.model import SEModel

__all__ = ["KIND_I", "KIND_P", "KIND_Q", "KIND_V", "MeasurementSet"]

SQRT3 = np.sqrt(3.0)
KIND_V, KIND_P, KIND_Q, KIND_I = 0, 1, 2, 3
_KINDS = {"v": KIND_V, "p": KIND_P, "q": KIND_Q, "i": KIND_I}


@dataclass(eq=False)
class MeasurementSet:
    """The compiled measurement rows of a sensor table (the sensors, then virtual rows).

    Attributes
    ----------
    n_sensors : int
        Number of real sensors (the first rows).
    kind : numpy.ndarray
        ``KIND_V``/``KIND_P``/``KIND_Q``/``KIND_I`` per row.
    factor : numpy.ndarray
        Sensor unit per pu (v: 1; bus p/q: ``-base_mva``, load sign; branch p/q:
        ``base_mva``; i: ``base_mva / (sqrt(3) vn_kv)``); 1 for virtual rows.
    virtual_std_pu : numpy.ndarray
        Standard deviation (pu) of the virtual zero-injection rows (value 0).
    n_state : int
        Number of state variables (``2 n_bus - n_slack``).
    h_row, h_col : numpy.ndarray
        The nonzeros of H (row, state column), in CSR order (row-major, sorted).
    """

    n_sensors: int
    kind: np.ndarray
    factor: np.ndarray
    virtual_std_pu: np.ndarray
    n_state: int
    h_row: np.ndarray
    h_col: np.ndarray
    _bus: np.ndarray
    _upos: np.ndarray
    _ysel: sp.csr_matrix
    _term: np.ndarray
    _e_u: np.ndarray
    _e_k: np.ndarray
    _e_y: np.ndarray
    _e_diag: np.ndarray
    _src: np.ndarray
    _vm_col: np.ndarray
    _any_i: bool
    theta_cols: np.ndarray

    @classmethod
    def build(cls, model: SEModel, sensors: Sensors, positions: np.ndarray) -> MeasurementSet:
        """Compile ``sensors`` (already checked; ``positions`` in their element tables)."""
        n_bus = model.n_bus
        n_branch = len(model.f_bus)
        n = len(sensors)
        zero = model.zero_injection
        m = n + 2 * len(zero)
        kind = np.empty(m, np.int64)
        kind[:n] = [_KINDS[t] for t in sensors.meas_type]
        kind[n:] = np.r_[np.full(len(zero), KIND_P), np.full(len(zero), KIND_Q)]
        yrow = np.full(m, -1, np.int64)  # row of [Ybus; Yf; Yt], or the bus of a V row
        factor = np.ones(m)
        base = model.base_mva
        is_bus = sensors.element_type == "bus"
        bus_rows = np.flatnonzero(is_bus)
        yrow[bus_rows] = model.bus_lookup[positions[bus_rows]]
        power = is_bus & (kind[:n] != KIND_V)
        factor[:n][power] = -base
        for table, (from_side, to_side) in BRANCH_SIDES.items():
            rows = np.flatnonzero(sensors.element_type == table)
            if not len(rows):
                continue
            branch = model.branch_row[table][positions[rows]]
            to = sensors.side[rows] == to_side
            yrow[rows] = n_bus + branch + np.where(to, n_branch, 0)
            end = np.where(
                to,
                model.branch_end_bus[table][to_side][positions[rows]],
                model.branch_end_bus[table][from_side][positions[rows]],
            )
            k = kind[rows]
            factor[rows] = np.where(k == KIND_I, base / (SQRT3 * model.vn_kv[end]), base)
        yrow[n:] = np.r_[zero, zero]
        # Only the Y rows the sensors use
        y_all = sp.vstack([model.ybus, model.yf, model.yt]).tocsr()
        term_all = np.r_[np.arange(n_bus), model.f_bus, model.t_bus]
        flow = kind != KIND_V
        urows, upos_flow = np.unique(yrow[flow], return_inverse=True)
        upos = np.full(m, -1, np.int64)
        upos[flow] = upos_flow
        ysel = y_all[urows].tocsr()
        ysel.sort_indices()
        term = term_all[urows]
        e_u = np.repeat(np.arange(len(urows)), np.diff(ysel.indptr))
        e_k = ysel.indices.astype(np.int64)
        e_y = ysel.data.astype(complex)
        has_diag = np.zeros(len(urows), bool)
        has_diag[e_u[e_k == term[e_u]]] = True
        missing = np.flatnonzero(~has_diag)  # add a structural (u, s) entry where absent
        e_u = np.r_[e_u, missing]
        e_k = np.r_[e_k, term[missing]]
        e_y = np.r_[e_y, np.zeros(len(missing), complex)]
        e_diag = e_k == term[e_u]
        # State columns: theta of non-slack buses, then |V| of all buses
        slack = np.zeros(n_bus, bool)
        slack[model.slack] = True
        theta_col = np.full(n_bus, -1, np.int64)
        theta_col[~slack] = np.arange(int((~slack).sum()))
        n_theta = int((~slack).sum())
        vm_col = n_theta + np.arange(n_bus)
        n_state = n_theta + n_bus
        # H nonzeros: (row, col, source in the value vector)
        n_e = len(e_u)
        order = np.argsort(e_u, kind="stable")
        e_start = np.searchsorted(e_u[order], np.arange(len(urows) + 1))
        rows_r, cols_r, src_r = [], [], []
        flow_rows = np.flatnonzero(flow)
        if len(flow_rows):
            counts = e_start[upos[flow_rows] + 1] - e_start[upos[flow_rows]]
            r = np.repeat(flow_rows, counts)
            starts = np.repeat(e_start[upos[flow_rows]], counts)
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            e = order[starts + within]
            block = np.select([kind[r] == KIND_P, kind[r] == KIND_Q], [0, 1], 2)
            th = theta_col[e_k[e]]
            keep = th >= 0
            rows_r += [r[keep], r]
            cols_r += [th[keep], vm_col[e_k[e]]]
            src_r += [block[keep] * n_e + e[keep], (3 + block) * n_e + e]
        v_rows = np.flatnonzero(~flow)
        rows_r.append(v_rows)
        cols_r.append(vm_col[yrow[v_rows]])
        src_r.append(np.full(len(v_rows), 6 * n_e))
        h_row = np.concatenate(rows_r).astype(np.int64)
        h_col = np.concatenate(cols_r).astype(np.int64)
        src = np.concatenate(src_r).astype(np.int64)
        csr = np.lexsort((h_col, h_row))
        virtual = np.r_[model.zero_injection_std, model.zero_injection_std]
        return cls(
            n_sensors=n,
            kind=kind,
            factor=factor,
            virtual_std_pu=virtual,
            n_state=n_state,
            h_row=h_row[csr],
            h_col=h_col[csr],
            _bus=np.where(flow, -1, yrow),
            _upos=upos,
            _ysel=ysel,
            _term=term,
            _e_u=e_u,
            _e_k=e_k,
            _e_y=e_y,
            _e_diag=e_diag,
            _src=src[csr],
            _vm_col=vm_col,
            _any_i=bool((kind == KIND_I).any()),
            theta_cols=theta_col,
        )

    @property
    def n_rows(self) -> int:
        """Sensors plus virtual zero-injection rows."""
        return len(self.kind)

    def evaluate(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """h(x) in pu for every row, and the currents ``I = y V`` of the used Y rows."""
        current = self._ysel @ v
        s = v[self._term] * np.conj(current)
        h = np.empty(self.n_rows)
        kind = self.kind
        u = self._upos
        for code, values in (
            (KIND_P, s.real),
            (KIND_Q, s.imag),
            (KIND_I, np.abs(current)),
        ):
            rows = kind == code
            h[rows] = values[u[rows]]
        rows = kind == KIND_V
        h[rows] = np.abs(v[self._bus[rows]])
        return h, current

    def jacobian_values(self, v: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Values of H (pu) on ``(h_row, h_col)`` at the voltages ``v``."""
        e_u, e_k = self._e_u, self._e_k
        vk = v[e_k]
        a_conj = np.conj(self._e_y * vk)
        vs = v[self._term][e_u]
        i_conj = np.conj(current)[e_u]
        vm = np.abs(v)
        diag = self._e_diag
        d_theta = 1j * vs * (np.where(diag, i_conj, 0) - a_conj)
        d_vm = vs * a_conj / vm[e_k] + np.where(diag, i_conj * vs / np.abs(vs), 0)
        n_e = len(e_u)
        values = np.empty(6 * n_e + 1)
        values[:n_e] = d_theta.real
        values[n_e : 2 * n_e] = d_theta.imag
        values[3 * n_e : 4 * n_e] = d_vm.real
        values[4 * n_e : 5 * n_e] = d_vm.imag
        if self._any_i:
            mag = np.abs(current)[e_u]
            with np.errstate(divide="ignore", invalid="ignore"):
                inv = np.where(mag > 0, 1.0 / mag, 0.0)
            prod = np.conj(a_conj) * i_conj  # conj(I) * a
            values[2 * n_e : 3 * n_e] = -prod.imag * inv
            values[5 * n_e : 6 * n_e] = prod.real * inv / vm[e_k]
        else:
            values[2 * n_e : 3 * n_e] = 0.0
            values[5 * n_e : 6 * n_e] = 0.0
        values[6 * n_e] = 1.0
        return values[self._src]

    def measure(self, v: np.ndarray) -> np.ndarray:
        """h(x) of the real sensors in their units (see :class:`~models.estimation.Sensors`)."""
        h, _ = self.evaluate(v)
        return h[: self.n_sensors] * self.factor[: self.n_sensors]
