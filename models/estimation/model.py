"""The estimator's grid model, built once from pandapower's own state-estimation conversion.

:meth:`SEModel.from_net` runs ``pandapower.estimation.ppc_conversion.pp2eppci`` once on a
copy of the net (the path ``pandapower.estimation.estimate`` takes), so the admittance
matrices, the fusing of buses joined by closed bus-bar switches, the auxiliary buses of
open line switches, the slack and the flat start are exactly pandapower's. Per step
nothing of pandas is touched again. A topology change (a switch, an element taken out of
service) needs a new model.

References
----------
.. [1] A. Abur and A. G. Exposito, *Power System State Estimation: Theory and
   Implementation*. New York: Marcel Dekker, 2004.
.. [2] pandapower, "State Estimation",
   https://pandapower.readthedocs.io/en/latest/estimation.html
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import scipy.sparse.linalg as spla
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BUS_TYPE

from models.estimation.measurement import MeasurementSet
from models.estimation.sensors import (
    BRANCH_SIDES,
    OutOfServiceError,
    Sensors,
    UnknownElementError,
)

__all__ = ["SEModel"]

SQRT3 = np.sqrt(3.0)
#: pandapower's standard deviation of a virtual zero-injection measurement (pu).
ZERO_INJECTION_STD_PU = 1e-3
#: pandapower's standard deviation of the P = Q = 0 rows of open-line-switch buses (pu).
OPEN_SWITCH_BUS_STD_PU = 1e-6


@dataclass(frozen=True, eq=False)
class SEModel:
    """The grid as the state estimator sees it (pandapower's internal "ppci" model).

    Attributes
    ----------
    ybus, yf, yt : scipy.sparse.csr_matrix
        Bus admittance matrix and from/to branch admittance matrices (pu), exactly
        those ``pandapower.estimation.estimate`` uses.
    f_bus, t_bus : numpy.ndarray
        From/to ppci bus of every ppci branch.
    base_mva : float
        System base (``net.sn_mva``).
    slack : numpy.ndarray
        ppci buses whose angle is fixed (bus type 3, the external grids).
    v_init, va_init_rad : numpy.ndarray
        pandapower's flat start per ppci bus (|V| in pu, angle in rad).
    bus_lookup : numpy.ndarray
        ppci bus of every pandapower bus, in ``net.bus`` order (-1 if out of service).
    bus_index : numpy.ndarray
        ``net.bus.index``.
    branch_row : dict
        ``{"line": array, "trafo": array}``: ppci branch row of every element in table
        order (-1 if out of service).
    element_index : dict
        ``{"bus"|"line"|"trafo": index array}`` of the net's tables.
    vn_kv : numpy.ndarray
        Nominal voltage (kV) of every pandapower bus, in ``net.bus`` order.
    primary : numpy.ndarray
        True for the pandapower bus that carries the power results of its ppci bus
        (False for buses fused into another one, as ``res_bus_est``).
    shunt_pu : numpy.ndarray
        Complex power drawn at 1 pu by shunts/wards at every pandapower bus (pu).
    zero_injection : numpy.ndarray
        ppci buses with virtual P = Q = 0 rows (aux buses, zero-injection buses).
    zero_injection_std : numpy.ndarray
        Standard deviation (pu) of those rows.
    """

    ybus: object
    yf: object
    yt: object
    f_bus: np.ndarray
    t_bus: np.ndarray
    base_mva: float
    slack: np.ndarray
    v_init: np.ndarray
    va_init_rad: np.ndarray
    bus_lookup: np.ndarray
    bus_index: np.ndarray
    branch_row: dict
    element_index: dict
    element_in_service: dict
    vn_kv: np.ndarray
    primary: np.ndarray
    shunt_pu: np.ndarray
    zero_injection: np.ndarray
    zero_injection_std: np.ndarray
    branch_end_bus: dict

    @classmethod
    def from_net(
        cls, net: pp.pandapowerNet, *, zero_injection: str | None | list = "aux_bus"
    ) -> SEModel:
        """Build the model from a pandapower net (the net itself is not modified).

        Parameters
        ----------
        net : pandapowerNet
            The grid. Its ``measurement`` table is ignored.
        zero_injection : {"aux_bus", None} or list of int
            As ``pandapower.estimation.estimate``: ``"aux_bus"`` (default) adds virtual
            P = Q = 0 measurements (std 1e-3 pu) at pandapower's auxiliary buses; a list
            adds them at those pandapower buses too; ``None`` adds none. Buses created for
            open line switches always get P = Q = 0 rows (std 1e-6 pu), as pandapower.
        """
        from pandapower.estimation.ppc_conversion import pp2eppci

        work = copy.deepcopy(net)
        work.measurement = work.measurement.iloc[0:0]
        first = work.bus.index[work.bus["in_service"].to_numpy(bool)][0]
        pp.create_measurement(work, "v", "bus", 1.0, 1.0, int(first))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, _, eppci = pp2eppci(work, zero_injection=zero_injection)
        ybus, yf, yt = (m.tocsr() for m in eppci.get_Y())
        bus = eppci["bus"]
        branch = eppci["branch"]
        n_bus = bus.shape[0]
        lookups = work["_pd2ppc_lookups"]
        bus_index = work.bus.index.to_numpy()
        raw = lookups["bus"][bus_index]
        bus_lookup = np.where((raw >= 0) & (raw < n_bus), raw, -1).astype(np.int64)
        branch_is = eppci["internal"]["branch_is"]
        internal_row = np.cumsum(branch_is) - 1
        branch_row, element_index, in_service, end_bus = {}, {"bus": bus_index}, {}, {}
        in_service["bus"] = bus_lookup >= 0
        for table in ("line", "trafo"):
            frame = work[table]
            start, end = lookups["branch"].get(table, (0, 0))
            rows = np.arange(start, end)
            branch_row[table] = np.where(branch_is[rows], internal_row[rows], -1).astype(np.int64)
            element_index[table] = frame.index.to_numpy()
            in_service[table] = branch_row[table] >= 0
            sides = BRANCH_SIDES[table]
            end_bus[table] = {
                side: index_positions(bus_index, frame[f"{side}_bus"].to_numpy()) for side in sides
            }
        # Virtual P = Q = 0 rows (ppc_conversion._add_zero_injection and open-switch buses)
        zero = _zero_injection(eppci)
        open_switch = np.setdiff1d(np.arange(n_bus), raw[raw >= 0])
        zero = np.setdiff1d(zero, open_switch)
        zero_bus = np.r_[zero, open_switch].astype(np.int64)
        zero_std = np.r_[
            np.full(len(zero), ZERO_INJECTION_STD_PU),
            np.full(len(open_switch), OPEN_SWITCH_BUS_STD_PU),
        ]
        order = np.argsort(zero_bus, kind="stable")
        merged = np.asarray(lookups["merged_bus"], bool)
        primary = (bus_lookup >= 0) & ~merged[bus_index] if len(merged) else bus_lookup >= 0
        vn_kv = work.bus["vn_kv"].to_numpy(float)
        return cls(
            ybus=ybus,
            yf=yf,
            yt=yt,
            f_bus=branch[:, F_BUS].real.astype(np.int64),
            t_bus=branch[:, T_BUS].real.astype(np.int64),
            base_mva=float(eppci["baseMVA"]),
            slack=np.flatnonzero(bus[:, BUS_TYPE].real == 3),
            v_init=np.asarray(eppci.v_init, float).copy(),
            va_init_rad=np.asarray(eppci.delta_init, float).copy(),
            bus_lookup=bus_lookup,
            bus_index=bus_index,
            branch_row=branch_row,
            element_index=element_index,
            element_in_service=in_service,
            vn_kv=vn_kv,
            primary=primary,
            shunt_pu=_shunt_pu(work, bus_index, vn_kv) / float(eppci["baseMVA"]),
            zero_injection=zero_bus[order],
            zero_injection_std=zero_std[order],
            branch_end_bus=end_bus,
        )

    @property
    def n_bus(self) -> int:
        """Number of ppci buses (after fusing, plus open-switch buses)."""
        return self.ybus.shape[0]

    def compile(self, sensors: Sensors) -> MeasurementSet:
        """Check ``sensors`` against the grid and precompute their measurement functions.

        Raises
        ------
        UnknownElementError
            If a sensor names an element index not in the net's table.
        OutOfServiceError
            If a sensor's element is out of service (not in the solved grid).
        """
        n = len(sensors)
        found = np.empty(n, np.int64)
        for table in ("bus", "line", "trafo"):
            rows = np.flatnonzero(sensors.element_type == table)
            if not len(rows):
                continue
            index = self.element_index[table]
            pos = index_positions(index, sensors.element[rows])
            bad = pos < 0
            if bad.any():
                i = int(rows[np.argmax(bad)])
                raise UnknownElementError(
                    f"sensors[{i}].element: {table} {sensors.element[i]} is not in net.{table} "
                    f"(index {_describe(index)})"
                )
            off = ~self.element_in_service[table][pos]
            if off.any():
                i = int(rows[np.argmax(off)])
                raise OutOfServiceError(
                    f"sensors[{i}].element: {table} {sensors.element[i]} is out of service "
                    "(not part of the estimated grid); expected an in-service element"
                )
            found[rows] = pos
        return MeasurementSet.build(self, sensors, found)

    def measure(
        self, vm_pu: np.ndarray, va_degree: np.ndarray, sensors: Sensors | MeasurementSet
    ) -> np.ndarray:
        """The exact measurement function h(x) in the sensors' units (see ``Sensors``).

        Parameters
        ----------
        vm_pu, va_degree : numpy.ndarray
            Voltage magnitude (pu) and angle (degree) of every pandapower bus, in
            ``net.bus`` order (as ``res_bus``). Buses fused into one ppci bus must agree;
            the first in-service one of each ppci bus is used.
        sensors : Sensors or MeasurementSet
            The sensors (a compiled set from :meth:`compile` skips the checks).

        Returns
        -------
        numpy.ndarray
            One value per sensor: v in pu; bus p/q in MW/Mvar consumed at the ppci bus
            (load sign, the power drawn by shunts excluded, all pandapower buses fused
            into that ppci bus together); branch p/q in MW/Mvar into the branch at that
            side; i in kA.
        """
        mset = sensors if isinstance(sensors, MeasurementSet) else self.compile(sensors)
        return mset.measure(self.voltage(vm_pu, va_degree))

    def voltage(self, vm_pu: np.ndarray, va_degree: np.ndarray) -> np.ndarray:
        """Complex ppci bus voltages (pu) from per-pandapower-bus magnitude and angle.

        ppci buses without a pandapower bus (the open end of a line with an open
        switch) carry no load: their voltage solves :math:`(Y_{bus} V)_a = 0`, as in the
        power flow.
        """
        v_pp = np.asarray(vm_pu, float) * np.exp(1j * np.radians(np.asarray(va_degree, float)))
        v = self.v_init * np.exp(1j * self.va_init_rad)
        ok = self.bus_lookup >= 0
        v[self.bus_lookup[ok][::-1]] = v_pp[ok][::-1]
        free = self._unmapped
        if len(free):
            rest = self.ybus[free] @ np.where(self._unmapped_mask, 0, v)
            v[free] = -spla.spsolve(self.ybus[free][:, free].tocsc(), rest)
        return v

    @property
    def _unmapped_mask(self) -> np.ndarray:
        mask = np.ones(self.n_bus, bool)
        mask[self.bus_lookup[self.bus_lookup >= 0]] = False
        return mask

    @property
    def _unmapped(self) -> np.ndarray:
        return np.flatnonzero(self._unmapped_mask)

    def to_bus(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-pandapower-bus (vm_pu, va_degree) of ppci voltages (NaN: out of service)."""
        ok = self.bus_lookup >= 0
        vm = np.full(len(ok), np.nan)
        va = np.full(len(ok), np.nan)
        vm[ok] = np.abs(v[self.bus_lookup[ok]])
        va[ok] = np.degrees(np.angle(v[self.bus_lookup[ok]]))
        return vm, va

    def ppci_bus(self, bus: np.ndarray) -> np.ndarray:
        """Ppci bus of pandapower bus indices (buses fused by bus-bar switches share one)."""
        pos = index_positions(self.bus_index, np.asarray(bus))
        if (pos < 0).any():
            raise UnknownElementError(f"bus {np.asarray(bus)[pos < 0][0]} is not in net.bus")
        return self.bus_lookup[pos]


def _zero_injection(eppci: object) -> np.ndarray:
    from pandapower.estimation.idx_bus import ZERO_INJ_FLAG
    from pandapower.pypower.idx_bus import bus_cols

    flag = eppci["bus"][:, bus_cols + ZERO_INJ_FLAG].real
    return np.flatnonzero(flag == 1)


def _shunt_pu(net: pp.pandapowerNet, bus_index: np.ndarray, vn_kv: np.ndarray) -> np.ndarray:
    """Complex power (MVA) drawn at 1 pu by in-service shunts, wards and xwards per bus."""
    total = np.zeros(len(bus_index), complex)
    for table, p_col, q_col in (
        ("shunt", "p_mw", "q_mvar"),
        ("ward", "pz_mw", "qz_mvar"),
        ("xward", "pz_mw", "qz_mvar"),
    ):
        frame = net[table]
        if frame.empty:
            continue
        frame = frame[frame["in_service"].to_numpy(bool)]
        pos = index_positions(bus_index, frame["bus"].to_numpy())
        s = frame[p_col].to_numpy(float) + 1j * frame[q_col].to_numpy(float)
        if table == "shunt":
            # pandapower: Y = S * step / vn_shunt**2, drawn at the bus's nominal voltage
            s = (
                s
                * frame["step"].to_numpy(float)
                * (vn_kv[pos] / frame["vn_kv"].to_numpy(float)) ** 2
            )
        np.add.at(total, pos, s)
    return total


def index_positions(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of every value in ``index`` (-1 where absent); ``index`` need not be sorted."""
    values = np.asarray(values)
    if not len(index):
        return np.full(len(values), -1, np.int64)
    order = np.argsort(index, kind="stable")
    found = np.minimum(np.searchsorted(index, values, sorter=order), len(index) - 1)
    pos = order[found]
    return np.where(index[pos] == values, pos, -1).astype(np.int64)


def _describe(index: np.ndarray) -> str:
    if not len(index):
        return "empty"
    return f"{int(index.min())}..{int(index.max())}, {len(index)} elements"
