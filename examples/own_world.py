"""Use the twin's models in your own mosaik world.

A mosaik-csv source reads ``own_world.csv`` (beside this file: one day at 15 minutes of
irradiance ``ghi``/``dni``/``dhi`` in W/m2, air temperature ``temp_air`` in degC,
``wind_speed`` in m/s, and the consumption of a few households ``load_kw``/``load_kvar``). It
drives a twin PV plant through the plant's weather inputs and a twin load through its
absolute power inputs. The twin grid (pandapower's ``simple_four_bus_system``: a
250 kVA 10/0.4 kV transformer and two cable sections) solves a power flow every step.
A second run starts the grid in its own process (mosaik's ``cmd`` form,
``%(python)s -m twin.simulator %(addr)s``) and gives identical results.

Run it from the repository (the twin and mosaik-csv installed, both are dependencies
of the twin)::

    python examples/own_world.py

Each row of the CSV holds the mean of the 15 minutes that start at its time stamp;
:func:`write_csv` wrote it from the weather file pvlib ships (Greensboro, NC, TMY3)
and SimBench's household profile ``H0-A``. Signs follow the twin: power flowing into a
bus is positive, so the PV's ``p_kw`` > 0, the load's < 0, and the grid's ``p_kw`` at
the point of connection is import (> 0) or export (< 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mosaik
import pandas as pd

from twin import assembly

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "own_world.csv"
START = "2016-06-21T00:00:00-04:00"
SITE = {"lat": 36.1, "lon": -79.95, "altitude": 273, "tz": "America/New_York"}
GRID = "simple_four_bus_system"
PV = {"name": "roof", "bus": 3, "p_dc_kw": 10, "tilt_deg": 30, "azimuth_deg": 180}
#: The rating only counts where the CSV has no value (its inputs replace the profile).
LOAD = {"name": "houses", "bus": 2, "p_kw": 15.0, "q_kvar": 3.0}
WEATHER = ("ghi", "dni", "dhi", "temp_air", "wind_speed")

SIM_CONFIG: dict[str, Any] = {
    "CSV": {"python": "mosaik_csv:CSV"},
    "Twin": {"python": "twin.wrapper:ModelSimulator"},
    # the same simulator in its own process: mosaik fills in its interpreter and address
    "TwinProcess": {"cmd": "%(python)s -m twin.simulator %(addr)s"},
    "Collector": {"python": "mosaik.basic_simulators:OutputSimulator"},
}


def run(remote: bool = False) -> pd.DataFrame:
    """One day of the world; the grid in its own process when ``remote``.

    Returns
    -------
    pandas.DataFrame
        One row per step (UTC start of the step): ``pv_p_kw``, ``load_p_kw``,
        ``grid_p_kw`` (import at the point of connection), ``grid_q_kvar``,
        ``losses_kw`` and ``v_pu_bus_<i>`` of every bus.
    """
    parts = assembly.assemble(
        start=START,
        step="15min",
        duration="1d",
        site=SITE,
        grid=GRID,
        assets={"pv": [PV], "load": [LOAD]},
    )
    clock = parts.clock.to_dict()
    world = mosaik.World(
        SIM_CONFIG, time_resolution=1.0, skip_greetings=True, configure_logging=False
    )
    try:
        # mosaik-csv reads naive times: the CSV's, in UTC
        utc_start = pd.Timestamp(START).tz_convert("UTC").tz_localize(None)
        csv = world.start("CSV", sim_start=str(utc_start), datafile=str(CSV_PATH))
        (meteo,) = csv.Data.create(1)

        def fleet(model: str, factory: str, sim: str = "Twin") -> dict[str, Any]:
            started = world.start(sim, sim_id=model, model=model, clock=clock)
            (parent,) = getattr(started, factory).create(
                1, units=parts.units[model], context=parts.context
            )
            return {child.eid: child for child in parent.children}

        pv = fleet("pv", "PVPlant")["roof"]
        load = fleet("load", "Load")["houses"]
        grid = fleet("grid", "Grid", "TwinProcess" if remote else "Twin")

        world.connect(meteo, pv, *WEATHER)
        world.connect(meteo, load, ("load_kw", "p_kw"), ("load_kvar", "q_kvar"))
        world.connect(pv, grid[f"bus_{PV['bus']}"], "p_kw")
        world.connect(load, grid[f"bus_{LOAD['bus']}"], "p_kw", "q_kvar")

        collector = world.start("Collector")
        (sink,) = collector.Dict.create(1)
        world.connect(pv, sink, ("p_kw", "pv_p_kw"))
        world.connect(load, sink, ("p_kw", "load_p_kw"))
        world.connect(grid["poc"], sink, ("p_kw", "grid_p_kw"), ("q_kvar", "grid_q_kvar"))
        world.connect(grid["poc"], sink, "losses_kw")
        buses = sorted(eid for eid in grid if eid.startswith("bus_"))
        for bus in buses:
            world.connect(grid[bus], sink, ("v_pu", f"v_pu_{bus}"))

        world.run(until=parts.clock.end_s, print_progress=False, shutdown=False)
        seen = collector.get_dict(sink.eid)
    finally:
        world.shutdown()
    rows = {t: {attr: next(iter(v.values())) for attr, v in got.items()} for t, got in seen.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    if len(frame) != parts.clock.n_steps:  # a remote simulator's failure is only logged
        raise RuntimeError(f"the world ran {len(frame)} of {parts.clock.n_steps} steps")
    frame.index = parts.clock.times
    return frame[
        ["pv_p_kw", "load_p_kw", "grid_p_kw", "grid_q_kvar", "losses_kw"]
        + [f"v_pu_{bus}" for bus in buses]
    ]


def summary(frame: pd.DataFrame) -> str:
    """A few lines on the day: energies (kWh), the grid's exchange and voltages."""
    dt_h = (frame.index[1] - frame.index[0]) / pd.Timedelta(hours=1)
    kwh = frame.sum() * dt_h
    grid = frame["grid_p_kw"]
    volts = frame.filter(like="v_pu_")
    return "\n".join(
        [
            f"PV {kwh['pv_p_kw']:.1f} kWh, load {-kwh['load_p_kw']:.1f} kWh, "
            f"losses {kwh['losses_kw']:.2f} kWh",
            f"grid import {grid.clip(lower=0).sum() * dt_h:.1f} kWh, "
            f"export {-grid.clip(upper=0).sum() * dt_h:.1f} kWh",
            f"voltages {volts.min().min():.4f} .. {volts.max().max():.4f} pu",
        ]
    )


