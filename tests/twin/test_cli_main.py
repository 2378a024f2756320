"""``twin run`` through :func:`twin.cli.main`: the run command alone, and no teardown."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT
from twin.cli import app, run_app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--help"],
        ["run"],
        ["run", "--bogus"],
        ["run", "x.yaml", "--out"],
        ["run", "x.yaml", "--rt-factor", "0"],
        ["run", "x.yaml", "--workers", "many"],
        ["run", "no-such-scenario.yaml", "--no-progress"],
    ],
)
def test_the_run_app_answers_as_the_whole_app(args):
    whole, single = runner.invoke(app, args), runner.invoke(run_app(), args)
    assert (single.exit_code, single.output) == (whole.exit_code, whole.output)


PROBE = """
import atexit, sys
from pathlib import Path
import twin.cli

marks = Path(sys.argv[1])


def at_exit():
    (marks / "atexit").write_text("ran")


class Teardown:
    def __del__(self):
        (marks / "teardown").write_text("ran")


atexit.register(at_exit)
twin.cli.probe = Teardown()  # freed when the interpreter tears the modules down
sys.argv = ["twin", *sys.argv[2:]]
twin.cli.main()
"""


def probe(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, {p.name for p in tmp_path.iterdir()}


def test_twin_run_exits_with_its_code_and_messages_and_without_the_teardown(tmp_path):
    done, marks = probe(tmp_path, "run", str(tmp_path / "missing.yaml"), "--no-progress")
    assert done.returncode == 2
    assert "cannot read the scenario file" in done.stderr  # flushed before the exit
    assert marks == {"atexit"}  # the atexit handlers ran, the modules were not freed


def test_other_commands_exit_as_python_does(tmp_path):
    done, marks = probe(tmp_path, "validate", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert "cannot read the scenario file" in done.stderr
    assert marks == {"atexit", "teardown"}  # the probe sees a teardown where there is one


GC_PROBE = """
import gc, json, sys
import twin.run, twin.scenario
import twin.cli

seen = {}


def load_scenario(path, overrides):
    seen["loading_collects"] = gc.isenabled()
    return object()


def run_scenario(*args, **kwargs):
    seen["running_collects"] = gc.isenabled()
    seen["frozen"] = gc.get_freeze_count()
    print(json.dumps(seen))
    raise SystemExit(0)


twin.scenario.load_scenario = load_scenario
twin.run.run_scenario = run_scenario
sys.argv = ["twin", "run", sys.argv[1], "--no-progress"]
twin.cli.main()
"""


def test_twin_run_starts_up_without_collecting_then_collects_for_the_run(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: probe\n")  # read, not validated: load_scenario is the probe's
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", GC_PROBE, str(scenario)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["loading_collects"] is False
    assert seen["running_collects"] is True
    assert seen["frozen"] > 10_000  # the start-up's modules and classes, set aside


def test_start_up_done_leaves_a_running_collector_alone():
    import gc

    from twin.cli import _start_up_done

    frozen = gc.get_freeze_count()
    _start_up_done()  # as when the app is called from Python (tests, a notebook)
    assert gc.isenabled() and gc.get_freeze_count() == frozen
