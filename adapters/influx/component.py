"""The InfluxDB component (section ``outputs.influx``): the run written as it runs.

It declares the section's schema (:mod:`adapters.influx.schema`), adds the sink fed by
every model output and every device bridge to the world plan, records the writer's
counters in the run metadata, writes the run's ``kpi`` point once the KPIs are known,
and fails the run (the ``influx`` check) when any point did not reach the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.influx.schema import InfluxSpec
from twin.checks import RunCheck
from twin.component import Component, Section
from twin.plan import Deferred, Entity, WorldPlan
from twin.registry import get_model
from twin.sinks import initial_states

__all__ = ["InfluxComponent", "plan_sink"]

SINK_SIMULATOR = "adapters.influx.sink:InfluxSink"


class InfluxComponent(Component):
    """Every value of the run in InfluxDB (1.x or 2.x/3.x API), spooled while it is down."""

    name = "influx"
    sections = (Section("outputs.influx", InfluxSpec | None, None, keep_validated=True),)
    order = 60  # after every component whose entities it mirrors

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """The sink, fed by every model output and device bridge."""
        if scenario.outputs.influx is not None:
            plan_sink(scenario, plan)

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """The writer's counters."""
        stats = parts_dir / "influx.json"
        return {"influx": json.loads(stats.read_text())} if stats.exists() else {}

    def export(
        self, scenario: Any, kpis: dict[str, float], metadata: dict[str, Any], out_dir: Path
    ) -> None:
        """The run's ``kpi`` point, with the final KPIs."""
        if scenario.outputs.influx is not None:
            from adapters.influx.outputs import write_run_kpis

            write_run_kpis(scenario, kpis, metadata, out_dir)

    def checks(self) -> dict[str, RunCheck]:
        """Every point stored on the server."""
        from adapters.influx.outputs import delivery_check

        return {"influx": delivery_check}


def plan_sink(scenario: Any, plan: WorldPlan) -> None:
    """The InfluxDB sink, fed by every model output and every device bridge.

    It writes what ``results.parquet`` holds: the models' outputs (``source=twin``),
    their sensors' measurements (``measured``) and, for devices, the measured values and
    quality (``real``) and residuals (``residual``).
    """
    routes: dict[str, dict[str, Any]] = {}
    links: list[tuple[Entity, list[str]]] = []
    states: list[list[str]] = []
    for sim in plan.fleets.values():
        cls = get_model(sim.model_name)
        for child in sim.entities:
            attrs = [n for n, p in cls.outputs.items() if (p.group or cls.kind) == child.type]
            fields = {a: ["twin", a] for a in attrs}
            measured = [a for a in attrs if a in sim.params.get("sensors", {})]
            fields.update({f"{a}.measured": ["measured", a] for a in measured})
            states += [[child.full_id, a] for a in attrs if cls.outputs[a].state]
            states += [[child.full_id, f"{a}.measured"] for a in measured if cls.outputs[a].state]
            routes[child.full_id] = {"kind": child.type, "asset": child.eid, "fields": fields}
            if attrs:  # an element without outputs (a controller's site) feeds nothing
                links.append((child, list(fields)))
    for (kind, asset), replacement in plan.replacements.items():
        if not replacement.fields:
            continue  # nothing of it to store
        source = replacement.entity
        states += [[source.full_id, f] for f in replacement.states]
        routes[source.full_id] = {
            "kind": kind,
            "asset": asset,
            "fields": replacement.fields,
            "measured": [
                f for f, (tag, _) in replacement.fields.items() if tag == "real" and f != "quality"
            ],
        }
        links.append((source, list(replacement.fields)))
    from adapters.influx.outputs import config_from_spec

    config = {
        "influx": Deferred(
            "influx connection",
            lambda: vars(config_from_spec(scenario.outputs.influx, plan.out_dir)),
        ),
        "tags": {k: v for k, v in plan.tags.items() if k != "source"},
        "routes": routes,
        "states": states,
        "initial_states": initial_states(plan),
        "stats_path": str(plan.out_dir / "parts" / "influx.json"),
    }
    plan.add_adapter(
        "influx",
        SINK_SIMULATOR,
        "Sink",
        "sink",
        init={"clock": plan.clock.to_dict(), "config": config},
        kind="influx",
        feeds=links,
    )
