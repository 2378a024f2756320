import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app

runner = CliRunner()


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_run_prints_kpis_and_report_renders(small_raw, tmp_path):
    path = write(tmp_path, small_raw)
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "assets.battery[0].e_kwh=30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Self-sufficiency ratio" in result.output
    assert "Energy-balance residual (kWh)" in result.output
    assert (out / "results.parquet").is_file() and (out / "kpis.json").is_file()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    for name in ("power", "soc", "voltages", "prices"):
        assert f'id="fig-{name}-0"' in page
    assert "Peak import (kW)" in page


def test_validate_reports_field_paths_and_fails(day_raw, tmp_path):
    day_raw["assets"]["battery"][0]["p_max_kww"] = 3
    result = runner.invoke(app, ["validate", str(write(tmp_path, day_raw))])
    assert result.exit_code == 2
    assert "assets.battery[0].p_max_kww" in result.output
    assert "did you mean 'p_max_kw'" in result.output


def test_validate_ok(day_raw, tmp_path):
    result = runner.invoke(app, ["validate", str(write(tmp_path, day_raw))])
    assert result.exit_code == 0
    assert "96 steps" in result.output


def test_report_of_a_non_run_is_clear(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "results.parquet is missing" in result.output


def test_ev_depot_kpis_and_report_show_ev_charging(tmp_path):
    out = tmp_path / "ev"
    result = runner.invoke(
        app,
        [
            "run",
            "scenarios/ev_depot.yaml",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "duration=1d",
        ],
    )
    assert result.exit_code == 0, result.output
    for label in (
        "EV energy delivered (kWh)",
        "EV energy unmet at departure (kWh)",
        "EVs served",
        "EVs turned away",
        "Peak import, uncontrolled charging (kW)",
    ):
        assert label in result.output
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    page = (out / "report.html").read_text()
    for figure in ("fig-ev-0", "fig-ev-1", "fig-ev-2"):  # power, connected, energy
        assert f'id="{figure}"' in page


def test_validate_applies_set_overrides_as_run_does(day_raw, tmp_path):
    path = write(tmp_path, day_raw)
    result = runner.invoke(app, ["validate", str(path), "--set", "duration=2d"])
    assert result.exit_code == 0, result.output
    assert "192 steps" in result.output
    result = runner.invoke(
        app, ["validate", str(path), "--set", "step=30min", "--set", "duration=1d"]
    )
    assert result.exit_code == 0, result.output
    assert "48 steps of 30min" in result.output
    result = runner.invoke(app, ["validate", str(path), "--set", "assets.battery[0].e_kwh=-5"])
    assert result.exit_code == 2
    assert "assets.battery[0].e_kwh" in result.output
    result = runner.invoke(app, ["validate", str(path), "--set", "duration"])
    assert result.exit_code == 2
    assert "expected --set path=value" in result.output


def _children(pid: int, name: str) -> list[int]:
    """Pids of the live child processes of ``pid`` called ``name`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == pid and comm == name and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_broker_stops_mosquitto_on_sigterm_and_sighup(tmp_path, signum):
    from adapters.server import free_port

    port = free_port()
    command = [sys.executable, "-m", "twin.cli", "broker", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "mosquitto")]
    broker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mosquitto: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (_accepts(port) and mosquitto):
            assert broker.poll() is None and time.monotonic() < deadline, broker.stdout.read()
            mosquitto = _children(broker.pid, "mosquitto")
            time.sleep(0.05)
        broker.send_signal(signum)
        output, _ = broker.communicate(timeout=30)
        assert broker.returncode == 0, output
        assert f"{signal.Signals(signum).name}: stopping mosquitto" in output
        assert not _alive(mosquitto[0]), "mosquitto outlived twin broker"
        assert not _accepts(port)
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.communicate(timeout=30)
        for pid in mosquitto:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_plan_prints_the_world_without_running_it(small_raw, tmp_path):
    path = write(tmp_path, small_raw)
    result = runner.invoke(app, ["plan", str(path), "--set", "controller=none"])
    assert result.exit_code == 0, result.output
    assert "simulator" in result.output and "grid.bus_7" in result.output
    assert "rule" not in result.output  # the override reached the plan
    assert not (tmp_path / "runs").exists()  # nothing written, nothing run
    mermaid = runner.invoke(app, ["plan", str(path), "--format", "mermaid"])
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart LR")
    dot = runner.invoke(app, ["plan", str(path), "--format", "dot"])
    assert dot.exit_code == 0 and dot.output.startswith("digraph world {")
    bad = runner.invoke(app, ["plan", str(path), "--format", "svg"])
    assert bad.exit_code == 2 and "expected table, mermaid or dot" in bad.output
    small_raw["assets"]["battery"][0]["e_kwh"] = -1
    invalid = runner.invoke(app, ["plan", str(write(tmp_path, small_raw))])
    assert invalid.exit_code == 2 and "assets.battery[0].e_kwh" in invalid.output
