import pytest

from models.grid import Grid
from models.sensors import sensor_attrs
from twin.scenario import validate_scenario
from twin.world import build_world
from twin.wrapper import build_meta, fleet_attrs


@pytest.fixture
def plan(day_raw, tmp_path):
    plan = build_world(validate_scenario(day_raw), tmp_path, "test")
    yield plan
    plan.world.shutdown()


class _Expanded:
    """The world's entity graph with every fleet connection expanded into its elements."""

    def __init__(self, built):
        world = built.world.entity_graph
        assert all(world.has_edge(c.src.full_id, c.dst.full_id) for c in built.plan.connections)
        self.edges = {(s.full_id, d.full_id) for s, d, _ in built.plan.element_edges()}
        self.nodes = world.nodes

    def has_edge(self, src, dst):
        return (src, dst) in self.edges


def test_world_wiring_as_a_graph(plan, day_raw):
    graph = _Expanded(plan)
    # Every asset injects into its own bus.
    assert graph.has_edge("pv.pv_roof", "grid.bus_7")
    assert graph.has_edge("pv.pv_barn", "grid.bus_12")
    assert graph.has_edge("battery.bess", "grid.bus_7")
    assert all(
        graph.has_edge(f"load.load_{i}", f"grid.{b}") for i, b in [(0, "bus_9"), (12, "bus_4")]
    )
    # The controller measures PV and loads and talks to the battery both ways.
    assert graph.has_edge("pv.pv_roof", "rule.site")
    assert graph.has_edge("load.load_3", "rule.site")
    assert graph.has_edge("rule.bess", "battery.bess")
    # Every simulator records its own outputs to a Parquet part (and its sensors' to
    # another); nothing else is wired.
    recorded = {"pv", "load", "battery", "tariff", "grid", "rule"}
    measured = {f"{sid}.measured" for sid in ("pv", "load", "battery", "grid")}
    assert {p.stem for p in plan.parts} == recorded | measured
    assert not any(node.startswith("recorder") for node in graph.nodes)


def test_world_without_controller_has_none(day_raw, tmp_path):
    day_raw["controller"] = "none"
    plan = build_world(validate_scenario(day_raw), tmp_path, "test")
    try:
        assert "controller" not in plan.plan.fleets
        assert not any(n.startswith("rule.") for n in plan.world.entity_graph.nodes)
    finally:
        plan.world.shutdown()


def test_meta_is_derived_from_ports():
    meta = build_meta(Grid)
    assert meta["models"]["Grid"]["public"] is True
    # a measured output adds its sensor's outputs and fault modifier inputs
    assert set(meta["models"]["bus"]["attrs"]) == {
        "p_kw",
        "q_kvar",
        "v_pu",
        "va_deg",
        *sensor_attrs("v_pu"),
    }
    assert meta["models"]["line"]["attrs"] == [
        "in_service",
        "loading_pct",
        *sensor_attrs("loading_pct"),
    ]
    # the parent serves the measurements and exchanges whole arrays (fleet connections)
    assert meta["models"]["Grid"]["attrs"] == ["measured", *fleet_attrs(Grid)]
    assert set(fleet_attrs(Grid)) == {*Grid.inputs, *Grid.outputs}
    assert set(meta["models"]["grid"]["attrs"]) == {
        *sensor_attrs("p_kw"),
        *sensor_attrs("q_kvar"),
        *sensor_attrs("f_hz"),
        "p_kw",
        "q_kvar",
        "losses_kw",
        "unserved_kw",
        "curtailed_kw",
        "f_hz",
        "v_ext_scale",
        "islanded",
        "f_dev_hz",
    }
