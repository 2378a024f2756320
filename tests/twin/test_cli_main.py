"""``twin run`` through :func:`twin.cli.main`: the run command alone, and no teardown."""

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
