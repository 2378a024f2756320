import numpy as np
import pandapower as pp
import pytest

from adapters.field.errors import FieldError
from adapters.field.noise import Bias, measure, parse_bias
from models.gridnet import load_net
from models.sensors import SENSOR_CLASSES
from twin.results import load_results, wide


def _column(prepared, element, channel):
    s = prepared.sensors
    return int(s.index[(s["element"] == element) & (s["channel"] == channel)][0])


def test_truth_equals_the_scenario_results(prepared):
    results = load_results(prepared.truth.run_dir)
    truth = prepared.samples.truth_twin
    v = wide(results, "bus", "v_pu")
    p_bess, soc = wide(results, "battery", "p_kw"), wide(results, "battery", "soc")
    p_load = wide(results, "load", "p_kw")
    for k, time in enumerate(prepared.truth.times):
        assert truth[k, _column(prepared, "bus_7", "v")] == v.at[time, "bus_7"]
        assert truth[k, _column(prepared, "bess", "p")] == p_bess.at[time, "bess"]
        assert truth[k, _column(prepared, "bess", "soc")] == soc.at[time, "bess"]
        assert truth[k, _column(prepared, "load_3", "p_load")] == p_load.at[time, "load_3"]
    # the field value: volts phase-to-neutral on the LV bus, loads consumption positive
    s = prepared.sensors
    j = _column(prepared, "load_3", "p_load")
    assert (truth[:, j] * s.at[j, "factor"] == -1000 * truth[:, j]).all()


def test_line_flows_equal_runpp_on_the_true_injections(prepared, tiny):
    results = load_results(prepared.truth.run_dir)
    k = 4
    time = prepared.truth.times[k]
    net = load_net(tiny.grid.source)
    net.load["in_service"] = False
    net.sgen["in_service"] = False
    for kind in ("pv", "battery", "load"):
        p = wide(results, kind, "p_kw")
        q = wide(results, kind, "q_kvar") if kind == "load" else None
        for unit in tiny.units(kind):
            q_kvar = 0.0 if q is None else q.at[time, unit["name"]]
            pp.create_load(net, unit["bus"], p_mw=-p.at[time, unit["name"]] / 1e3,
                           q_mvar=-q_kvar / 1e3)  # fmt: skip
    pp.runpp(net, tolerance_mva=1e-12, numba=False)
    truth = prepared.samples.truth_twin[k]
    checked = 0
    for i in net.line.index[net.line["in_service"]]:
        for side in ("from", "to"):
            ref = net.res_line.loc[i]
            got = {q: truth[_column(prepared, f"line_{i}", f"{q}_{side}")] for q in "pqi"}
            assert got["p"] / 1e3 == pytest.approx(ref[f"p_{side}_mw"], abs=1e-9)
            assert got["q"] / 1e3 == pytest.approx(ref[f"q_{side}_mvar"], abs=1e-9)
            assert got["i"] == pytest.approx(ref[f"i_{side}_ka"], abs=1e-9)
            checked += 1
    for i in net.trafo.index:
        for side in ("hv", "lv"):
            ref = net.res_trafo.loc[i]
            assert truth[_column(prepared, f"trafo_{i}", f"p_{side}")] / 1e3 == pytest.approx(
                ref[f"p_{side}_mw"], abs=1e-9
            )
    assert checked >= 2 * 12