def write_csv(path: Path = CSV_PATH) -> None:
    """Write the example's CSV (needs the twin's weather and SimBench readers)."""
    from models.load import Load
    from models.weather import weather_at

    parts = assembly.assemble(
        start=START,
        step="15min",
        duration="1d",
        site=SITE,
        grid="1-LV-rural1--0-sw",  # the SimBench grid whose profiles hold H0-A
        assets={"load": [{**LOAD, "profile": "H0-A"}]},
    )
    clock = parts.clock
    middle = (clock.times + pd.Timedelta(seconds=clock.step_s / 2)).tz_convert(SITE["tz"])
    data = weather_at(middle, parts.context["weather"])  # the step's mean: its middle
    load = Load(parts.units["load"], clock, parts.context).exogenous()
    data["load_kw"] = -load["p_kw"][:, 0]  # consumption > 0, as a meter reads it
    data["load_kvar"] = -load["q_kvar"][:, 0]
    data.index = clock.times.tz_localize(None).rename("time_utc")
    data.round(4).to_csv(path)


if __name__ == "__main__":
    local = run(remote=False)
    print("grid in this process:\n" + summary(local))
    remote = run(remote=True)
    same = local.equals(remote)
    print(f"grid in its own process: results {'identical' if same else 'DIFFERENT'}")
    raise SystemExit(0 if same else 1)
