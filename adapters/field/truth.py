"""The true plant: the scenario run in-process, its true values per sensor.

:func:`run_truth` runs the scenario (its own seed, faults and sensor imperfections) with
:func:`twin.run.run_scenario` into a directory and reads back the twin's own values
(``source=twin``): bus voltages, asset outputs, the point of connection. Branch flows come
from the true bus voltages (:func:`adapters.field.flows.branch_flows`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.field.errors import FieldError
from adapters.field.flows import branch_flows

__all__ = ["LIVE_TWIN_SECTIONS", "Truth", "run_truth", "true_plant", "truth_matrix"]

FlowFunction = Callable[[Any, np.ndarray, np.ndarray, list[str]], dict]


@dataclass
class Truth:
    """True values of a run, per (element, twin quantity), one value per step.

    ``times`` are the steps' starts (UTC); a state (SoC) is its value at the step's
    start. ``run_dir`` holds the run's own outputs (``results.parquet``, ``run.json``).
    """

    times: pd.DatetimeIndex
    step_s: float
    series: dict[tuple[str, str], np.ndarray]
    run_dir: Path
    run_id: str


def _series(results: pd.DataFrame, times: pd.DatetimeIndex) -> dict[tuple[str, str], np.ndarray]:
    twin = results[results["source"] == "twin"]
    table = twin.pivot_table(
        index="time", columns=["asset", "quantity"], values="value", observed=True, dropna=False
    )
    table = table.reindex(times)
    return {(str(a), str(q)): table[(a, q)].to_numpy(float) for a, q in table.columns}


#: The twin's loading output of each branch kind (0 while out of service).
LOADING = {"line": "loading_pct", "trafo": "trafo_loading_pct"}


def _switched_off(
    flows: dict[tuple[str, str], np.ndarray], series: dict[tuple[str, str], np.ndarray]
) -> dict[tuple[str, str], np.ndarray]:
    """Zero the flows of a branch while it is out of service (a line outage fault).

    Those are the steps where the twin's loading of it is exactly 0, whatever the
    voltages at its ends.
    """
    out = {}
    for (element, quantity), values in flows.items():
        loading = series.get((element, LOADING[element.partition("_")[0]]))
        out[(element, quantity)] = (
            values if loading is None else np.where(loading == 0, 0.0, values)
        )
    return out


#: Sections of a live twin that the true plant does without: they listen to the field
#: (or talk to the outside) rather than make up the plant.
LIVE_TWIN_SECTIONS = ("ingest", "estimation", "mqtt", "diagnostics")


def true_plant(scenario: Any) -> Any:
    """The scenario as the true plant: its physics, faults and sensors only.

    One scenario file can drive both ``twin field`` and the live twin (``twin run``):
    the plant drops the live twin's sections (:data:`LIVE_TWIN_SECTIONS`) and its
    InfluxDB output, so it neither subscribes to its own sensors nor writes the truth
    where the twin writes.
    """
    updates: dict[str, Any] = {k: None for k in LIVE_TWIN_SECTIONS if hasattr(scenario, k)}
    if getattr(scenario.outputs, "influx", None) is not None:
        updates["outputs"] = scenario.outputs.model_copy(update={"influx": None})
    return scenario.model_copy(update=updates)


def run_truth(
    scenario: Any,
    run_dir: Path,
    *,
    net: Any,
    branches: list[str],
    flows: FlowFunction = branch_flows,
) -> Truth:
    """Run ``scenario`` into ``run_dir`` and collect its true values.

    Branch flows come from the true bus voltages (``flows``), zero while a branch is out
    of service.

    Raises
    ------
    FieldError
        If the run failed (its error named) or a check failed.
    """
    from twin.errors import RunError
    from twin.results import load_results
    from twin.run import RunCheckError, run_scenario

    try:
        result = run_scenario(true_plant(scenario), run_dir, compare_uncontrolled=False)
    except RunCheckError as exc:
        raise FieldError(f"the true plant's run failed its checks: {exc}") from None
    except RunError as exc:
        raise FieldError(f"the true plant's run failed: {exc}") from None
    clock = scenario.clock()
    times = pd.DatetimeIndex(clock.times).tz_convert("UTC")
    series = _series(load_results(run_dir), times)
    if branches:
        buses = [f"bus_{i}" for i in net.bus.index]
        vm = np.column_stack([series[(b, "v_pu")] for b in buses])
        va = np.column_stack([series[(b, "va_deg")] for b in buses])
        series.update(_switched_off(flows(net, vm, va, branches), series))
    return Truth(times, float(clock.step_s), series, run_dir, result.metadata["run_id"])


def truth_matrix(truth: Truth, sensors: pd.DataFrame) -> np.ndarray:
    """True values (twin units) of every sensor: shape (steps, sensors).

    Raises
    ------
    FieldError
        Naming the sensors whose (element, quantity) the run did not record.
    """
    keys = list(zip(sensors["element"], sensors["quantity"], strict=True))
    missing = sorted({f"{e}.{q}" for e, q in keys if (e, q) not in truth.series})
    if missing:
        raise FieldError(
            f"the run recorded no true values for {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    columns = {key: truth.series[key] for key in dict.fromkeys(keys)}
    return np.column_stack([columns[key] for key in keys])
