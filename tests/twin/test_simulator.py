"""``python -m twin.simulator``: a twin model as a mosaik simulator in its own process."""

import socket
import subprocess
import sys
import time

import mosaik
import numpy as np
import psutil
import pytest

from models.load import Load
from twin import assembly

CLOCK = assembly.clock("2016-06-21T00:00-04:00", "15min", "2h")
CONTEXT = assembly.context(
    site={"lat": 36.1, "lon": -79.95, "tz": "America/New_York"}, grid="1-LV-rural1--0-sw"
)
UNITS = assembly.units(
    "load",
    [
        {"name": "house", "bus": 3, "p_kw": 4.0, "q_kvar": 1.0},
        {"name": "shop", "bus": 2, "p_kw": 9.0, "q_kvar": 2.0},
    ],
)
COMMAND = "%(python)s -m twin.simulator {options}%(addr)s"


def run_loads(entry: dict, **start) -> dict[str, list[float]]:
    """The load fleet started from sim_config ``entry``; its p_kw as a mosaik sink saw it."""
    world = mosaik.World(
        {"Load": entry, "Out": {"python": "mosaik.basic_simulators:OutputSimulator"}},
        time_resolution=1.0,
        skip_greetings=True,
        configure_logging=False,
    )
    try:
        sim = world.start("Load", clock=CLOCK.to_dict(), **start)
        (fleet,) = sim.Load.create(1, units=UNITS, context=CONTEXT)
        out_sim = world.start("Out")
        (out,) = out_sim.Dict.create(1)
        for child in fleet.children:
            world.connect(child, out, ("p_kw", child.eid))
        world.run(until=CLOCK.end_s, print_progress=False, shutdown=False)
        seen = out_sim.get_dict(out.eid)
    finally:
        world.shutdown()
    return {
        unit["name"]: [seen[t][unit["name"]][f"Load-0.{unit['name']}"] for t in sorted(seen)]
        for unit in UNITS
    }


def expected() -> dict[str, list[float]]:
    model = Load(UNITS, CLOCK, CONTEXT)
    rows = [
        model.step(CLOCK.time_at(k * 900), 900, model.default_inputs())["p_kw"]
        for k in range(CLOCK.n_steps)
    ]
    return {unit["name"]: [row[i] for row in rows] for i, unit in enumerate(UNITS)}


def test_cmd_form_with_the_model_on_the_command_line():
    seen = run_loads({"cmd": COMMAND.format(options="--model load ")})
    assert seen == expected()
    assert np.all(np.array(seen["house"]) < 0)  # consumption, seen from the bus


def test_cmd_form_with_the_model_named_by_the_world():
    assert run_loads({"cmd": COMMAND.format(options="")}, model="load") == expected()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_form_to_a_simulator_already_running():
    port = free_port()
    args = ["-m", "twin.simulator", "--model", "load", "--remote", f"127.0.0.1:{port}"]
    process = subprocess.Popen([sys.executable, *args])
    try:
        deadline = time.monotonic() + 120
        listening = False
        while not listening:  # wait for its socket (a probe connection would take its one accept)
            assert process.poll() is None, "the simulator exited before listening"
            assert time.monotonic() < deadline, "the simulator never listened"
            conns = psutil.Process(process.pid).net_connections(kind="tcp")
            listening = any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)
            time.sleep(0.05)
        assert run_loads({"connect": f"127.0.0.1:{port}"}) == expected()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_unknown_model_on_the_command_line_exits_with_the_nearest_name():
    done = subprocess.run(
        [sys.executable, "-m", "twin.simulator", "--model", "lod", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown model 'lod'; did you mean 'load'?" in done.stderr


def test_a_model_named_twice_differently_is_refused():
    from twin.simulator import ModelChoiceError, RemoteModelSimulator

    sim = RemoteModelSimulator()
    sim.configure({"--model": "load"})
    with pytest.raises(ModelChoiceError, match="started with --model load but the world asks"):
        sim.init("Load-0", clock=CLOCK.to_dict(), model="pv")
    with pytest.raises(ModelChoiceError, match="no model"):
        RemoteModelSimulator().init("Load-0", clock=CLOCK.to_dict())
    assert sim.init("Load-0", clock=CLOCK.to_dict())["models"]["Load"]["public"]
