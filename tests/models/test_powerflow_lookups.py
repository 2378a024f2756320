"""The fast solver's results from lookups derived once equal pandapower's formulas to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from models.grid import Grid
from models.powerflow import SQRT3, _matvec, _Rows
from tests.conftest import make_clock

GRIDS = ["1-LV-rural1--0-sw", "case33bw", "example_multivoltage"]


def per_element(values, rows):
    out = np.zeros(len(rows))
    live = rows >= 0
    out[live] = values[rows[live]]
    return out


def formulas(m, v, s_pu):
    """The results as written before the lookups (scipy's ``@``, element by element)."""
    base = m.base_mva
    s_f = v[m.f] * np.conj(m.yf @ v) * base
    s_t = v[m.t] * np.conj(m.yt @ v) * base
    vm = np.abs(v)
    i_f = np.abs(s_f) / (vm[m.f] * m.base_kv[m.f]) / SQRT3
    i_t = np.abs(s_t) / (vm[m.t] * m.base_kv[m.t]) / SQRT3
    line_i = np.maximum(per_element(i_f, m.line_rows), per_element(i_t, m.line_rows))
    trafo_i = np.column_stack([per_element(i_f, m.trafo_rows), per_element(i_t, m.trafo_rows)])
    with np.errstate(invalid="ignore", divide="ignore"):
        line_loading = line_i / m.line_i_max * 100.0
        trafo_loading = (trafo_i * m.trafo_vn).max(axis=1) * SQRT3 / m.trafo_scale * 100
    s_bus = v * np.conj(m.ybus @ v) * base
    ok = m.bus_int >= 0
    bus_int = m.bus_int[ok]
    s_inj_ref = np.bincount(
        bus_int, weights=(s_pu.real * base)[ok], minlength=len(v)
    ) + 1j * np.bincount(bus_int, weights=(s_pu.imag * base)[ok], minlength=len(v))
    s_ext = (s_bus[m.ref] - s_inj_ref[m.ref]).sum()
    vm_bus = np.full(len(ok), np.nan)
    va_bus = np.full(len(ok), np.nan)
    vm_bus[ok] = vm[bus_int]
    va_bus[ok] = np.degrees(np.angle(v[bus_int]))
    losses = (s_f.real + s_t.real).sum() + (m.shunt_mw * vm**2).sum()
    return vm_bus, va_bus, line_loading, trafo_loading, s_ext.real, s_ext.imag, losses


@pytest.mark.parametrize("outage", [False, True])
@pytest.mark.parametrize("spec", GRIDS)
def test_results_equal_the_formulas_to_the_bit(spec, outage):
    grid = Grid([{"name": "poc", "grid": spec, "solver": "fast"}], make_clock())
    if outage:  # lines out of the model (and buses cut off on a radial feeder)
        lines = np.ones(len(grid.net.line), dtype=bool)
        lines[len(lines) // 2] = False
        grid.set_lines_in_service(lines)
    solver = grid.solver
    rng = np.random.default_rng(5)
    n_bus = len(grid.net.bus)
    for _ in range(5):
        p_mw, q_mvar = rng.normal(0.0, 0.02, n_bus), rng.normal(0.0, 0.01, n_bus)
        res = solver.solve(p_mw, q_mvar)
        expected = formulas(solver.model, solver._v, (p_mw + 1j * q_mvar) / solver.model.base_mva)
        got = (
            res.vm_pu,
            res.va_degree,
            res.line_loading_pct,
            res.trafo_loading_pct,
            res.p_ext_mw,
            res.q_ext_mvar,
            res.losses_mw,
        )
        for left, right in zip(got, expected, strict=True):
            np.testing.assert_array_equal(left, right)  # NaN where NaN, else the same bits


def test_the_direct_product_is_scipy_s_to_the_bit():
    grid = Grid([{"name": "poc", "grid": "case33bw", "solver": "fast"}], make_clock())
    m = grid.solver.model
    v = m.v_start * np.exp(1j * np.random.default_rng(1).normal(0.0, 0.01, len(m.v_start)))
    for matrix in (m.yf, m.yt, m.ybus, m.ybus.tocsr()):
        np.testing.assert_array_equal(_matvec(matrix)(v), matrix @ v)
    # another operand type: scipy's own product
    real = np.abs(v)
    np.testing.assert_array_equal(_matvec(m.ybus)(real), m.ybus @ real)


def test_rows_out_of_service_carry_nothing():
    rows = _Rows.of(np.array([2, -1, 0]))
    assert rows.take(np.array([10.0, 11.0, 12.0])).tolist() == [12.0, 0.0, 10.0]
    assert _Rows.of(np.array([1, 0])).take(np.array([10.0, 11.0])).tolist() == [11.0, 10.0]
