import numpy as np
import pandapower as pp
import pytest

from models.grid import Grid, GridError
from models.gridnet import load_net
from tests.conftest import make_clock

GRIDS = ["1-LV-rural1--0-sw", "case33bw"]


def reference_voltages(spec: str, load_p_mw: np.ndarray, load_q_mvar: np.ndarray) -> np.ndarray:
    """pandapower's own runpp on the unmodified net with its loads set directly."""
    net = load_net(spec)
    net.sgen["in_service"] = False
    net.load["p_mw"] = load_p_mw
    net.load["q_mvar"] = load_q_mvar
    net.load["scaling"] = 1.0
    pp.runpp(net)
    return net, net.res_bus["vm_pu"].to_numpy()


@pytest.mark.parametrize("spec", GRIDS)
def test_voltages_equal_direct_runpp_over_a_day_of_injections(spec):
    grid = Grid([{"name": "poc", "grid": spec, "solver": "pandapower"}], make_clock())
    base = load_net(spec).load
    rng = np.random.default_rng(7)
    buses = grid.net.bus.index
    for step in range(6):
        factor = rng.uniform(0.2, 1.6, len(base))
        p_mw, q_mvar = base["p_mw"].to_numpy() * factor, base["q_mvar"].to_numpy() * factor
        ref_net, v_ref = reference_voltages(spec, p_mw, q_mvar)
        p_bus = np.zeros(len(buses))
        q_bus = np.zeros(len(buses))
        pos = {b: i for i, b in enumerate(buses)}
        for bus, p, q in zip(base["bus"], p_mw, q_mvar, strict=True):
            p_bus[pos[bus]] -= p * 1000.0  # a consuming load injects < 0
            q_bus[pos[bus]] -= q * 1000.0
        out = grid.step(grid.clock.time_at(step * 900), 900, {"p_kw": p_bus, "q_kvar": q_bus})
        assert np.max(np.abs(out["v_pu"] - v_ref)) <= 1e-6
        assert out["p_kw"][0] == pytest.approx(ref_net.res_ext_grid["p_mw"].sum() * 1000, abs=1e-3)
        # Site balance: import + injections - losses = 0.
        assert out["p_kw"][0] + p_bus.sum() - out["losses_kw"][0] == pytest.approx(0.0, abs=1e-3)


def test_non_convergence_names_the_step_time():
    clock = make_clock()
    grid = Grid([{"name": "poc", "grid": "1-LV-rural1--0-sw", "solver": "pandapower"}], clock)
    p = np.zeros(len(grid.net.bus))
    p[1] = -50_000.0  # 50 MW at a 0.4 kV bus
    with pytest.raises(GridError, match=r"did not converge at 2016-06-21T12:00:00\+00:00"):
        grid.step(clock.time_at(8 * 3600), 900, {"p_kw": p, "q_kvar": np.zeros_like(p)})


def test_elements_cover_buses_lines_and_trafos():
    grid = Grid(
        [{"name": "poc", "grid": "1-LV-rural1--0-sw", "solver": "pandapower"}], make_clock()
    )
    assert len(grid.elements["bus"]) == len(grid.net.bus)
    assert len(grid.elements["line"]) == len(grid.net.line)
    assert grid.elements["grid"] == ["poc"]
