"""The ``faults`` component: injected faults, the sensors they corrupt, their labels.

Resolution turns each fault into a unit of :class:`models.faults.FaultSchedule`: its
window in seconds from the run start and the modifier element it drives
(``<asset>:<input>``, ``poc:<input>``, ``line_3:in_service`` or, for a sensor fault,
``<asset>.<quantity>:<modifier>``). In the world the schedule is a simulator of its own
whose modifier elements feed the targeted models' modifier inputs. Sensor faults act on
the sensor of the measured output (the ``<quantity>.<modifier>`` inputs of the model's
element, :mod:`twin.wrapper`); a quantity the ``sensors`` section does not measure gets
a perfect sensor for the fault. Observers (the controller) read the sensor's ``value``
(:meth:`twin.plan.WorldPlan.observe`). The ground truth goes to ``labels.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import Field

from twin.assets.schema import ASSET_KINDS
from twin.component import Component, Resolution, Section
from twin.errors import Problem, did_you_mean
from twin.faults.schema import FaultSpec
from twin.plan import WorldPlan
from twin.registry import get_model
from twin.rundir import write_json
from twin.units import parse_duration_s

__all__ = ["FaultsComponent", "fault_labels", "fault_units", "resolve_faults"]


class FaultsComponent(Component):
    """Faults with exact ground truth (section ``faults``)."""

    name = "faults"
    sections = (Section("faults", Annotated[list[FaultSpec], Field(max_length=1000)], []),)
    order = 25  # before the controller: it reads the sensors registered here

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """Every fault must name a target, a window and options that apply."""
        return resolve_faults(scenario)[1]

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """The fault schedule, and a sensor on every quantity a sensor fault corrupts."""
        units = fault_units(scenario)
        if not units:
            return
        sensed = sensed_elements(scenario)
        targets = {u["modifier"].split(":")[0] for u in units}
        for name in sorted(t for t in targets if "." in t):
            element, quantity = name.split(".", 1)
            # measured already unless sensors are off or exclude it: then a perfect one
            plan.measure(plan.fleets[sensed[element][0]], quantity, {})
        plan.add_model("faults", units, fleet=False)

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """Every modifier into its target: a model's input or a sensor's."""
        schedule = plan.simulators.get("faults")
        if schedule is None:
            return
        kind_of = _kind_of(scenario)
        sensed = sensed_elements(scenario)
        grid = plan.children("grid")
        for element in schedule.entities:
            if element.type != "modifier":
                continue
            target, attr = element.eid.split(":")
            if "." in target:  # a sensor: the modifier input of the measured output
                name, quantity = target.split(".", 1)
                destination = plan.children(sensed[name][0])[name]
                attr = f"{quantity}.{attr}"
            elif target == "poc" or target.startswith("line_"):
                destination = grid[target]
            else:
                destination = plan.children(kind_of[target])[target]
            plan.connect(element, destination, ("value", attr))

    def after_setup(self, scenario: Any, out_dir: Path) -> None:
        """The ground truth: ``labels.json``."""
        if scenario.faults:
            write_json(out_dir / "labels.json", {"faults": fault_labels(scenario)})


def _kind_of(scenario: Any) -> dict[str, str]:
    return {u["name"]: k for k in ASSET_KINDS for u in scenario.units(k)}


def sensed_elements(scenario: Any) -> dict[str, tuple[str, str]]:
    """Every element a sensor may measure: ``{name: (fleet role, element group)}``.

    The plant's assets and their parts (an EV park's chargers) and the grid's point of
    connection, buses, lines and transformers.
    """
    out: dict[str, tuple[str, str]] = {}
    grid_unit = {"name": "poc", "grid": scenario.grid.source}
    fleets = [("grid", [grid_unit])] + [(k, scenario.units(k)) for k in ASSET_KINDS]
    for role, units in fleets:
        if not units:
            continue
        for group, names in get_model(role).element_names(units, {}).items():
            out.update({name: (role, group) for name in names})
    return out


def fault_units(scenario: Any) -> list[dict[str, Any]]:
    """The faults of a resolved scenario as :class:`models.faults.FaultSchedule` units."""
    return resolve_faults(scenario)[0]


def fault_labels(scenario: Any) -> list[dict[str, Any]]:
    """The ground truth of a run's faults: kind, target, window (UTC) and severity."""
    start = scenario.start_ts.tz_convert("UTC")
    return [
        {
            "fault": u["name"],
            "kind": u["kind"],
            "target": u["target"],
            "start": (start + pd.Timedelta(seconds=u["start_s"])).isoformat(),
            "end": (start + pd.Timedelta(seconds=u["end_s"])).isoformat(),
            "severity": u["severity"],
            "mode": u["mode"],
        }
        for u in fault_units(scenario)
    ]


def _fault_start_s(scenario: Any, text: str) -> int:
    """Seconds after the scenario start: a duration (``6h``) or a tz-aware timestamp."""
    try:
        return parse_duration_s(text)
    except ValueError:
        pass
    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise ValueError(
            f"expected a duration after the start (6h) or a timestamp: {exc}"
        ) from None
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return int((ts - scenario.start_ts).total_seconds())


