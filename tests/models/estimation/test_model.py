import numpy as np
import pandapower as pp
import pytest

from models.estimation import (
    OutOfServiceError,
    SEModel,
    SensorError,
    Sensors,
    UnknownElementError,
)
from models.gridnet import load_net
from tests.models.estimation.conftest import GRIDS, solved_net


def full_sensors(net):
    """v, p, q at every in-service bus; p, q, i at both ends of every in-service branch."""
    rows = []
    for b in net.bus.index[net.bus.in_service]:
        rows += [("v", "bus", b, None), ("p", "bus", b, None), ("q", "bus", b, None)]
    for table, sides in (("line", ("from", "to")), ("trafo", ("hv", "lv"))):
        for e in net[table].index[net[table].in_service]:
            rows += [(t, table, e, s) for s in sides for t in ("p", "q", "i")]
    return Sensors.from_records(rows)


def expected_values(net, sensors, model):
    """res_* values for every sensor; bus p/q summed over fused buses, shunts excluded."""
    p_bus = net.res_bus.p_mw.copy()
    q_bus = net.res_bus.q_mvar.copy()
    if len(net.shunt):
        sh = net.res_shunt.groupby(net.shunt.bus)[["p_mw", "q_mvar"]].sum()
        p_bus.loc[sh.index] -= sh.p_mw
        q_bus.loc[sh.index] -= sh.q_mvar
    group = model.ppci_bus(net.bus.index.to_numpy())
    p_group = p_bus.groupby(group).sum()
    q_group = q_bus.groupby(group).sum()
    out = []
    for t, et, e, side in (sensors.row(i) for i in range(len(sensors))):
        if et == "bus":
            g = model.ppci_bus(np.array([e]))[0]
            out.append({"v": net.res_bus.vm_pu[e], "p": p_group[g], "q": q_group[g]}[t])
        else:
            column = {"p": f"p_{side}_mw", "q": f"q_{side}_mvar", "i": f"i_{side}_ka"}[t]
            out.append(net[f"res_{et}"].at[e, column])
    return np.array(out)


@pytest.mark.parametrize("spec", [*GRIDS, "case118"])
def test_measure_equals_runpp_results(spec):
    net = solved_net(spec)
    model = SEModel.from_net(net)
    sensors = full_sensors(net)
    got = model.measure(net.res_bus.vm_pu.to_numpy(), net.res_bus.va_degree.to_numpy(), sensors)
    want = expected_values(net, sensors, model)
    scale = np.where(sensors.meas_type == "v", 1.0, max(1.0, np.abs(want).max()))
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-9)


def test_admittance_equals_power_flow():
    net = solved_net("case118")
    model = SEModel.from_net(net)
    y_pf = net._ppc["internal"]["Ybus"]
    assert abs(y_pf - model.ybus).max() == 0


def test_from_net_leaves_the_net_alone():
    net = load_net("case14")
    pp.create_measurement(net, "v", "bus", 1.0, 0.01, 0)
    before = net.measurement.copy()
    SEModel.from_net(net)
    assert net.measurement.equals(before)
    assert "_pd2ppc_lookups" not in net or net._pd2ppc_lookups.get("bus") is None


def test_fused_buses_share_one_ppci_bus():
    net = load_net("1-MV-urban--0-sw")
    model = SEModel.from_net(net)
    closed = net.switch[(net.switch.et == "b") & net.switch.closed]
    a, b = closed.bus.iloc[0], closed.element.iloc[0]
    assert model.ppci_bus(np.array([a]))[0] == model.ppci_bus(np.array([b]))[0]
    assert model.n_bus > (model.bus_lookup >= 0).sum() - 5  # open-switch buses added


@pytest.mark.parametrize(
    ("row", "error", "match"),
    [
        (("v", "bus", 0, 1), SensorError, r"sensors\[0\]\.side"),
        (("p", "line", 0, 0), SensorError, r"sensors\[0\]\.side: must be a string"),
        (("p", "line", 0, "hv"), SensorError, r"expected one of \['from', 'to'\]"),
        (("i", "bus", 0, None), SensorError, r"sensors\[0\]\.meas_type"),
        (("p", "load", 0, None), SensorError, r"sensors\[0\]\.element_type"),
        (("va", "bus", 0, None), SensorError, r"meas_type"),
    ],
)
def test_malformed_sensor_rows_are_named(row, error, match):
    with pytest.raises(error, match=match):
        Sensors.from_records([("v", "bus", 1, None), row][1:])


def test_unknown_and_out_of_service_elements_are_named():
    net = load_net("case14")
    net.line.loc[3, "in_service"] = False
    model = SEModel.from_net(net)
    with pytest.raises(UnknownElementError, match=r"sensors\[1\]\.element: line 999"):
        model.compile(Sensors.from_records([("v", "bus", 0, None), ("p", "line", 999, "from")]))
    with pytest.raises(OutOfServiceError, match=r"sensors\[0\]\.element: line 3 is out of service"):
        model.compile(Sensors.from_records([("p", "line", 3, "to")]))
    with pytest.raises(UnknownElementError, match="bus 77"):
        model.compile(Sensors.from_records([("v", "bus", 77, None)]))
