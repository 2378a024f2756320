"""The command line starts without the heavy stacks: imports are checked, not timed."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.support import imported

#: Packages that cost a second or more to import and that `twin --help` and `twin
#: validate` never use (RL, plots, clusters, brokers, databases, solvers, co-simulation).
HEAVY = (
    "torch",
    "stable_baselines3",
    "matplotlib",
    "dask",
    "paho",
    "influxdb_client",
    "lightsim2grid",
    "mosaik",
    "mosaik_api_v3",
)


def test_importing_the_command_line_imports_no_heavy_package():
    assert imported("import twin.cli", *HEAVY) == []


@pytest.mark.parametrize("args", [["--help"], ["validate", "--help"], ["run", "--help"]])
def test_help_imports_no_heavy_package(args):
    code = f"from twin.cli import app\ntry:\n    app({args!r})\nexcept SystemExit:\n    pass"
    assert imported(code, *HEAVY) == []


def run_validate(path: str) -> str:
    return (
        "from twin.cli import app\n"
        f"try:\n    app(['validate', {path!r}])\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code"
    )


def test_validate_on_a_warm_cache_imports_no_heavy_package_pandapower_or_pvlib():
    scenario = str(ROOT / "scenarios" / "microgrid_day.yaml")
    imported(run_validate(scenario))  # warms the session's cache dir
    watched = (*HEAVY, "pandapower", "simbench", "pvlib", "scipy")
    assert imported(run_validate(scenario), *watched) == []


def test_a_warm_run_of_the_day_imports_no_pandapower_matplotlib_or_scipy_stats(tmp_path):
    scenario = str(ROOT / "scenarios" / "microgrid_day.yaml")
    code = (
        "from twin.cli import app\n"
        f"try:\n    app(['run', {scenario!r}, '--out', {str(tmp_path)!r}, '--no-progress'])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "import sys\n"
        "print('modules', sorted(m for m in ('pandapower', 'matplotlib', 'scipy.stats', "
        "'pvlib', 'simbench') if m in sys.modules))\n"
    )
    imported(code)  # warms the session's cache dir (grid, solver model, PV)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("modules ")]
    assert line == "modules []"
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "finished"


def test_the_scenario_model_and_the_run_import_no_writer_or_ev_stacks():
    """The components' schemas build the scenario model; their writers are imported where
    used (the InfluxDB writer's HTTP client, the ingest counters), the EV model's simpy too."""
    code = "import twin.run\nfrom twin.scenario import scenario_model\nscenario_model()"
    assert imported(code, "urllib3", "simpy", "asyncio") == []
