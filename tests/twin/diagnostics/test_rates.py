"""Fault-free runs at other report rates and sensor sets raise no alert."""

import subprocess
import sys
from pathlib import Path

import pytest

from twin.diagnostics.run import diagnose_run

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _run(out: Path, *sets: str) -> Path:
    cmd = [sys.executable, "-m", "twin.cli", "run", "scenarios/microgrid_day.yaml"]
    cmd += ["--out", str(out), "--no-progress"]
    for item in sets:
        cmd += ["--set", item]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return out


def _alerts(run: Path) -> list[tuple[str, str, list[str]]]:
    return [(a["asset"], a["kind"], a["evidence"]) for a in diagnose_run(run).alerts]


@pytest.mark.parametrize("seed", [42, 43, 44])
def test_fault_free_half_hour_at_one_second_raises_no_alert(tmp_path, seed):
    run = _run(
        tmp_path / "run",
        "step=1s",
        "duration=30min",
        "start=2016-06-21T11:00:00-04:00",
        f"seed={seed}",
    )
    assert _alerts(run) == []


def test_hourly_power_reports_raise_no_alert(tmp_path):
    run = _run(tmp_path / "run", "sensors.classes.power.interval_s=3600")
    assert _alerts(run) == []


def test_an_unmeasured_battery_power_raises_no_alert(tmp_path):
    run = _run(tmp_path / "run", "sensors.exclude=[battery.p_kw]")
    assert _alerts(run) == []
