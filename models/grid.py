r"""The electrical grid: a pandapower network with one AC power flow per step.

The scenario's assets replace every element of the network that injects or draws power
(loads, static generators, storage, voltage-controlled generators ``gen``, motors,
asymmetric loads and generators, wards and extended wards: see
:data:`models.gridnet.REPLACED_ELEMENTS`); those are taken out of service. Elements whose
power the twin cannot account for (DC lines, FACTS devices, DC grids) are rejected by
name. Each bus gets one injection element whose power is the sum of the assets
connected to it. The point of connection (POC) is the external grid (the sum over all
external grids in service): ``grid.p_kw`` > 0 is import into the site, and the site
balance reads

.. math:: P_{grid} + \sum_a P_a - P_{losses} = 0

with every asset's ``p_kw`` counted positive into its bus. Losses are those of every
branch (lines, two- and three-winding transformers, impedances) plus the active power
of shunts.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from models.base import Clock, Model, Port
from models.diskcache import MISSING, CacheEntry, code_digest, package_versions
from models.gridnet import (
    REPLACED_ELEMENTS,
    GridSourceError,
    GridTables,
    load_net,
    load_tables,
    source_key,
    unsupported_elements,
)
from models.powerflow import SOLVERS, FastSolver, PowerFlowError, SolverModel, build_model

if TYPE_CHECKING:
    import pandapower as pp

__all__ = ["Grid", "GridError", "prepare_net", "solver_model"]

INJECTION_PREFIX = "twin injection"


class GridError(RuntimeError):
    """The power flow failed (did not converge) at a given time."""


def prepare_net(spec: str) -> tuple[pp.pandapowerNet, np.ndarray]:
    """Load the net, take its own injections out of service, add one per bus.

    Raises
    ------
    GridSourceError
        If the net holds elements the twin cannot account for (see
        :func:`models.gridnet.unsupported_elements`).

    Returns
    -------
    net : pandapowerNet
        The prepared network.
    injection : numpy.ndarray
        ``sgen`` index of the injection element of every bus, in ``net.bus`` order.
    """
    net = load_net(spec)
    problems = unsupported_elements(net)
    if problems:
        raise GridSourceError(f"grid {spec!r}: " + "; ".join(problems))
    for table in REPLACED_ELEMENTS:
        if table in net and not net[table].empty:
            net[table]["in_service"] = False
    import pandapower as pp

    buses = net.bus.index
    names = [f"{INJECTION_PREFIX} {bus}" for bus in buses]
    injection = pp.create_sgens(net, buses, p_mw=0.0, q_mvar=0.0, name=names)
    return net, np.asarray(injection, dtype=np.int64)


#: The code the solver model is derived by: a stored model of older code misses.
MODEL_CODE = ("grid", "gridnet", "powerflow")


def solver_model_key(spec: str) -> tuple[str, ...]:
    """What the solver model of grid ``spec`` depends on (its disk-cache key)."""
    return (
        *source_key(spec),
        "replaced=" + ",".join(REPLACED_ELEMENTS),  # what prepare_net takes out of service
        *package_versions("pandapower", "lightsim2grid", "scipy"),
        code_digest(*MODEL_CODE),
    )


def solver_model(spec: str) -> SolverModel:
    """The fast solver's model of grid ``spec`` as prepared, from the disk cache.

    Derived on a miss (:func:`prepare_net`, one ``runpp``: imports pandapower) and
    stored; a warm read imports neither pandapower nor simbench. The key moves with
    the grid source, the versions of pandapower, lightsim2grid and scipy, and the code
    of this module, :mod:`models.gridnet` and :mod:`models.powerflow`.

    Raises
    ------
    GridSourceError
        If the grid cannot be loaded or holds elements the twin cannot account for.
    PowerFlowError
        If the unloaded grid does not converge.
    """
    return _solver_model(spec, solver_model_key(spec))


@lru_cache(maxsize=8)
def _solver_model(spec: str, key: tuple[str, ...]) -> SolverModel:
    entry = CacheEntry("solver", key)
    model = entry.read("model")
    if model is MISSING:
        model = build_model(*prepare_net(spec))
        entry.write({"model": model})
    return model


#: Nominal frequency (Hz) of the grids twin models (European).
NOMINAL_HZ = 50.0


class Grid(Model):
    """A pandapower grid (one unit: the network behind its point of connection).

    Unit parameters: ``grid`` (SimBench code, ``pandapower.networks`` name or JSON
    path) and ``solver`` (``"fast"``, the default, or ``"pandapower"``, the reference;
    see :mod:`models.powerflow`).
    Element groups: ``bus`` (inputs ``p_kw``/``q_kvar`` summed over the assets at the
    bus), ``line``, ``trafo`` and ``grid`` (the point of connection).
    """

    kind = "grid"
    inputs = {
        "p_kw": Port("kW", "active power injected at the bus (sum of its assets)", group="bus"),
        "q_kvar": Port("kvar", "reactive power injected at the bus", group="bus"),
        "in_service": Port(
            "1", "1 = line in service, 0 = out; NaN keeps the grid's own status", "line", np.nan
        ),
        "v_ext_scale": Port("1", "multiplier on the POC voltage (sag < 1 < spike)", default=1.0),
        "islanded": Port("1", "1 = the POC is open (grid outage)", default=0.0),
        "f_dev_hz": Port("Hz", "frequency deviation imposed by the grid", default=0.0),
    }
    outputs = {
        "v_pu": Port("pu", "voltage magnitude", group="bus", sensor="voltage"),
        "va_deg": Port("deg", "voltage angle", group="bus"),
        "loading_pct": Port(
            "%", "loading of the line's thermal rating", group="line", sensor="loading"
        ),
        "trafo_loading_pct": Port(
            "%", "loading of the transformer's rating", group="trafo", sensor="loading"
        ),
        "p_kw": Port("kW", "import at the point of connection (> 0 into the site)", sensor="power"),
        "q_kvar": Port("kvar", "reactive import at the point of connection", sensor="power"),
        "losses_kw": Port("kW", "active losses: lines, transformers, impedances, shunts"),
        "unserved_kw": Port("kW", "load not served: islanded deficit, buses cut off"),
        "curtailed_kw": Port("kW", "generation curtailed: islanded surplus, buses cut off"),
        "f_hz": Port("Hz", "grid frequency at the POC", sensor="frequency"),
    }

    @classmethod
    def element_names(
        cls, units: list[dict[str, Any]], context: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """The point of connection, and every bus, line and transformer of the net."""
        (unit,) = units
        return cls._names(unit, load_tables(unit["grid"]))

    @classmethod
    def _names(cls, unit: dict[str, Any], net: GridTables) -> dict[str, list[str]]:
        return {
            cls.kind: [unit["name"]],
            "bus": [f"bus_{i}" for i in net.bus.index],
            "line": [f"line_{i}" for i in net.line.index],
            "trafo": [f"trafo_{i}" for i in net.trafo.index],
        }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        (self.config,) = units
        spec = self.config["grid"]
        self._prepared: tuple[pp.pandapowerNet, np.ndarray] | None = None
        tables = load_tables(spec)
        problems = unsupported_elements(tables)
        if problems:
            raise GridSourceError(f"grid {spec!r}: " + "; ".join(problems))
        self.elements = self._names(self.config, tables)
        self._line_base_status = tables.line["in_service"].to_numpy(bool).copy()
        self._line_in_service = self._line_base_status.copy()
        solver = self.config.get("solver", "fast")
        if solver not in SOLVERS:
            raise ValueError(
                f"unknown grid solver {solver!r}; expected one of {', '.join(SOLVERS)}"
            )
        try:
            if solver == "fast":  # pandapower only if the topology changes
                self.solver = FastSolver.from_model(solver_model(spec), self._prepare)
            else:
                self.solver = SOLVERS[solver](*self._prepare())
        except PowerFlowError as exc:
            raise GridError(
                f"grid {self.config['grid']!r} does not converge with its own loads and "
                f"generators taken out of service (the scenario's assets replace them): {exc}"
            ) from exc

    def _prepare(self) -> tuple[pp.pandapowerNet, np.ndarray]:
        """The prepared net and its injection elements, built on first use."""
        if self._prepared is None:
            self._prepared = prepare_net(self.config["grid"])
        return self._prepared

    @property
    def net(self) -> pp.pandapowerNet:
        """The grid's pandapower net as prepared (loaded on first use: imports pandapower)."""
        return self._prepare()[0]

    def reset(self) -> None:
        """Return to the state as built: lines as in the grid file, no warm start."""
        if not np.array_equal(self._line_in_service, self._line_base_status):
            self.set_lines_in_service(self._line_base_status.copy())
        self.solver.reset()

    def set_lines_in_service(self, in_service: np.ndarray) -> None:
        """Switch lines in or out of service; the solver model is rebuilt once."""
        self.net.line["in_service"] = in_service
        self._line_in_service = in_service.copy()
        self.solver.topology_changed()

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Solve the power flow for the step's injections and report the grid state."""
        command = inputs["in_service"]
        in_service = np.where(np.isnan(command), self._line_base_status, command >= 0.5)
        if not np.array_equal(in_service, self._line_in_service):
            self.set_lines_in_service(in_service)
        v_scale = float(inputs["v_ext_scale"][0]) if "v_ext_scale" in inputs else 1.0
        try:
            res = self.solver.solve(
                inputs["p_kw"] / 1000.0, inputs["q_kvar"] / 1000.0, v_ext_scale=v_scale
            )
        except PowerFlowError as exc:
            raise GridError(f"power flow did not converge at {now.isoformat()}: {exc}") from exc
        p_ext_kw = res.p_ext_mw * 1000.0
        islanded = "islanded" in inputs and inputs["islanded"][0] >= 0.5
        # Islanded, nothing crosses the POC: what the slack would have supplied is
        # unserved load, what it would have taken is curtailed generation (voltages are
        # those of a grid-forming unit at the POC balancing the site).
        poc_kw = 0.0 if islanded else p_ext_kw
        unserved = max(p_ext_kw, 0.0) if islanded else 0.0
        curtailed = max(-p_ext_kw, 0.0) if islanded else 0.0
        # Buses cut off from the POC (a line outage) carry nothing: their net load is
        # unserved, their net generation curtailed (balanced locally as far as it goes).
        cut_off = np.isnan(res.vm_pu)
        if np.count_nonzero(cut_off):
            net_kw = float(inputs["p_kw"][cut_off].sum())
            unserved += max(-net_kw, 0.0)
            curtailed += max(net_kw, 0.0)
        f_hz = NOMINAL_HZ + (float(inputs["f_dev_hz"][0]) if "f_dev_hz" in inputs else 0.0)
        return {
            "v_pu": res.vm_pu,
            "va_deg": res.va_degree,
            "loading_pct": res.line_loading_pct,
            "trafo_loading_pct": res.trafo_loading_pct,
            "p_kw": np.array([poc_kw]),
            "q_kvar": np.array([0.0 if islanded else res.q_ext_mvar * 1000.0]),
            "losses_kw": np.array([res.losses_mw * 1000.0]),
            "unserved_kw": np.array([unserved]),
            "curtailed_kw": np.array([curtailed]),
            "f_hz": np.array([f_hz]),
        }
