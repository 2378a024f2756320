"""Helpers several test modules share (references and run launchers, not fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd
import pvlib

from models.gridnet import load_net
from tests.conftest import SITE
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


def modelchain_ac_kw(times: pd.DatetimeIndex, weather: pd.DataFrame, plant: dict) -> pd.Series:
    """pvlib's own ModelChain on the same inputs: the reference."""
    location = pvlib.location.Location(SITE["lat"], SITE["lon"], SITE["tz"], SITE["altitude"])
    system = pvlib.pvsystem.PVSystem(
        surface_tilt=plant["tilt_deg"],
        surface_azimuth=plant["azimuth_deg"],
        albedo=plant["albedo"],
        module_parameters={"pdc0": plant["p_dc_kw"] * 1000, "gamma_pdc": plant["gamma_pdc"]},
        inverter_parameters={
            "pdc0": plant["p_ac_kw"] * 1000 / plant["eta_inv_nom"],
            "eta_inv_nom": plant["eta_inv_nom"],
        },
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
            plant["temperature_model"]
        ],
        losses_parameters={
            "soiling": 2,
            "shading": 3,
            "snow": 0,
            "mismatch": 2,
            "wiring": 2,
            "connections": 0.5,
            "lid": 1.5,
            "nameplate_rating": 1,
            "age": 0,
            "availability": 3,
        },
    )
    chain = pvlib.modelchain.ModelChain(
        system,
        location,
        transposition_model="haydavies",
        aoi_model="physical",
        spectral_model="no_loss",
        losses_model="pvwatts",
        dc_model="pvwatts",
        ac_model="pvwatts",
    )
    chain.run_model(weather)
    return chain.results.ac.clip(lower=0).fillna(0) / 1000.0


#: Longest a test thread waits for another (a safety net against a hang, not a timing).
THREAD_WAIT_S = 300.0


def hook_step(monkeypatch: Any, sid: str, hook: Callable[[int], None]) -> None:
    """Call ``hook(time)`` in the stepping thread before each step of the in-process
    model simulator ``sid`` of every run (to make runs in threads meet mid-run)."""
    from twin.wrapper import ModelSimulator

    step = ModelSimulator.step

    def hooked(self: ModelSimulator, time: int, inputs: Any, max_advance: int) -> int:
        if self.sid == sid:
            hook(time)
        return step(self, time, inputs, max_advance)

    monkeypatch.setattr(ModelSimulator, "step", hooked)


def in_threads(calls: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each call in a thread of its name; their results (or exceptions) by name."""
    out: dict[str, Any] = {}

    def target(name: str) -> None:
        try:
            out[name] = calls[name]()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out[name] = exc

    threads = [threading.Thread(target=target, args=(name,), name=name) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "a run thread hung"
    return out


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
