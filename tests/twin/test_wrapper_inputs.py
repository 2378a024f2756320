"""What the generic simulator hands a model each step: its own inputs, never shared state."""

from __future__ import annotations

import numpy as np
import pytest

from models.base import Model, Port
from tests.conftest import make_clock
from twin import registry
from twin.plan import PARENT_EID
from twin.wrapper import ModelSimulator


class Keeper(Model):
    """Keeps a copy of what it was given, and writes into the inputs it may write into."""

    kind = "keeper"
    inputs = {
        "x": Port("1", "an input another simulator sends", default=2.0),
        "y": Port("1", "an input nothing sends", default=5.0),
    }
    outputs = {"z": Port("1", "x + y")}

    def __init__(self, units, clock, context=None):
        super().__init__(units, clock, context)
        self.seen: list[dict[str, np.ndarray]] = []
        self.given: dict[str, np.ndarray] = {}

    def step(self, now, dt_s, inputs):
        self.seen.append({name: values.copy() for name, values in inputs.items()})
        self.given = inputs
        z = inputs["x"] + inputs["y"]
        for values in inputs.values():
            if values.flags.writeable:
                values[:] = -1.0  # a careless model: its own copy, gone by the next step
        return {"z": z}


@pytest.fixture
def keeper(monkeypatch):
    monkeypatch.setitem(registry._registered, "keeper", Keeper)

    def make(sid: str = "keeper", **params) -> ModelSimulator:
        sim = ModelSimulator()
        sim.init(sid, model="keeper", clock=make_clock(n=8).to_dict())
        sim.create(1, "keeper", units=[{"name": "a"}, {"name": "b"}], **params)
        return sim

    return make


def test_a_model_writing_into_a_sent_input_changes_nothing_of_the_next_step(keeper):
    sim = keeper()
    for t in (0, 900, 1800):
        sim.step(t, {"a": {"x": {"src.0": 1.0, "src.1": 0.5}}}, 7200)
        assert sim.get_data({"a": ["z"], "b": ["z"]}) == {"a": {"z": 6.5}, "b": {"z": 7.0}}
    assert [seen["x"].tolist() for seen in sim.model.seen] == [[1.5, 2.0]] * 3
    sim.step(2700, {}, 7200)  # sent nothing this step: the default again
    assert sim.model.seen[-1]["x"].tolist() == [2.0, 2.0]


def test_an_input_nothing_sends_is_read_only(keeper):
    sim = keeper()
    sim.step(0, {"a": {"x": {"src.0": 1.0}}}, 7200)
    assert sim.model.given["x"].flags.writeable
    unsent = sim.model.given["y"]
    with pytest.raises(ValueError, match="read-only"):
        unsent[0] = 0.0
    sim.step(900, {}, 7200)
    assert sim.model.seen[-1]["y"].tolist() == [5.0, 5.0]


def test_fleet_inputs_are_written_into_a_copy(keeper):
    sim = keeper(fleet_inputs={"src.fleet": {"group": "keeper", "index": [1, -1]}})
    fleet = {PARENT_EID: {"x": {"src.fleet": np.array([3.0, 4.0])}}}
    for t in (0, 900):
        sim.step(t, {**fleet, "b": {"x": {"src.0": 1.0}}}, 7200)
        assert sim.model.seen[-1]["x"].tolist() == [2.0, 4.0]  # b: fleet 3.0 + its own 1.0
    sim.step(1800, {}, 7200)
    assert sim.model.seen[-1]["x"].tolist() == [2.0, 2.0]


def test_simulators_and_callers_never_share_default_inputs(keeper):
    first, second = keeper("one"), keeper("two")
    first.step(0, {}, 7200)
    second.step(0, {}, 7200)
    assert not np.shares_memory(first.model.given["y"], second.model.given["y"])
    for sim in (first, second):
        mine = sim.model.default_inputs()  # what a caller (an RL environment) builds on
        assert all(values.flags.writeable for values in mine.values())
        mine["y"][:] = 0.0
        sim.step(900, {}, 7200)
        assert sim.model.seen[-1]["y"].tolist() == [5.0, 5.0]
        assert sim.model.default_inputs()["y"].tolist() == [5.0, 5.0]


def test_the_parts_a_step_adds_to_start_at_zero(keeper):
    sim = keeper()
    assert set(sim.timings) == {"setup", "model", "wrapper", "recording"}
    sim.step(0, {}, 7200)
    sim.get_data({"a": ["z"]})
    assert all(seconds >= 0.0 for seconds in sim.timings.values())
