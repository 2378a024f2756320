"""The generic simulator bounds what other simulators send before the physics sees it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.base import InputRangeError, Model, Port
from tests.conftest import SITE, make_clock
from twin import registry
from twin.component import Component, register_component, unregister_component
from twin.errors import RunError
from twin.run import run_scenario
from twin.scenario import validate_scenario
from twin.wrapper import ModelSimulator

PLANT = {
    "name": "pv1",
    "bus": 1,
    "p_dc_kw": 10.0,
    "p_ac_kw": 9.0,
    "tilt_deg": 30.0,
    "azimuth_deg": 180.0,
    "gamma_pdc": -0.0037,
    "eta_inv_nom": 0.96,
    "losses_pct": 14.08,
    "albedo": 0.25,
    "temperature_model": "open_rack_glass_polymer",
}


def simulator(model: str, units: list[dict], tmp_path) -> ModelSimulator:
    """The simulator, recording (so ``steps_done`` counts what it stepped)."""
    sim = ModelSimulator()
    clock = make_clock(n=4)
    sim.init(model, model=model, clock=clock.to_dict())
    context = {"site": SITE, "weather": "723170TYA.CSV", "grid": "x", "seed": 0}
    record = {"path": str(tmp_path / f"{model}.parquet"), "tags": {"run_id": "t"}}
    sim.create(1, model, units=units, context=context, record=record)
    return sim


@pytest.mark.parametrize(
    "attr, value",
    [("ghi", 1e9), ("ghi", np.inf), ("dni", -5.0), ("temp_air", 500.0), ("wind_speed", -1.0)],
)
def test_an_absurd_weather_input_is_refused_by_name(attr, value, tmp_path):
    sim = simulator("pv", [PLANT], tmp_path)
    with pytest.raises(InputRangeError, match=rf"input pv1\.{attr} = .* is outside"):
        sim.step(0, {"pv1": {attr: {"csv.0": value}}}, 900)
    assert sim.steps_done == 0  # nothing recorded for the refused step


def test_plausible_and_unconnected_inputs_pass(tmp_path):
    sim = simulator("pv", [PLANT], tmp_path)
    sim.step(0, {"pv1": {"ghi": {"csv.0": 800.0}, "temp_air": {"csv.0": -20.0}}}, 900)
    sim.step(900, {"pv1": {"ghi": {"csv.0": np.nan}}}, 900)  # NaN: not given, the file's
    assert sim.steps_done == 2


def test_an_infinite_load_input_is_refused(tmp_path):
    load = {"name": "house", "bus": 1, "p_kw": 5.0, "q_kvar": 0.0, "profile": None}
    sim = simulator("load", [load], tmp_path)
    with pytest.raises(InputRangeError, match=r"input house\.p_kw = -?inf kW is outside"):
        sim.step(0, {"house": {"p_kw": {"csv.0": -np.inf}}}, 900)


class Sky(Model):
    """A weather simulator gone wrong: irradiance in the wrong unit (W/cm2 x 100)."""

    kind = "sky"
    outputs = {"ghi": Port("W/m2", "global horizontal irradiance")}

    def step(self, now, dt_s, inputs):
        return {"ghi": np.full(self.n, 5000.0)}


class SkyComponent(Component):
    name = "sky"

    def add_entities(self, scenario, plan):
        plan.add_model("sky", [{"name": "sky"}], fleet=False)

    def add_connections(self, scenario, plan):
        (sky,) = plan.simulators["sky"].entities
        plan.connect(sky, plan.children("pv")["pv_roof"], "ghi")


def test_a_run_fed_an_absurd_value_fails_and_says_which(small_raw, tmp_path, monkeypatch):
    monkeypatch.setitem(registry._registered, "sky", Sky)
    register_component(SkyComponent)
    try:
        with pytest.raises(RunError, match=r"input pv_roof\.ghi = 5000\.0 W/m2 is outside"):
            run_scenario(validate_scenario(small_raw), tmp_path / "run")
    finally:
        unregister_component("sky")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "InputRangeError" in meta["error"]
