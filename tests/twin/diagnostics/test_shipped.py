"""Fault-free runs of the shipped scenarios raise no alert (diagnosed from their sensors)."""

import json

import pytest
import yaml

from tests.conftest import ROOT
from twin.diagnostics.run import diagnose_run
from twin.run import run_scenario
from twin.scenario import validate_scenario


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("microgrid_day.yaml", {}),
        ("ev_depot.yaml", {}),
        # two winter weeks of the year scenario (the whole year: BENCHMARKS.md)
        ("microgrid_year.yaml", {"duration": "14d"}),
    ],
)
def test_a_fault_free_shipped_scenario_raises_no_alert(name, changes, tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / name).read_text())
    raw.update(changes)
    assert not raw.get("faults")
    run_scenario(validate_scenario(raw), tmp_path / "run", compare_uncontrolled=False)
    found = diagnose_run(tmp_path / "run")
    assert found.alerts == [], json.dumps(found.alerts, indent=1)
    assert found.health["value"].dropna().between(0.0, 1.0).all()
