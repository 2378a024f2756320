"""The grid model against pandapower's own runpp, for both solvers."""

import numpy as np
import pandapower as pp
import pytest

from models.grid import Grid, GridError
from models.gridnet import load_net
from tests.conftest import make_clock

LV = "1-LV-rural1--0-sw"
# example_multivoltage has a gen, xwards, a shunt, a trafo3w and an impedance
GRIDS = [LV, "1-MV-rural--0-sw", "case33bw", "case30", "example_multivoltage"]
SOLVERS = ["fast", "pandapower"]


def grid_model(spec: str, solver: str) -> Grid:
    return Grid([{"name": "poc", "grid": spec, "solver": solver}], make_clock())


def day_of_injections(spec: str, hours: int = 24):
    """Hourly load and generation factors over a day (seeded), as element p/q in MW."""
    net = load_net(spec)
    rng = np.random.default_rng(11)
    daylight = np.clip(np.sin(np.linspace(-np.pi / 2, 3 * np.pi / 2, hours)), 0, None)
    for hour in range(hours):
        load_factor = rng.uniform(0.3, 1.4, len(net.load))
        gen_factor = daylight[hour] * rng.uniform(0.5, 1.0, len(net.sgen))
        yield (
            net.load["p_mw"].to_numpy() * load_factor,
            net.load["q_mvar"].to_numpy() * load_factor,
            net.sgen["p_mw"].to_numpy() * gen_factor,
        )


def reference(spec, load_p, load_q, sgen_p, lines_out=()):
    """pandapower's runpp on the unmodified net with its own elements set directly."""
    net = load_net(spec)
    net.load["p_mw"], net.load["q_mvar"], net.load["scaling"] = load_p, load_q, 1.0
    net.sgen["p_mw"], net.sgen["q_mvar"], net.sgen["scaling"] = sgen_p, 0.0, 1.0
    for table in ("storage", "gen", "ward", "xward"):  # replaced by the scenario's assets
        net[table]["in_service"] = False
    net.line.loc[list(lines_out), "in_service"] = False
    pp.runpp(net)
    return net


def bus_injections(grid: Grid, spec, load_p, load_q, sgen_p):
    net = load_net(spec)
    pos = {bus: i for i, bus in enumerate(grid.net.bus.index)}
    p_kw = np.zeros(len(pos))
    q_kvar = np.zeros(len(pos))
    np.add.at(p_kw, [pos[b] for b in net.load["bus"]], -load_p * 1000)
    np.add.at(q_kvar, [pos[b] for b in net.load["bus"]], -load_q * 1000)
    np.add.at(p_kw, [pos[b] for b in net.sgen["bus"]], sgen_p * 1000)
    return p_kw, q_kvar


def assert_equal_to_runpp(out, ref):
    assert np.nanmax(np.abs(out["v_pu"] - ref.res_bus["vm_pu"].to_numpy())) <= 1e-6
    np.testing.assert_allclose(
        out["loading_pct"], ref.res_line["loading_percent"].fillna(0).to_numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
        out["trafo_loading_pct"], ref.res_trafo["loading_percent"].to_numpy(), atol=1e-4
    )
    assert out["p_kw"][0] / 1000 == pytest.approx(ref.res_ext_grid["p_mw"].sum(), abs=1e-6)
    losses = ref.res_line["pl_mw"].sum() + ref.res_trafo["pl_mw"].sum()
    losses += ref.res_trafo3w["pl_mw"].sum() + ref.res_impedance["pl_mw"].sum()
    losses += ref.res_shunt["p_mw"].sum()
    assert out["losses_kw"][0] / 1000 == pytest.approx(losses, abs=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("spec", GRIDS)
def test_grid_equals_runpp_over_a_day_of_varying_injections(spec, solver):
    grid = grid_model(spec, solver)
    for hour, (load_p, load_q, sgen_p) in enumerate(day_of_injections(spec)):
        p_kw, q_kvar = bus_injections(grid, spec, load_p, load_q, sgen_p)
        inputs = {**grid.default_inputs(), "p_kw": p_kw, "q_kvar": q_kvar}
        out = grid.step(grid.clock.time_at(hour * 3600), 3600, inputs)
        assert_equal_to_runpp(out, reference(spec, load_p, load_q, sgen_p))
        # Site balance: import + injections - losses = 0 (shunts count as losses).
        balance_kw = out["p_kw"][0] + p_kw.sum() - out["losses_kw"][0]
        assert balance_kw == pytest.approx(0, abs=1e-3)  # runpp tolerance 1e-8 MVA per bus


@pytest.mark.parametrize("spec", [LV, "case33bw"])
def test_line_outage_equals_runpp_on_the_changed_net(spec):
    grid = grid_model(spec, "fast")
    out_line = int(grid.net.line.index[len(grid.net.line) // 2])
    (load_p, load_q, sgen_p), *_ = day_of_injections(spec, hours=1)
    p_kw, q_kvar = bus_injections(grid, spec, load_p, load_q, sgen_p)
    inputs = {**grid.default_inputs(), "p_kw": p_kw, "q_kvar": q_kvar}
    grid.step(grid.clock.time_at(0), 900, inputs)
    rebuilds = grid.solver.rebuilds
    in_service = np.full(len(grid.net.line), np.nan)  # NaN: keep the grid's own status
    in_service[list(grid.net.line.index).index(out_line)] = 0.0
    for k in range(1, 4):
        out = grid.step(grid.clock.time_at(k * 900), 900, {**inputs, "in_service": in_service})
        assert_equal_to_runpp(out, reference(spec, load_p, load_q, sgen_p, [out_line]))
    assert grid.solver.rebuilds == rebuilds + 1  # rebuilt once, not every step
    out = grid.step(grid.clock.time_at(5 * 900), 900, inputs)  # back in service
    assert_equal_to_runpp(out, reference(spec, load_p, load_q, sgen_p))


@pytest.mark.parametrize("solver", SOLVERS)
def test_non_convergence_names_the_step_time(solver):
    clock = make_clock()
    grid = grid_model(LV, solver)
    p = np.zeros(len(grid.net.bus))
    p[1] = -50_000.0  # 50 MW at a 0.4 kV bus
    inputs = {**grid.default_inputs(), "p_kw": p}
    with pytest.raises(GridError, match=r"did not converge at 2016-06-21T12:00:00\+00:00"):
        grid.step(clock.time_at(8 * 3600), 900, inputs)
    # The next feasible step solves again (no stale state after the failure).
    p[1] = -5.0
    out = grid.step(clock.time_at(9 * 3600), 900, inputs)
    assert np.all(np.isfinite(out["v_pu"]))


def test_elements_cover_buses_lines_and_trafos():
    grid = grid_model(LV, "fast")
    assert len(grid.elements["bus"]) == len(grid.net.bus)
    assert len(grid.elements["line"]) == len(grid.net.line)
    assert grid.elements["grid"] == ["poc"]


def test_unknown_solver_is_named():
    with pytest.raises(ValueError, match="unknown grid solver 'newton'"):
        grid_model(LV, "newton")


def test_grid_that_needs_its_own_generators_is_a_named_error():
    with pytest.raises(GridError, match="case118.*generators.*taken out of service"):
        grid_model("case118", "fast")
