import warnings

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from models.gridnet import load_net

GRIDS = ("1-LV-rural1--0-sw", "1-LV-semiurb4--0-sw", "case14", "1-MV-urban--0-sw")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", pd.errors.SettingWithCopyWarning)
        yield


def solved_net(spec: str, seed: int = 0, scale: tuple[float, float] = (0.5, 1.5)):
    """A fresh net with randomly scaled loads and generators, solved by runpp."""
    net = load_net(spec)
    rng = np.random.default_rng(seed)
    for table in ("load", "sgen"):
        frame = net[table]
        if len(frame):
            factor = rng.uniform(*scale, len(frame))
            frame["p_mw"] = frame["p_mw"] * factor
            frame["q_mvar"] = frame["q_mvar"] * factor
    pp.runpp(net, numba=False, calculate_voltage_angles=True, tolerance_mva=1e-11, max_iteration=30)
    return net


def reference_sensors(net, model, line_current=False):
    """One sensor per (type, location): v/p/q at every bus (p/q once per ppci bus),
    line p/q at both ends, trafo p/q/i at both ends."""
    from models.estimation import Sensors

    rows = []
    primary = set(net.bus.index[model.primary])
    for b in net.bus.index[net.bus.in_service]:
        rows.append(("v", "bus", b, None))
        if b in primary:
            rows += [("p", "bus", b, None), ("q", "bus", b, None)]
    for e in net.line.index[net.line.in_service]:
        kinds = ("p", "q", "i") if line_current else ("p", "q")
        rows += [(t, "line", e, s) for s in ("from", "to") for t in kinds]
    for e in net.trafo.index[net.trafo.in_service]:
        rows += [(t, "trafo", e, s) for s in ("hv", "lv") for t in ("p", "q", "i")]
    return Sensors.from_records(rows)


def sensor_std(sensors, sn_mva=1.0):
    """Standard deviations per sensor: 0.003 pu, 0.2 % of sn for p/q, 1 A."""
    return np.select(
        [sensors.meas_type == "v", sensors.meas_type == "i"], [0.003, 1e-3], 0.002 * sn_mva
    )


def pandapower_reference(
    net, sensors, values, std, tolerance=1e-6, init="flat", zero_injection="aux_bus"
):
    """pandapower.estimation.estimate on a copy of ``net`` with these measurements."""
    import copy

    from pandapower.estimation import estimate

    ref = copy.deepcopy(net)
    ref.measurement = ref.measurement.iloc[0:0]
    for i in range(len(sensors)):
        t, et, e, side = sensors.row(i)
        pp.create_measurement(ref, t, et, values[i], std[i], e, side=side, index=i)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandapower's own casts and pandas warnings
        result = estimate(ref, init=init, tolerance=tolerance, zero_injection=zero_injection)
    assert result["success"]
    return ref
