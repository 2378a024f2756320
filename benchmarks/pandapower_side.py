"""pandapower's side of the side-by-side benchmarks: the same net and bus injections.

The twin's run records every asset's injection; :func:`save_bus_injections` sums them
per bus on the net exactly as the twin prepares it (one static generator per bus) and
saves net, injections and the twin's voltages for a pandapower worker process;
:func:`timeseries_controllers` feeds them to ``run_timeseries`` (``ConstControl`` on the
static generators, its default recycling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_prepared", "save_bus_injections", "timeseries_controllers"]


def save_bus_injections(scenario: Any, run_dir: Path, work: Path) -> None:
    """Save the net, the twin's recorded injections per bus (MW, Mvar) and its voltages.

    Parameters
    ----------
    scenario : twin.scenario.ScenarioBase
        The scenario the twin ran.
    run_dir : Path
        The twin's run directory.
    work : Path
        Where ``net.json``, ``injection.npy``, ``p_mw.npy``, ``q_mvar.npy`` and
        ``vm_twin.npy`` go.
    """
    import numpy as np
    import pandapower as pp

    from models.grid import prepare_net
    from models.gridnet import bus_index
    from twin.results import load_results, wide

    results = load_results(run_dir)
    net, injection = prepare_net(scenario.grid.source)
    position = {bus: i for i, bus in enumerate(net.bus.index)}
    times = wide(results, "bus", "v_pu").index
    p_kw = np.zeros((len(times), len(net.bus)))
    q_kvar = np.zeros_like(p_kw)
    for kind in ("pv", "battery", "load", "ev"):
        units = scenario.units(kind)
        for quantity, into in (("p_kw", p_kw), ("q_kvar", q_kvar)):
            mask = (results["kind"] == kind) & (results["quantity"] == quantity)
            if not units or not mask.any():
                continue
            table = wide(results, kind, quantity).reindex(times)
            columns = [position[bus_index(net, unit["bus"])] for unit in units]
            values = table[[unit["name"] for unit in units]].to_numpy()
            np.add.at(into, (slice(None), columns), values)
    pp.to_json(net, str(work / "net.json"))
    np.save(work / "injection.npy", injection)
    np.save(work / "p_mw.npy", p_kw / 1000.0)
    np.save(work / "q_mvar.npy", q_kvar / 1000.0)
    twin_vm = wide(results, "bus", "v_pu")[[f"bus_{b}" for b in net.bus.index]]
    np.save(work / "vm_twin.npy", twin_vm.to_numpy())


def load_prepared(work: Path) -> tuple[Any, Any, Any, Any]:
    """``(net, injection, p_mw, q_mvar)`` as :func:`save_bus_injections` saved them."""
    import numpy as np
    import pandapower as pp

    net = pp.from_json(str(work / "net.json"))
    injection = np.load(work / "injection.npy")
    return net, injection, np.load(work / "p_mw.npy"), np.load(work / "q_mvar.npy")


def timeseries_controllers(net: Any, injection: Any, p_mw: Any, q_mvar: Any) -> Any:
    """``ConstControl`` of the injections on ``net``; returns the voltage ``OutputWriter``."""
    import pandas as pd
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData, OutputWriter

    columns = [str(i) for i in range(len(injection))]
    for variable, values in (("p_mw", p_mw), ("q_mvar", q_mvar)):
        data = DFData(pd.DataFrame(values, columns=columns))
        ConstControl(
            net, "sgen", variable, element_index=injection, data_source=data, profile_name=columns
        )
    writer = OutputWriter(net, time_steps=range(len(p_mw)), output_path=None)
    writer.log_variable("res_bus", "vm_pu")
    return writer