def resolve_faults(scenario: Any) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Fault units (start/end seconds, modifier element) and every problem with them.

    The units are what :class:`models.faults.FaultSchedule` runs on.
    """
    from models.faults import FAULT_KINDS
    from models.gridnet import load_tables

    if not scenario.faults:
        return [], []
    kind_of = {u["name"]: k for k in ASSET_KINDS for u in scenario.units(k)}
    end_of_run = parse_duration_s(scenario.duration)
    step_s = parse_duration_s(scenario.step)
    lines = None
    sensed: dict[str, tuple[str, str]] | None = None
    units: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, fault in enumerate(scenario.faults):
        where = f"faults[{i}]"
        spec = FAULT_KINDS[fault.kind]
        target = fault.target
        if "sensor" in spec.targets:
            if sensed is None:
                sensed = sensed_elements(scenario)
            asset, _, quantity = target.partition(".")
            if asset not in sensed or not quantity:
                hint = did_you_mean(asset, list(sensed))
                problems.append(
                    Problem(
                        f"{where}.target",
                        f"expected <element>.<quantity> of an asset, a charger or a grid "
                        f"element (bus_7.v_pu, poc.p_kw), got {target!r}{hint}",
                    )
                )
                continue
            role, group = sensed[asset]
            cls = get_model(role)
            # what a sensor reports of this element (an EV park's own quantities are not its
            # chargers'); a model's internal outputs (available power, a trip flag) have none
            outputs = [
                q
                for q, port in cls.outputs.items()
                if (port.group or cls.kind) == group and port.sensor
            ]
            if quantity not in outputs:
                problems.append(
                    Problem(
                        f"{where}.target",
                        f"{kind_of.get(asset, group)} {asset!r} has no quantity {quantity!r} "
                        f"that a sensor reports; expected one of {', '.join(outputs) or 'none'}",
                    )
                )
                continue
            modifier = f"{target}:{spec.modifier}"
        elif fault.kind == "soc_misreport":
            if kind_of.get(target) != "battery":
                problems.append(
                    Problem(f"{where}.target", f"{target!r} is not a battery of the scenario")
                )
                continue
            modifier = f"{target}.soc:{'stuck' if fault.mode == 'stuck' else 'offset'}"
        elif spec.targets == ("grid",):
            if target not in ("grid", "poc"):
                problems.append(
                    Problem(
                        f"{where}.target",
                        f"{fault.kind} acts on the point of connection: target 'grid'",
                    )
                )
                continue
            modifier = f"poc:{spec.modifier}"
        elif spec.targets == ("line",):
            if lines is None:
                lines = [f"line_{i}" for i in load_tables(scenario.grid.source).line.index]
            if target not in lines:
                hint = did_you_mean(target, lines)
                problems.append(Problem(f"{where}.target", f"no line {target!r} in the grid{hint}"))
                continue
            modifier = f"{target}:{spec.modifier}"
        else:
            kind = kind_of.get(target)
            if kind is None:
                hint = did_you_mean(target, list(kind_of))
                problems.append(Problem(f"{where}.target", f"no asset named {target!r}{hint}"))
                continue
            if kind not in spec.targets:
                problems.append(
                    Problem(
                        f"{where}.kind",
                        f"{fault.kind} does not apply to {kind} {target!r}; "
                        f"it targets {', '.join(spec.targets)}",
                    )
                )
                continue
            modifier = f"{target}:{spec.modifier}"
        if fault.restart_delay is not None and fault.kind != "inverter_trip":
            problems.append(
                Problem(f"{where}.restart_delay", "only inverter_trip has a restart delay")
            )
        if fault.mode != "offset" and fault.kind != "soc_misreport":
            problems.append(Problem(f"{where}.mode", "only soc_misreport has a mode"))
        try:
            start_s = _fault_start_s(scenario, fault.start)
        except ValueError as exc:
            problems.append(Problem(f"{where}.start", str(exc)))
            continue
        if not 0 <= start_s < end_of_run:
            problems.append(
                Problem(
                    f"{where}.start",
                    f"{fault.start!r} is outside the run (0 .. {scenario.duration} after "
                    f"{scenario.start_ts.isoformat()})",
                )
            )
            continue
        end_s = end_of_run if fault.duration is None else start_s + parse_duration_s(fault.duration)
        if fault.kind == "capacity_fade":
            end_s = end_of_run  # a fade is permanent
        if end_s > end_of_run:
            problems.append(
                Problem(
                    f"{where}.duration", f"the fault would end after the run ({scenario.duration})"
                )
            )
            continue
        if fault.restart_delay is not None:
            end_s = min(end_s + parse_duration_s(fault.restart_delay), end_of_run)
        # whole steps: a fault acts on every step that starts inside its window
        units.append(
            {
                "name": f"f{i}_{fault.kind}",
                "kind": fault.kind,
                "target": target,
                "modifier": modifier,
                "start_s": start_s,
                "end_s": max(end_s, start_s + step_s) if end_s > start_s else end_s,
                "severity": fault.severity,
                "mode": fault.mode,
            }
        )
    return units, problems
