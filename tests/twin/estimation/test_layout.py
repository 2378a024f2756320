"""The field sensors laid out as the estimator's measurements: noise-free readings of a
power flow give back its state, on grids whose buses are joined by bus-bar switches."""

import numpy as np
import pandapower as pp
import pytest

from models.estimation import SEModel, Sensors, WLSEstimator
from models.grid import prepare_net
from twin.estimation.layout import BRANCH_QUANTITIES, Layout, element_of


def _truth(grid: str, seed: int):
    """A solved net with random injections at a few buses (kW into the bus)."""
    net, injection = prepare_net(grid)
    rng = np.random.default_rng(seed)
    buses = list(net.bus.index)
    chosen = rng.choice(buses[1:], size=min(8, len(buses) - 1), replace=False)
    p_kw = {int(b): float(rng.uniform(-30, 20)) for b in chosen}
    q_kvar = {int(b): float(rng.uniform(-5, 5)) for b in chosen}
    for b in chosen:
        net.sgen.loc[injection[buses.index(b)], ["p_mw", "q_mvar"]] = (
            p_kw[int(b)] / 1e3,
            q_kvar[int(b)] / 1e3,
        )
    pp.runpp(net, calculate_voltage_angles=True, tolerance_mva=1e-12)
    return net, p_kw, q_kvar


def _field(net, p_kw, q_kvar):
    """Every bus voltage, every line's from-side flows, each injector's powers."""
    sensors, values = [], []
    for b in net.bus.index:
        sensors.append((f"plant/bus_{b}/v", f"bus_{b}", "v_pu"))
        values.append(net.res_bus.vm_pu[b])
    for i in net.line.index:
        for quantity, column, factor in (
            ("p_from_kw", "p_from_mw", 1e3),
            ("q_from_kvar", "q_from_mvar", 1e3),
            ("i_to_ka", "i_to_ka", 1.0),
        ):
            sensors.append((f"plant/line_{i}/{quantity}", f"line_{i}", quantity))
            values.append(net.res_line[column][i] * factor)
    injectors = []
    for b in p_kw:
        name = f"asset_at_{b}"
        injectors.append((name, b))
        sensors += [(f"plant/{name}/p", name, "p_kw"), (f"plant/{name}/q", name, "q_kvar")]
        values += [p_kw[b], q_kvar[b]]
    return sensors, np.array(values), injectors


@pytest.mark.parametrize("grid", ["1-LV-rural1--0-sw", "1-LV-semiurb4--0-sw"])
def test_noise_free_field_gives_back_the_power_flow(grid):
    net, p_kw, q_kvar = _truth(grid, seed=3)
    sensors, values, injectors = _field(net, p_kw, q_kvar)
    model = SEModel.from_net(net)
    buses = [int(b) for b in net.bus.index]
    joined = dict(zip(buses, (int(b) for b in model.ppci_bus(np.array(buses))), strict=True))
    layout = Layout(sensors, injectors, buses, True, joined, list(net.ext_grid.bus))
    window = layout.window(values)
    assert window.present.all()
    table = Sensors.from_records(
        (r.meas_type, r.element_type, r.element, r.side) for r in layout.rows
    )
    estimator = WLSEstimator(model, table, zero_injection=layout.zero_buses or None, tolerance=1e-6)
    estimate = estimator.estimate(window.values, np.maximum(window.std, 1e-6), window.present)
    assert estimate.success, estimate.reason
    np.testing.assert_allclose(estimate.vm_pu, net.res_bus.vm_pu.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(estimate.va_degree, net.res_bus.va_degree.to_numpy(), atol=1e-4)


def test_a_bus_injection_needs_every_element_at_the_bus():
    sensors = [("a/p", "pv_a", "p_kw"), ("b/p", "load_b", "p_kw"), ("b/p2", "load_b", "p_kw")]
    layout = Layout(sensors, [("pv_a", 3), ("load_b", 3)], [0, 1, 2, 3], True, None)
    (row,) = [r for r in layout.rows if r.meas_type == "p"]
    assert (row.element_type, row.element) == ("bus", 3)
    assert layout.zero_buses == [0, 1, 2]
    # both loads' sensors averaged, summed with the PV: consumption positive, MW
    window = layout.window(np.array([10.0, -4.0, -6.0]))
    assert window.values[0] == pytest.approx(-(10.0 - 5.0) / 1e3)
    assert window.present[0]
    assert not layout.window(np.array([10.0, np.nan, np.nan])).present[0]


def test_joined_buses_make_one_injection():
    sensors = [("a/p", "pv_a", "p_kw"), ("b/p", "load_b", "p_kw")]
    layout = Layout(
        sensors, [("pv_a", 3), ("load_b", 4)], [0, 3, 4, 5], True, {0: 0, 3: 1, 4: 1, 5: 2}, [0]
    )
    assert [(r.meas_type, r.element) for r in layout.rows] == [("p", 3)]
    assert layout.window(np.array([10.0, -4.0])).values[0] == pytest.approx(-6.0 / 1e3)
    assert layout.zero_buses == [5]  # the slack bus is fed by the grid


def test_quantities_that_are_not_the_grids_are_left_out():
    sensors = [("t", "bess", "t_c"), ("s", "bess", "soc"), ("x", "line_2", "loading_pct")]
    layout = Layout(sensors, [("bess", 1)], [0, 1], False, None)
    assert layout.rows == []
    assert element_of("line_12") == ("line", 12)
    assert element_of("pv_roof") is None
    assert set(BRANCH_QUANTITIES) == {"line", "trafo"}


def test_an_element_without_reactive_power_is_a_known_zero_in_its_bus_q_row():
    sensors = [("a/p", "pv_a", "p_kw"), ("b/p", "load_b", "p_kw"), ("b/q", "load_b", "q_kvar")]
    injectors = [("pv_a", 3, ["p_kw", "p_avail_kw"]), ("load_b", 3, ["p_kw", "q_kvar"])]
    layout = Layout(sensors, injectors, [0, 3], False, None)
    p_row, q_row = layout.rows
    assert (p_row.meas_type, q_row.meas_type) == ("p", "q")
    window = layout.window(np.array([10.0, -4.0, -1.5]))
    assert window.present.all()  # PV reports no q: its q is 0, not missing
    assert window.values[1] == pytest.approx(1.5 / 1e3)


def test_a_sigma_from_the_mapping_replaces_the_sensor_class():
    sensors = [("v", "bus_1", "v_pu", 0.02), ("v2", "bus_1", "v_pu", None)]
    window = Layout(sensors, [], [0, 1], False, None).window(np.array([1.01, 1.0]))
    assert window.std[0] == pytest.approx(0.02)
    assert window.std[1] == pytest.approx(float(np.sqrt((0.001 * 1.0) ** 2 + 1e-8 / 12)))