def test_noise_is_the_class_noise_seeded_per_sensor(prepared):
    s, truth = prepared.sensors, prepared.samples.truth_twin
    offsets = np.arange(truth.shape[0], dtype=float)
    value, sigma, bias = measure(truth, s, 7, offsets)
    again, _, _ = measure(truth, s, 7, offsets)
    assert (value == again).all() and not bias.any()
    # one sensor less leaves the others' readings unchanged
    fewer, _, _ = measure(truth[:, 1:], s.iloc[1:].reset_index(drop=True), 7, offsets)
    assert (fewer == value[:, 1:]).all()
    v = _column(prepared, "bus_7", "v")
    cls = SENSOR_CLASSES["voltage"]
    assert sigma[0, v] == pytest.approx(
        np.hypot(cls.noise_pct / 100 * truth[0, v], cls.resolution / np.sqrt(12))
    )
    steps = value[:, v] / cls.resolution
    assert np.allclose(steps, np.round(steps), atol=1e-6)
    p = _column(prepared, "bess", "p")
    power = SENSOR_CLASSES["power"]
    expected = np.sqrt(
        (power.noise_pct / 100 * truth[:, p]) ** 2 + power.noise_abs**2 + power.resolution**2 / 12
    )
    assert sigma[:, p] == pytest.approx(expected)
    # the readings' spread is the class's noise (plus rounding)
    noisy = value[:, p] - truth[:, p]
    assert np.abs(noisy).max() < 6 * sigma[:, p].max()


def test_a_bias_is_added_from_its_time_and_recorded(prepared):
    s, truth = prepared.sensors, prepared.samples.truth_twin
    offsets = np.arange(truth.shape[0], dtype=float)
    bias = parse_bias("field/bus_7/v=10@4")
    assert bias == Bias("field/bus_7/v", 10.0, 4.0)
    value, sigma, added = measure(truth, s, 7, offsets, (bias,))
    clean, _, _ = measure(truth, s, 7, offsets)
    v = _column(prepared, "bus_7", "v")
    assert (added[:4, v] == 0).all() and added[4:, v] == pytest.approx(10 * sigma[4:, v])
    assert np.count_nonzero(added) == truth.shape[0] - 4
    assert value[4:, v] - clean[4:, v] == pytest.approx(added[4:, v], abs=2e-4)


@pytest.mark.parametrize("text", ["field/bus_7/v", "=3", "field/bus_7/v=x", "k=1@t", "k=nan"])
def test_bad_bias_options_are_named(text):
    with pytest.raises(FieldError, match="--bias"):
        parse_bias(text)


def test_a_bias_on_an_unknown_sensor_suggests_keys(prepared):
    truth = prepared.samples.truth_twin
    with pytest.raises(FieldError, match="did you mean field/bus_7/v"):
        measure(truth, prepared.sensors, 1, np.arange(len(truth)), (Bias("field/bus_7/vv", 3),))


def test_a_line_out_of_service_carries_nothing(tmp_path):
    from adapters.field.emulator import FieldOptions, prepare
    from tests.adapters.field.conftest import tiny_raw
    from twin.scenario import validate_scenario

    raw = tiny_raw(8)
    raw["faults"] = [{"kind": "line_outage", "target": "line_3", "start": "3s", "duration": "3s"}]
    p = prepare(validate_scenario(raw), FieldOptions(), tmp_path)
    for channel in ("p_from", "q_from", "i_from", "p_to", "q_to", "i_to"):
        flow = p.samples.truth_twin[:, _column(p, "line_3", channel)]
        assert (flow[3:6] == 0).all() and (flow[[0, 1, 2, 6, 7]] != 0).all(), channel


def test_no_magnitude_reading_is_negative(prepared):
    s = prepared.sensors
    magnitude = ((s["quantity"] == "v_pu") | s["quantity"].str.startswith("i_")).to_numpy()
    assert magnitude.sum() >= 10
    truth = prepared.samples.truth_twin.copy()
    truth[:, magnitude] = 0.0  # open line ends, a dead bus: noise alone around 0
    offsets = np.arange(truth.shape[0], dtype=float)
    value, sigma, _ = measure(truth, s, 7, offsets)
    assert (value[:, magnitude] >= 0).all()
    current = s["quantity"].str.startswith("i_").to_numpy()
    assert current.sum() >= 10
    # currents have a noise floor: ~16 % fell below 0 (rounded), now read 0
    assert (value[:, current] == 0).mean() > 0.5
    assert (sigma[:, magnitude] > 0).all()
    # powers keep their sign: consumption and back-feed are both real
    assert (value[:, ~magnitude] < 0).any()
    # and the emulator's own readings
    assert (prepared.samples.value_twin[:, magnitude] >= 0).all()
