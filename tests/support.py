"""Helpers several test modules share (references and run launchers, not fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd

from models.gridnet import load_net
from twin.results import wide


def runpp_voltages(
    scenario: Any, results: pd.DataFrame, time: pd.Timestamp, lines_out: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """(ours, runpp's) bus voltages at ``time``: pandapower's own ``runpp`` on the
    scenario's grid with the injections the run recorded (and ``lines_out`` out)."""
    assets = {
        kind: {u["name"]: u["bus"] for u in scenario.units(kind)}
        for kind in ("pv", "battery", "load")
    }
    p = {kind: wide(results, kind, "p_kw") for kind in assets}
    q_load = wide(results, "load", "q_kvar")
    net = load_net(scenario.grid.source)
    net.load["in_service"] = False
    net.sgen["in_service"] = False
    for line in lines_out:
        net.line.loc[line, "in_service"] = False
    for kind, names in assets.items():
        for name, bus in names.items():
            q = -q_load.at[time, name] / 1000 if kind == "load" else 0.0
            pp.create_load(net, bus, p_mw=-p[kind].at[time, name] / 1000, q_mvar=q)
    pp.runpp(net)
    ours = wide(results, "bus", "v_pu").loc[time, [f"bus_{b}" for b in net.bus.index]]
    return ours.to_numpy(), net.res_bus["vm_pu"].to_numpy()


def start_realtime_run(scenario_path: Path, wall_s: float, *extra: str) -> subprocess.Popen:
    """``twin run`` of a one-day, 15-minute scenario paced to last about ``wall_s``."""
    rt_factor = wall_s / (96 * 900)
    command = [sys.executable, "-m", "twin.cli", "run", str(scenario_path), "--realtime"]
    command += ["--rt-factor", str(rt_factor), "--no-progress", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def spike_scenario(tmp_path: Path):
    """Six hours of the day scenario whose extra load becomes impossible after 10 steps:
    a valid scenario (profile within bounds) whose power flow then fails."""
    import yaml

    from tests.conftest import ROOT
    from twin.scenario import validate_scenario

    profile = tmp_path / "spike.csv"
    times = pd.date_range("2016-06-21T13:00:00Z", periods=24, freq="15min")
    p_pu = np.where(np.arange(24) < 10, 0.0005, 10.0)  # 5 kW for 10 steps, then 100 MW
    pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": p_pu}).to_csv(
        profile, index=False
    )
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="6h")
    spike = {"name": "spike", "bus": 5, "p_kw": 10_000, "profile": str(profile)}
    raw["assets"]["load"].append(spike)
    return validate_scenario(raw)


def imported(code: str, *watched: str) -> list[str]:
    """The watched top-level packages that ``code`` imported, run in a fresh interpreter."""
    probe = (
        f"{code}\n"
        "import json, sys\n"
        "top = {name.partition('.')[0] for name in sys.modules}\n"
        f"print(json.dumps(sorted(top & set({list(watched)!r}))))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
