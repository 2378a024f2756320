"""A run owns its state: simulators found through the world; runs in threads stay apart."""

import json
import logging
import threading
from pathlib import Path

import mosaik
from mosaik_csv import CSV

from tests.support import THREAD_WAIT_S, hook_step, in_threads, spike_scenario
from twin.errors import RunError
from twin.results import load_results
from twin.run import run_scenario
from twin.runstate import RunState, local_simulators
from twin.world import build_world
from twin.wrapper import ModelSimulator


def test_local_simulators_are_the_in_process_instances_not_the_remote_ones(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("Meter\nDate,P\n2016-06-21 00:00:00,1.0\n2016-06-21 00:15:00,2.0\n")
    config = {
        "Here": {"python": "mosaik_csv:CSV"},
        "Elsewhere": {"cmd": "%(python)s -m mosaik_csv %(addr)s"},
    }
    world = mosaik.World(config, skip_greetings=True, configure_logging=False)
    params = {"sim_start": "2016-06-21 00:00:00", "datafile": str(data)}
    here = world.start("Here", sim_id="here", **params)
    elsewhere = world.start("Elsewhere", sim_id="elsewhere", **params)
    here.Meter.create(1)
    elsewhere.Meter.create(1)
    found = local_simulators(world)
    assert list(found) == ["here"] and isinstance(found["here"], CSV)
    world.run(until=1800)
    assert local_simulators(world) == found  # the same instances after the run


def test_a_run_state_holds_the_world_s_model_simulators_and_their_timings(day_scenario, tmp_path):
    scenario = day_scenario(duration="1h")
    plan = build_world(scenario, tmp_path, "run-1")
    state = RunState.of_world(plan.world)
    assert state.lateness is None
    # one simulator per recorded part (its sensors' measurements are a part of their own)
    assert set(state.sims) == {part.stem.removesuffix(".measured") for part in plan.parts}
    assert all(isinstance(sim, ModelSimulator) for sim in state.sims.values())
    plan.world.run(until=plan.clock.end_s)
    component_s = state.component_s()
    for sid, sim in state.sims.items():
        assert sim.steps_done == 4 and not sim.recording  # saved at finalize
        for part in ("setup", "wrapper", "recording"):
            assert component_s[f"{sid}:{part}"] == sim.timings[part] >= 0.0
        assert component_s[sid] == sim.timings["model"] >= 0.0


def test_two_real_time_runs_in_threads_each_meter_their_own_steps(
    day_scenario, tmp_path, monkeypatch, caplog
):
    """Both runs are mid-run together; then B goes on after A has finished. With one
    process-wide meter (and warning filter saved and restored per run) B's late steps
    went to A's summary, one run never warned, and B failed on mosaik's warning per
    late step as soon as A restored the filters it had found."""
    caplog.set_level(logging.WARNING, logger="twin.realtime")
    meet = threading.Barrier(2, timeout=THREAD_WAIT_S)
    a_done = threading.Event()

    def hook(time):
        if time == 3600:
            meet.wait()
        if time == 4500 and threading.current_thread().name == "B":
            assert a_done.wait(THREAD_WAIT_S)

    hook_step(monkeypatch, "grid", hook)
    rt_factors = {"A": 1e-9, "B": 2e-9}  # every step is late; told apart in the warnings

    def run(name):
        try:
            return run_scenario(
                day_scenario(duration="2h", seed=len(name)),
                tmp_path / name,
                rt_factor=rt_factors[name],
                warn_late_s=0.0,
            )
        finally:
            if name == "A":
                a_done.set()

    results = in_threads({"A": lambda: run("A"), "B": lambda: run("B")})
    for name, result in results.items():
        assert not isinstance(result, RunError), result
        rt = result.metadata["realtime"]
        assert rt["steps"] == 8 and rt["rt_factor"] == rt_factors[name]
        assert rt["steps_late"] >= 7
    warned = [r.args[2] for r in caplog.records if "fell behind real time" in r.getMessage()]
    assert sorted(warned) == sorted(rt_factors.values())  # once per run


def test_a_run_that_fails_beside_another_saves_its_own_steps(day_scenario, tmp_path, monkeypatch):
    spike = spike_scenario(tmp_path)  # its power flow fails at step 10 of 24
    good = day_scenario(duration="6h", start="2016-06-21T09:00:00-04:00")
    meet = threading.Barrier(2, timeout=THREAD_WAIT_S)
    hook_step(monkeypatch, "grid", lambda time: meet.wait() if time == 5 * 900 else None)
    results = in_threads(
        {
            "spike": lambda: run_scenario(spike, tmp_path / "spike"),
            "good": lambda: run_scenario(good, tmp_path / "good"),
        }
    )
    assert isinstance(results["spike"], RunError), results["spike"]
    assert results["good"].metadata["status"] == "finished"
    meta = json.loads((tmp_path / "spike" / "run.json").read_text())
    assert meta["status"] == "failed" and "GridError" in meta["error"]
    saved = load_results(tmp_path / "spike")
    assert set(saved["run_id"]) == {meta["run_id"]} and "spike" in set(saved["asset"])
    states = saved["quantity"].isin(["soc", "soh", "t_c", "e_kwh"])
    assert saved.loc[~states, "time"].nunique() == 10
    assert saved.loc[states, "time"].nunique() == 11
    assert load_results(tmp_path / "good")["time"].nunique() == 25


#: Module-level containers that are registries (filled when a plugin or check registers,
#: read by runs), not run state. Add one only with its reason.
REGISTRIES = {
    ("twin/registry.py", "_registered"): "models registered by name (register())",
    ("twin/component.py", "_registered"): "components registered by name (register_component())",
}
#: Classes whose module-level instances hold no state a run changes: frozen values
#: (ports, a time step, a Grafana data source reference, a read-only mapping) and the
#: command line's own.
STATELESS = {"Port", "Timedelta", "DataSourceRef", "Typer", "Console", "MappingProxyType"}


def _module_state(path):
    """Module-level names bound to an empty container or a class instance; ``global``."""
    import ast

    tree = ast.parse(path.read_text())
    found = [f"global {', '.join(n.names)}" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        empty = isinstance(value, ast.Dict | ast.List | ast.Set) and not (
            getattr(value, "keys", None) or getattr(value, "elts", None)
        )
        called = ast.unparse(value.func).split(".")[-1] if isinstance(value, ast.Call) else ""
        state = empty or called in ("dict", "list", "set", "defaultdict", "deque", "local")
        state |= called[:1].isupper() and called not in STATELESS
        found += [ast.unparse(t) for t in targets if state]
    return found


def test_no_module_holds_run_state():
    root = Path(__file__).resolve().parents[2]
    found = []
    for package in ("models", "twin", "adapters"):
        for path in sorted((root / package).rglob("*.py")):
            where = path.relative_to(root).as_posix()
            found += [
                f"{where}: {name}"
                for name in _module_state(path)
                if (where, name) not in REGISTRIES
            ]
    assert found == []


class _Stepper:
    def __init__(self):
        self.times = []

    def step(self, time, inputs, max_advance):
        self.times.append(time)
        return time + 1


def test_the_first_step_watch_times_one_step_then_steps_aside():
    plain, own = _Stepper(), _Stepper()
    own_step = own.step
    own.step = own_step  # an instance's own step: given back after the watch
    state = RunState({"plain": plain, "own": own})
    state.watch_first_step()
    assert "step" in vars(plain)
    for sim in (plain, own):
        assert sim.step(0, {}, 10) == 1
    first = dict(state.first_steps)
    assert set(first) == {"plain", "own"}
    assert "step" not in vars(plain) and vars(own)["step"] is own_step  # no wrapper left
    for sim in (plain, own):
        assert sim.step(1, {}, 10) == 2
        assert sim.times == [0, 1]
    assert state.first_steps == first


def test_a_direct_run_steps_without_the_watch_after_its_first_step(
    day_scenario, tmp_path, monkeypatch
):
    from twin.executor import DirectWorld

    watched = {}
    run = DirectWorld.run

    def spy(self, until, **kwargs):
        try:
            return run(self, until, **kwargs)
        finally:
            for sid, sim in self.direct_simulators.items():
                watched[sid] = "step" in vars(sim)

    monkeypatch.setattr(DirectWorld, "run", spy)
    result = run_scenario(day_scenario(duration="1h"), tmp_path / "run", executor="direct")
    assert watched and not any(watched.values())  # every wrapper gone after its first step
    assert result.metadata["first_step_s"] > 0
