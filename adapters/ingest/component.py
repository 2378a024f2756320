"""The ingest component (section ``ingest``): a plant's sensor stream into the twin.

It declares the section's schema (:mod:`adapters.ingest.schema`), checks the mapping
against the scenario's elements and units, adds the ingest simulator (entity
``ingest``, outputs ``readings`` and ``sensors``) to the world plan, records the
counters in ``run.json`` (``ingest``) and fails the run (check ``ingest``) when values
were lost or too many messages had no known sensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.ingest.limits import element_table
from adapters.ingest.mapping import MappingError, read_mapping_csv
from adapters.ingest.schema import IngestSpec
from adapters.ingest.units import UnitError, conversion
from twin.checks import CheckFailure, RunCheck
from twin.component import Component, Resolution, Section
from twin.errors import Problem
from twin.plan import Deferred, WorldPlan

__all__ = ["INGEST_SIMULATOR", "IngestComponent", "ingest_check", "mapping_problems"]

INGEST_SIMULATOR = "adapters.ingest.simulator:IngestSimulator"


class IngestComponent(Component):
    """Field sensors from MQTT: mapped, checked, stored raw, served per step."""

    name = "ingest"
    sections = (Section("ingest", IngestSpec | None, None, keep_validated=True),)
    order = 40  # before the consumers of its readings

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """The mapping names known elements, quantities and units; somewhere to store."""
        spec = scenario.ingest
        if spec is None:
            return []
        problems = mapping_problems(spec, element_table(scenario, resolution.net, 1.0))
        influx = spec.influx or scenario.outputs.influx
        if influx is not None and influx.api != "v1":
            where = "ingest.influx" if spec.influx else "outputs.influx"
            problems.append(
                Problem(f"{where}.api", "raw points are written at ns precision: api v1 only")
            )
        return problems

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """The ingest simulator and its one entity ``ingest``."""
        if scenario.ingest is not None:
            plan_ingest(scenario, plan)

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """The simulator's counters."""
        from adapters.ingest.stats import ingest_stats

        return ingest_stats(parts_dir)

    def kpis(self, scenario: Any, results: Any, metadata: dict[str, Any]) -> dict[str, float]:
        """Accepted, late, implausible and unknown values."""
        stats = metadata.get("ingest")
        if not stats:
            return {}
        names = ("accepted", "late", "duplicates", "skewed", "implausible", "unknown")
        return {f"ingest_{n}": float(stats.get(n, 0)) for n in names}

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """A what-if beside the run takes no plant data."""
        return {"ingest": None}

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """The mapping CSV."""
        spec = scenario.ingest
        if spec is None or spec.mapping_csv is None:
            return {}
        return {"ingest.mapping_csv": str(spec.mapping_csv)}

    def checks(self) -> dict[str, RunCheck]:
        """No value lost; unknown messages within ``max_unknown_share``."""
        return {"ingest": ingest_check}


def mapping_problems(spec: Any, elements: dict[str, Any]) -> list[Problem]:
    """Rules and CSV rows naming unknown elements, quantities or units (all at once)."""
    problems: list[Problem] = []
    quantities = set().union(*(info.quantities for info in elements.values()))
    channels: list[tuple[str, str | None, Any]] = []
    for i, rule in enumerate(spec.mapping):
        where = f"ingest.mapping[{i}]"
        if rule.asset is not None and rule.asset not in elements:
            problems.append(Problem(f"{where}.asset", f"no element named {rule.asset!r}"))
        if rule.quantities:
            for name, channel in rule.quantities.items():
                unit = channel.unit if channel.unit is not None else rule.unit
                channels.append((f"{where}.quantities.{name}", unit, channel.quantity))
        elif rule.quantity is not None:
            channels.append((f"{where}.quantity", rule.unit, rule.quantity))
    if spec.mapping_csv is not None:
        try:
            table = read_mapping_csv(spec.mapping_csv)
        except MappingError as exc:
            problems.append(Problem(exc.path, exc.message))
            table = {}
        for topic, (asset, channel) in table.items():
            where = f"ingest.mapping_csv[{topic}]"
            info = elements.get(asset)
            if info is None:
                problems.append(Problem(where, f"no element named {asset!r}"))
            elif channel.quantity not in info.quantities:
                known = ", ".join(sorted(info.quantities))
                problems.append(
                    Problem(where, f"{asset} has no quantity {channel.quantity!r}; known: {known}")
                )
            channels.append((where, channel.unit, channel.quantity))
    for where, unit, quantity in channels:
        if quantity not in quantities:
            problems.append(
                Problem(
                    where,
                    f"unknown twin quantity {quantity!r}; known: {', '.join(sorted(quantities))}",
                )
            )
            continue
        try:
            conversion(unit, quantity, vn_kv=1.0)
        except UnitError as exc:
            problems.append(Problem(where, str(exc)))
    return problems


def plan_ingest(scenario: Any, plan: WorldPlan) -> None:
    """Add the ingest simulator (nothing feeds it; consumers connect to ``ingest``)."""
    from adapters.influx.outputs import config_from_spec
    from adapters.ingest.stats import STATS_FILE
    from adapters.mqtt.auth import MqttAuth
    from models.gridnet import load_tables

    spec = scenario.ingest
    elements = element_table(scenario, load_tables(scenario.grid.source), spec.rating_margin)
    influx = spec.influx or scenario.outputs.influx
    out_dir = plan.out_dir

    def influx_config() -> dict[str, Any] | None:
        if influx is None:
            return None
        config = config_from_spec(influx, out_dir)
        config.flush_interval_s = spec.flush_interval_s
        config.spool_dir = (
            influx.spool_dir if spec.influx and influx.spool_dir else str(out_dir / "ingest-spool")
        )
        return vars(config)

    config = {
        "broker": spec.broker,
        "auth": Deferred("ingest login", lambda: MqttAuth.from_spec(spec, spec.tls).as_dict()),
        "client_id": spec.client_id or f"twin-ingest-{scenario.name}",
        "clean_session": spec.clean_session,
        "qos": spec.qos,
        "topics": list(spec.topics),
        "site": spec.site or scenario.name,
        "mapping": [rule.model_dump(exclude_none=False) for rule in spec.mapping],
        "mapping_csv": str(spec.mapping_csv) if spec.mapping_csv else None,
        "elements": {
            name: [info.kind, sorted(info.quantities), info.vn_kv, dict(info.ranges)]
            for name, info in elements.items()
        },
        "wall_start": spec.wall_start,
        "speed": spec.speed,
        "clock_tolerance_s": spec.clock_tolerance_s,
        "max_delay_s": spec.max_delay_s,
        "late_window_s": spec.late_window_s,
        "max_payload_bytes": spec.max_payload_bytes,
        "max_batch_records": spec.max_batch_records,
        "max_sensors": spec.max_sensors,
        "influx": Deferred("ingest influx connection", influx_config),
        "trace": str(spec.trace) if spec.trace else None,
        "stats_path": str(out_dir / "parts" / STATS_FILE),
    }
    plan.add_adapter(
        "ingest",
        INGEST_SIMULATOR,
        "Ingest",
        "ingest",
        init={"clock": plan.clock.to_dict(), "config": config},
        kind="ingest",
    )


def ingest_check(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """No accepted value lost on the way to InfluxDB; few unknown messages."""
    spec = getattr(scenario, "ingest", None)
    if spec is None:
        return []
    from adapters.ingest.stats import ingest_problems

    stats = metadata.get("ingest") or {}
    return [CheckFailure("ingest", p) for p in ingest_problems(stats, spec.max_unknown_share)]
