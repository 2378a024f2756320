r"""The electrical grid: a pandapower network with one AC power flow per step.

The scenario's assets replace the network's own loads, static generators and storage
(those are taken out of service); each bus gets one injection element whose power is
the sum of the assets connected to it. The point of connection (POC) is the external
grid: ``grid.p_kw`` > 0 is import into the site, and the site balance reads

.. math:: P_{grid} + \sum_a P_a - P_{losses} = 0

with every asset's ``p_kw`` counted positive into its bus.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandapower as pp

from models.base import Clock, Model, Port
from models.gridnet import load_net

__all__ = ["Grid", "GridError", "prepare_net"]

INJECTION_PREFIX = "twin injection"


class GridError(RuntimeError):
    """The power flow failed (did not converge) at a given time."""


def prepare_net(spec: str) -> tuple[pp.pandapowerNet, np.ndarray]:
    """Load the net, take its own injections out of service, add one per bus.

    Returns
    -------
    net : pandapowerNet
        The prepared network.
    injection : numpy.ndarray
        ``sgen`` index of the injection element of every bus, in ``net.bus`` order.
    """
    net = load_net(spec)
    for table in ("load", "sgen", "storage"):
        net[table]["in_service"] = False
    injection = np.array(
        [
            pp.create_sgen(net, bus, p_mw=0.0, q_mvar=0.0, name=f"{INJECTION_PREFIX} {bus}")
            for bus in net.bus.index
        ],
        dtype=np.int64,
    )
    return net, injection


class Grid(Model):
    """A pandapower grid (one unit: the network behind its point of connection).

    Unit parameters: ``grid`` (SimBench code, ``pandapower.networks`` name or JSON
    path) and ``solver`` (``"pandapower"``).
    Element groups: ``bus`` (inputs ``p_kw``/``q_kvar`` summed over the assets at the
    bus), ``line``, ``trafo`` and ``grid`` (the point of connection).
    """

    kind = "grid"
    inputs = {
        "p_kw": Port("kW", "active power injected at the bus (sum of its assets)", group="bus"),
        "q_kvar": Port("kvar", "reactive power injected at the bus", group="bus"),
    }
    outputs = {
        "v_pu": Port("pu", "voltage magnitude", group="bus"),
        "va_deg": Port("deg", "voltage angle", group="bus"),
        "loading_pct": Port("%", "loading of the line's thermal rating", group="line"),
        "trafo_loading_pct": Port("%", "loading of the transformer's rating", group="trafo"),
        "p_kw": Port("kW", "import at the point of connection (> 0 into the site)"),
        "q_kvar": Port("kvar", "reactive import at the point of connection"),
        "losses_kw": Port("kW", "active losses in lines and transformers"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        (self.config,) = units
        self.net, self._injection = prepare_net(self.config["grid"])
        net = self.net
        self.elements.update(
            {
                "bus": [f"bus_{i}" for i in net.bus.index],
                "line": [f"line_{i}" for i in net.line.index],
                "trafo": [f"trafo_{i}" for i in net.trafo.index],
            }
        )

    def solve(self, p_kw: np.ndarray, q_kvar: np.ndarray, now: datetime) -> None:
        """Run one AC power flow with the given bus injections (kW, kvar)."""
        net = self.net
        net.sgen.loc[self._injection, "p_mw"] = p_kw / 1000.0
        net.sgen.loc[self._injection, "q_mvar"] = q_kvar / 1000.0
        try:
            pp.runpp(net, numba=False)
        except pp.LoadflowNotConverged as exc:
            raise GridError(f"power flow did not converge at {now.isoformat()}") from exc

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Solve the power flow for the step's injections and report the grid state."""
        self.solve(inputs["p_kw"], inputs["q_kvar"], now)
        net = self.net
        p_import_kw = net.res_ext_grid["p_mw"].to_numpy().sum() * 1000.0
        q_import_kvar = net.res_ext_grid["q_mvar"].to_numpy().sum() * 1000.0
        losses_kw = (net.res_line["pl_mw"].to_numpy().sum() + net.res_trafo["pl_mw"].sum()) * 1000.0
        return {
            "v_pu": net.res_bus["vm_pu"].to_numpy(),
            "va_deg": net.res_bus["va_degree"].to_numpy(),
            "loading_pct": net.res_line["loading_percent"].to_numpy(),
            "trafo_loading_pct": net.res_trafo["loading_percent"].to_numpy(),
            "p_kw": np.array([p_import_kw]),
            "q_kvar": np.array([q_import_kvar]),
            "losses_kw": np.array([losses_kw]),
        }
