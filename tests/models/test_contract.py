"""Every registered model honours the model contract (like Gymnasium's check_env)."""

import math

import numpy as np
import pytest

from models.base import Model, Port
from tests.conftest import SITE, make_clock
from twin.registry import UnknownModelError, get_model, model_names

BATTERY = {
    "name": "b1",
    "e_kwh": 10.0,
    "p_max_kw": 5.0,
    "eta_ch": 0.95,
    "eta_dis": 0.95,
    "soc_min": 0.1,
    "soc_max": 0.9,
    "soc_init": 0.5,
    "soh_init": 1.0,
    "t_init_c": 25.0,
    "t_ambient_c": 25.0,
    "r_th_k_per_kw": 10.0,
    "c_th_kj_per_k": 200.0,
    "cycle_life_efc": 6000.0,
    "calendar_life_years": 15.0,
    "soh_eol": 0.8,
}
UNITS = {
    "pv": [
        {
            "name": "p1",
            "p_dc_kw": 10.0,
            "p_ac_kw": 9.0,
            "tilt_deg": 30.0,
            "azimuth_deg": 180.0,
            "gamma_pdc": -0.004,
            "eta_inv_nom": 0.96,
            "losses_pct": 14.0,
            "albedo": 0.2,
            "temperature_model": "open_rack_glass_polymer",
        }
    ],
    "battery": [BATTERY, {**BATTERY, "name": "b2", "soc_init": 0.2}],
    "load": [
        {"name": "l1", "p_kw": 5.0, "q_kvar": 1.0, "profile": "H0-A"},
        {"name": "l2", "p_kw": 2.0, "q_kvar": 0.0, "profile": None},
    ],
    "tariff": [{"name": "t", "import_eur_kwh": 0.3, "export_eur_kwh": 0.1, "periods": []}],
    "grid": [{"name": "poc", "grid": "case33bw", "solver": "pandapower"}],
    "rule": [BATTERY],
    "ev": [
        {
            "name": "park",
            "bus": 1,
            "chargers": 3,
            "p_max_kw": 11.0,
            "efficiency": 0.9,
            "power_factor": 1.0,
            "fleet": {
                "profile": "public",
                "arrivals_per_day": 200.0,
                "capacity_kwh": {"mean": 50, "std": 10, "min": 20, "max": 80},
                "arrival_soc": {"mean": 0.3, "std": 0.1, "min": 0.1, "max": 0.6},
                "target_soc": 0.9,
                "dwell_h": None,
            },
        }
    ],
}
CONTEXT = {"site": SITE, "weather": "723170TYA.CSV", "grid": "1-LV-rural1--0-sw", "seed": 1}


#: What a model needs beyond the common context: the rule prices by the run's tariff.
CONTEXTS = {"rule": {**CONTEXT, "tariff": UNITS["tariff"][0]}}


def build(name: str) -> Model:
    return get_model(name)(UNITS[name], make_clock(n=8), CONTEXTS.get(name, CONTEXT))


def run(model: Model, steps: int = 8) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    out = []
    for k in range(steps):
        inputs = model.default_inputs()
        for name, port in model.inputs.items():
            if port.unit == "kW":
                inputs[name] = rng.uniform(-3, 3, inputs[name].shape)
            elif port.unit == "EUR/kWh":  # prices, as the tariff publishes them
                inputs[name] = rng.uniform(0.0, 0.5, inputs[name].shape)
        out.append(model.step(model.clock.time_at(k * 900), 900, inputs))
    return out


def test_every_builtin_model_is_registered():
    assert set(UNITS) <= set(model_names())


def test_a_builtin_model_resolves_without_reading_the_entry_points(monkeypatch):
    from twin import registry

    def scan():
        raise AssertionError("the entry points were read for a builtin model")

    monkeypatch.setattr(registry, "_targets", scan)  # asked for every entity of a world
    assert get_model("pv").kind == "pv"


def test_unknown_model_suggests_the_nearest_name():
    with pytest.raises(UnknownModelError, match="did you mean 'battery'"):
        get_model("batery")


@pytest.mark.parametrize("name", sorted(UNITS))
def test_model_contract(name):
    cls = get_model(name)
    assert cls.kind and cls.outputs
    for port in [*cls.inputs.values(), *cls.outputs.values()]:
        assert isinstance(port, Port) and port.unit and port.description
    model = build(name)
    outputs = run(model)
    for out in outputs:
        assert set(out) == set(cls.outputs)
        for key, values in out.items():
            group = cls.outputs[key].group or cls.kind
            assert values.shape == (len(model.elements[group]),), key
            if not cls.outputs[key].may_be_nan:
                assert np.all(np.isfinite(values)), key


@pytest.mark.parametrize("name", sorted(UNITS))
def test_model_is_deterministic(name):
    first, second = run(build(name)), run(build(name))
    for a, b in zip(first, second, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("name", sorted(UNITS))
def test_power_names_carry_units(name):
    for key, port in {**get_model(name).inputs, **get_model(name).outputs}.items():
        if port.unit == "kW":
            assert key.endswith("_kw"), key
    assert math.isfinite(make_clock().dt_h)
