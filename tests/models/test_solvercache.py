"""The fast solver's model comes from the disk cache: equal to a fresh build, keyed right."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pandapower.pypower.idx_brch as idx_brch
import pandapower.pypower.idx_bus as idx_bus
import pytest
import scipy.sparse

from models import grid as grid_module
from models import gridnet, powerflow
from models.diskcache import CACHE_ENV, code_digest
from models.grid import Grid, prepare_net, solver_model, solver_model_key
from models.powerflow import FastSolver, build_model
from tests.conftest import ROOT, make_clock

LV = "1-LV-rural1--0-sw"
# a gen, xwards, a shunt, a trafo3w and an impedance; and a meshed MV grid
GRIDS = [LV, "example_multivoltage", "1-MV-rural--0-sw"]


def forget_in_process() -> None:
    """Drop the per-process caches, so the next load reads (or fills) the disk cache."""
    grid_module._solver_model.cache_clear()
    gridnet._load.cache_clear()
    gridnet._tables.cache_clear()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    forget_in_process()
    yield tmp_path / "cache"
    forget_in_process()


def entries(cache) -> list:
    return sorted((cache / "solver").iterdir()) if (cache / "solver").exists() else []


def assert_same_model(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if scipy.sparse.issparse(x):
            assert (x != y).nnz == 0, field.name
            assert x.format == y.format, field.name
        else:
            np.testing.assert_array_equal(x, y, err_msg=field.name)


def test_the_ppc_columns_are_pandapower_s_own():
    assert (powerflow.F_BUS, powerflow.T_BUS) == (idx_brch.F_BUS, idx_brch.T_BUS)
    assert (powerflow.GS, powerflow.BASE_KV) == (idx_bus.GS, idx_bus.BASE_KV)
    assert powerflow.SL_FAC == idx_bus.SL_FAC


@pytest.mark.parametrize("spec", GRIDS)
def test_a_cached_model_equals_a_fresh_build_and_solves_the_same(cache, spec):
    fresh = build_model(*prepare_net(spec))
    cold = solver_model(spec)
    assert len(entries(cache)) == 1
    grid_module._solver_model.cache_clear()
    warm = solver_model(spec)
    assert warm is not cold  # read from disk
    assert_same_model(cold, fresh)
    assert_same_model(warm, fresh)
    net, injection = prepare_net(spec)
    reference = FastSolver(net, injection)
    cached = FastSolver.from_model(warm, lambda: prepare_net(spec))
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = rng.uniform(-0.05, 0.02, len(injection))
        q = rng.uniform(-0.01, 0.01, len(injection))
        a, b = reference.solve(p, q), cached.solve(p, q)
        for name in ("vm_pu", "va_degree", "line_loading_pct", "trafo_loading_pct"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-12)
        assert abs(a.p_ext_mw - b.p_ext_mw) <= 1e-12 and abs(a.losses_mw - b.losses_mw) <= 1e-12


def test_the_key_moves_with_the_grid_the_versions_and_the_code(cache, monkeypatch, tmp_path):
    base = solver_model_key(LV)
    assert solver_model_key("1-MV-rural--0-sw") != base
    assert code_digest("grid", "gridnet", "powerflow") in base
    for package in ("pandapower", "lightsim2grid", "scipy"):
        assert any(k.startswith(f"{package}==") for k in base), package
        real = grid_module.package_versions
        monkeypatch.setattr(
            grid_module,
            "package_versions",
            lambda *names, p=package, real=real: tuple(
                f"{n}==99" if n == p else real(n)[0] for n in names
            ),
        )
        assert solver_model_key(LV) != base, package
        monkeypatch.setattr(grid_module, "package_versions", real)
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text("x = 1\n")
    before = code_digest("a", "b", root=tmp_path)
    (tmp_path / "b.py").write_text("x = 2\n")
    assert code_digest("a", "b", root=tmp_path) != before
    solver_model(LV)
    monkeypatch.setattr(grid_module, "code_digest", lambda *modules: "code=edited")
    grid_module._solver_model.cache_clear()
    solver_model(LV)
    assert len(entries(cache)) == 2


def test_a_warm_grid_imports_no_pandapower_until_the_topology_changes(cache):
    Grid([{"name": "poc", "grid": LV}], make_clock(n=2))  # warms the cache
    probe = (
        "import sys\nimport numpy as np\n"
        "from models.grid import Grid\nfrom tests.conftest import make_clock\n"
        f"grid = Grid([{{'name': 'poc', 'grid': {LV!r}}}], make_clock(n=2))\n"
        "inputs = grid.default_inputs()\n"
        "before = grid.step(make_clock(n=2).time_at(0), 900, inputs)\n"
        "print('pandapower' in sys.modules)\n"
        "inputs['in_service'][3] = 0.0\n"
        "after = grid.step(make_clock(n=2).time_at(0), 900, inputs)\n"
        "print('pandapower' in sys.modules, grid.solver.rebuilds)\n"
    )
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["False", "True 2"]


def test_an_unconverging_grid_is_not_cached(cache, monkeypatch):
    def fails(net, injection):
        raise powerflow.PowerFlowError("the unloaded grid does not converge: test")

    monkeypatch.setattr(grid_module, "build_model", fails)
    with pytest.raises(grid_module.GridError, match="does not converge"):
        Grid([{"name": "poc", "grid": LV}], make_clock(n=2))
    assert entries(cache) == []


def test_the_injection_elements_are_created_in_one_call(monkeypatch):
    import pandapower as pp

    def one_by_one(*args, **kwargs):
        raise AssertionError("create_sgen called per bus")

    monkeypatch.setattr(pp, "create_sgen", one_by_one)
    net, injection = prepare_net("1-MV-rural--0-sw")
    assert list(net.sgen.loc[injection, "bus"]) == list(net.bus.index)
    assert (net.sgen.loc[injection, ["p_mw", "q_mvar"]].to_numpy() == 0).all()
    assert net.sgen.loc[injection, "in_service"].all()
    assert list(net.sgen.loc[injection, "name"]) == [f"twin injection {b}" for b in net.bus.index]
