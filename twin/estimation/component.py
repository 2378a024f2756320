"""The ``estimation`` component: the grid's state from the field sensors, every step.

It adds one simulator (:class:`twin.estimation.simulator.EstimationSimulator`) fed by
the ingest's windows (``readings`` and the ``sensors`` table), which estimates the bus
voltages and branch flows by weighted least squares with bad-data detection
(:mod:`models.estimation`) and records them as ``source=estimate`` rows, the sensors'
health (normalised residuals; suspects and flagged sensors) in
``sensor_health.parquet``, both to InfluxDB through the run's sink, and its counters
into ``run.json`` (``estimation``). The run check ``estimation`` fails a run whose
estimate failed on most of the steps that had measurements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin.checks import CheckFailure, RunCheck
from twin.component import Component, Resolution, Section
from twin.errors import Problem
from twin.estimation.schema import EstimationSpec
from twin.plan import Entity, WorldPlan

__all__ = ["ESTIMATION_SIMULATOR", "EstimationComponent", "estimate_part"]

ESTIMATION_SIMULATOR = "twin.estimation.simulator:EstimationSimulator"
STATS_FILE = "estimation.json"
#: The kind of the ingest's simulator in the plan (its entity serves ``readings``).
INGEST_KIND = "ingest"
#: Below this share of solved steps (of those with measurements) the run fails.
MIN_SOLVED_SHARE = 0.5


def estimate_part(out_dir: Path) -> Path:
    """The Parquet part of the ``source=estimate`` rows."""
    return out_dir / "parts" / "estimate.parquet"


class EstimationComponent(Component):
    """State estimation on the ingested field sensors (section ``estimation``)."""

    name = "estimation"
    sections = (Section("estimation", EstimationSpec | None, None),)
    order = 65  # after the sinks (60), which plan themselves in add_connections

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """It estimates from ingested field sensors: it needs the ``ingest`` section."""
        if scenario.estimation is None:
            return []
        if getattr(scenario, "ingest", None) is None:
            return [
                Problem(
                    "estimation",
                    "state estimation works on the field's sensors: add an 'ingest' section "
                    "(or drop 'estimation')",
                )
            ]
        return []

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """A what-if beside the run estimates nothing."""
        return {"estimation": None}

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """The estimator's simulator, with the grid and who injects where."""
        from models.gridnet import load_tables
        from twin.assets.component import injectors
        from twin.registry import get_model

        spec = scenario.estimation
        grid = plan.fleets["grid"]
        (unit,) = grid.params["units"]
        tables = load_tables(unit["grid"])
        members = [
            [name, int(bus), sorted(get_model(plan.fleets[kind].model_name).outputs)]
            for kind, name, bus in injectors(scenario, plan)
        ]
        poc = get_model(grid.model_name).element_names(grid.params["units"], grid.params["context"])
        feeding = tables.ext_grid[tables.ext_grid["in_service"].astype(bool)]
        if len(feeding) == 1:  # the import at the point of connection is the slack's
            members += [[name, int(feeding.bus.iloc[0])] for name in poc.get("grid", [])]
        # with several external grids the POC's import (their sum) cannot be placed on
        # one bus: its meter is left out of the injections
        config = {
            "grid": unit["grid"],
            "injectors": members,
            "spec": spec.model_dump(mode="json"),
            "tags": {k: v for k, v in plan.tags.items() if k in ("site", "run_id")},
            "record": str(estimate_part(plan.out_dir)),
            "health_path": str(plan.out_dir / "sensor_health.parquet"),
            "stats_path": str(plan.out_dir / "parts" / STATS_FILE),
        }
        plan.add_adapter(
            "estimation",
            ESTIMATION_SIMULATOR,
            "Estimator",
            "estimator",
            init={"clock": plan.clock.to_dict(), "config": config},
            kind="estimation",
            parts=[estimate_part(plan.out_dir)],
        )

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """The ingest's windows in; estimates and sensor health out (sink, diagnostics)."""
        estimator = plan.simulators["estimation"].entities[0]
        (ingest,) = [sim for sim in plan.simulators.values() if sim.kind == INGEST_KIND]
        plan.connect(ingest.entities[0], estimator, "readings", "sensors")
        sink = plan.simulators.get("influx")
        config = plan.simulators["estimation"].init["config"]
        config["lines"] = sink is not None
        if sink is not None:
            plan.connect(estimator, Entity("influx", "sink", sink.model), "lines")
        engine = plan.simulators.get("diagnostics")
        if engine is not None:  # flagged sensors: the engine's sensor-health signal
            plan.connect(estimator, engine.entities[0], ("health", "sensor_health"))

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """What the estimator did: steps solved, iterations, flagged sensors."""
        path = parts_dir / STATS_FILE
        return {"estimation": json.loads(path.read_text())} if path.is_file() else {}

    def checks(self) -> dict[str, RunCheck]:
        """The estimate solved most steps that had measurements."""
        return {"estimation": solved_check}


def solved_check(scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]) -> list:
    """Fail a run whose estimator failed on most steps with measurements."""
    if getattr(scenario, "estimation", None) is None:
        return []
    stats = metadata.get("estimation")
    if stats is None:
        return [CheckFailure("estimation", "the estimator left no statistics (it did not run)")]
    windows = int(stats.get("windows", 0))
    solved = int(stats.get("solved", 0))
    if not windows:
        return [
            CheckFailure(
                "estimation",
                "no window had measurements to estimate from: check the ingest (topics, "
                "mapping, wall_start) and that the field sends bus voltages or flows",
            )
        ]
    if solved < MIN_SOLVED_SHARE * windows:
        reasons = ", ".join(f"{k}: {v}" for k, v in stats.get("failures", {}).items())
        return [
            CheckFailure(
                "estimation",
                f"the state estimate solved {solved} of {windows} steps with measurements "
                f"({reasons or 'no reason recorded'})",
            )
        ]
    return []
