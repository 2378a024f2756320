"""The controller component (sections ``controller`` and ``control``).

The controller is one simulator with one element per battery, a ``site`` element for
site-wide measurements and, under controllers that dispatch EVs, one element per
charger. It measures the site's PV and load power (or the sensor that observes it, or
the device bridge that replaces the asset) and each battery's SoC (time-shifted: the
state at the start of the step), and sets battery and charger power.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from twin.checks import CheckFailure
from twin.component import Component, Resolution, Section
from twin.control.schema import CONTROLLERS, ControlSpec
from twin.errors import Problem
from twin.plan import WorldPlan
from twin.registry import get_model

__all__ = ["NOTES_FILE", "PRICE_PORTS", "ControlComponent", "chargers", "standing_loss_kw"]

#: What the controller noted while planning (a dropped limit...), in the run's parts.
NOTES_FILE = "control_notes.json"

#: Controller price inputs and the tariff output each is connected to.
PRICE_PORTS = {
    "price_eur_kwh": "price_import_eur_kwh",
    "price_export_eur_kwh": "price_export_eur_kwh",
}


#: The generalist RL policy shipped with the package (``control.policy: builtin``).
BUILTIN_POLICY_FILE = Path(__file__).parents[1] / "rl" / "policies" / "generalist_sac.zip"


def policy_file(policy: str | None) -> str | None:
    """The file of ``control.policy``: ``builtin`` is the shipped generalist."""
    return str(BUILTIN_POLICY_FILE) if policy == "builtin" else policy


def chargers(scenario: Any) -> list[dict[str, Any]]:
    """The EV chargers a controller dispatches (none under battery-only controllers)."""
    from models.ev import EVCharging

    found = [
        {"name": name, "p_max_kw": park["p_max_kw"], "efficiency": park["efficiency"]}
        for park in scenario.units("ev")
        for name in EVCharging.charger_names(park)
    ]
    controls_ev = "charger" in {p.group for p in get_model(scenario.controller).inputs.values()}
    return found if controls_ev else []  # else EVs charge at full power


def standing_loss_kw(tables: Any) -> float:
    """The grid's no-load losses (kW): its in-service transformers' iron losses.

    Parameters
    ----------
    tables : mapping of pandas.DataFrame
        The grid's element tables (:func:`models.gridnet.load_tables`).
    """
    total = 0.0
    for name in ("trafo", "trafo3w"):
        frame = tables.get(name)
        if frame is None or frame.empty:
            continue
        on = frame["in_service"].astype(bool)
        parallel = frame["parallel"] if "parallel" in frame else 1.0
        total += float((frame["pfe_kw"] * parallel)[on].sum())
    return total


def _lp_tariff_problems(scenario: Any) -> list[Problem]:
    """The dispatch LP (oracle, MPC) needs export at most import at every step.

    Checked here for a tariff without a price file (its lowest import price against its
    export price); a price file's series is checked when the LP is set up
    (:class:`twin.control.lp.ExportAboveImportError`).
    """
    tariff = scenario.tariff
    if scenario.controller not in ("mpc", "oracle") or tariff.price_csv:
        return []
    lowest = min([tariff.import_eur_kwh, *(p.import_eur_kwh for p in tariff.periods)])
    if tariff.export_eur_kwh <= lowest:
        return []
    return [
        Problem(
            "tariff.export_eur_kwh",
            f"controller {scenario.controller!r} plans with a linear program: expected an "
            f"export price at most the lowest import price ({lowest:g} EUR/kWh), got "
            f"{tariff.export_eur_kwh:g}",
        )
    ]


def _uncontrolled_comparison(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """A KPI taken from the uncontrolled comparison run needs that run to have finished."""
    status = metadata.get("uncontrolled_status")
    if status is None or status == "finished":
        return []
    return [
        CheckFailure(
            "uncontrolled_comparison",
            f"the uncontrolled comparison run {metadata.get('uncontrolled_run_id')} ended "
            f"'{status}' (see uncontrolled/run.json): peak_import_uncontrolled_kw is not "
            "to be trusted",
        )
    ]


class ControlComponent(Component):
    """The controller in the loop: rule, MPC, oracle, schedule or a trained agent."""

    name = "control"
    sections = (
        Section("controller", Literal[CONTROLLERS], "none"),
        Section("control", ControlSpec, ControlSpec()),
    )
    order = 30

    def wanted(self, scenario: Any) -> bool:
        """A controller other than ``none``."""
        return scenario.controller != "none"

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """The what-if runs uncontrolled."""
        return {"controller": "none"}

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """The policy and the schedule."""
        return {
            "control.policy": policy_file(scenario.control.policy),
            "control.schedule_csv": scenario.control.schedule_csv,
        }

    def after_run(
        self, scenario: Any, kpis: dict[str, float], metadata: dict[str, Any], out_dir: Path
    ) -> None:
        """With EVs: the same run uncontrolled beside it, for the uncontrolled peak import.

        A what-if, not the twin (:func:`twin.component.baseline_of`): it neither publishes
        on the run's MQTT topics (it would overwrite the retained birth and status) nor
        drives devices. Asked for with ``run_scenario(..., compare_uncontrolled=True)``.
        """
        if not (metadata.get("compare_uncontrolled") and scenario.units("ev")):
            return
        from twin.component import baseline_of
        from twin.run import RunCheckError, run_scenario

        try:
            uncontrolled = run_scenario(
                baseline_of(scenario),
                out_dir / "uncontrolled",
                compare_uncontrolled=False,
                parent_run_id=metadata["run_id"],
            )
        except RunCheckError as exc:  # its checks are in its run.json; this run still ends
            uncontrolled = exc.result
        metadata["uncontrolled_status"] = uncontrolled.metadata["status"]
        kpis["peak_import_uncontrolled_kw"] = uncontrolled.kpis["peak_import_kw"]
        metadata["uncontrolled_run_id"] = uncontrolled.metadata["run_id"]

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """What the controller noted while planning (``control_notes``), if anything."""
        path = parts_dir / NOTES_FILE
        return {"control_notes": json.loads(path.read_text())} if path.is_file() else {}

    def checks(self) -> dict[str, Any]:
        """A KPI from the comparison run needs that run to have finished."""
        return {"uncontrolled_comparison": _uncontrolled_comparison}

    def resolve(self, resolution: Resolution) -> list[Problem]:
        """Files the controller needs, and something for it to dispatch."""
        scenario = resolution.scenario
        control = scenario.control
        assets = resolution.data["assets"]
        problems = []
        if scenario.controller == "rl" and not control.policy:
            problems.append(
                Problem("control.policy", "controller 'rl' needs a trained policy file")
            )
        elif control.policy and not Path(policy_file(control.policy)).is_file():
            problems.append(Problem("control.policy", f"file {control.policy!r} not found"))
        if scenario.controller == "schedule" and not control.schedule_csv:
            problems.append(Problem("control.schedule_csv", "controller 'schedule' needs a CSV"))
        elif control.schedule_csv and not Path(control.schedule_csv).is_file():
            problems.append(
                Problem("control.schedule_csv", f"file {control.schedule_csv!r} not found")
            )
        problems += _lp_tariff_problems(scenario)
        if scenario.controller in ("mpc", "oracle", "rl", "schedule") and not assets["battery"]:
            problems.append(
                Problem(
                    "controller",
                    f"controller {scenario.controller!r} dispatches batteries: "
                    "add one under assets.battery",
                )
            )
        elif scenario.controller != "none" and not (assets["battery"] or assets["ev"]):
            problems.append(
                Problem(
                    "controller",
                    f"controller {scenario.controller!r} needs a battery or an EV park to dispatch",
                )
            )
        return problems

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """Read the schedule file as the run will: one column per battery."""
        from twin.scenario import series_file_problems

        schedule = scenario.control.schedule_csv
        if not (scenario.controller == "schedule" and schedule and Path(schedule).is_file()):
            return []
        wanted: list[tuple[str, str, str, bool, tuple[float, float] | None]] = [
            (schedule, u["name"], "control.schedule_csv", True, None)
            for u in scenario.units("battery")
        ]
        return series_file_problems(scenario, wanted)

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """The controller simulator, one element per battery (plus site and chargers)."""
        if not self.wanted(scenario):
            return
        from models.gridnet import load_tables

        dispatched = chargers(scenario)
        context = {
            "standing_loss_kw": standing_loss_kw(load_tables(scenario.grid.source)),
            **plan.context,
            "chargers": dispatched,
            "p_import_max_kw": scenario.control.p_import_max_kw,
            "control": scenario.control.model_dump(mode="json"),
            "assets": {kind: scenario.units(kind) for kind in ("pv", "load")},
            "tariff": {"name": "tariff", **scenario.tariff.model_dump()},
            "ev_parks": scenario.units("ev") if dispatched else [],
            "notes_path": str(plan.out_dir / "parts" / NOTES_FILE),
        }
        plan.add_model(
            scenario.controller, scenario.units("battery"), role="controller", context=context
        )

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """Measurements to the controller, setpoints back (state feedback time-shifted).

        The controller reads what the plant reports (:meth:`twin.plan.WorldPlan.observe`):
        a device that replaces the asset, else the sensor's last valid measurement, else
        (no sensor) the model's output.
        """
        if not self.wanted(scenario):
            return
        cls = get_model(scenario.controller)
        control = plan.children("controller")
        site_inputs = {n for n, p in cls.inputs.items() if p.group == "site"}
        for kind in ("pv", "load"):
            # Controllers measure the site's PV + load as one total or each separately.
            attr = f"p_{kind}_kw" if f"p_{kind}_kw" in site_inputs else "p_kw"
            for child in plan.children(kind).values():
                source, measured = plan.observe(kind, child, "p_kw")
                plan.connect(source, control["site"], (measured, attr))
        # The step's prices, as the tariff publishes them, for controllers that read them.
        prices = [
            (published, port) for port, published in PRICE_PORTS.items() if port in cls.inputs
        ]
        for tariff in plan.children("tariff").values():
            if prices:
                plan.connect(tariff, control["site"], *prices)
        poc = plan.children("grid").get("poc")
        if "p_poc_kw" in cls.inputs and poc is not None:
            # The POC import over the previous step (what the grid's losses took).
            source, measured = plan.observe("grid", poc, "p_kw")
            plan.connect(
                source,
                control["site"],
                (measured, "p_poc_kw"),
                time_shifted=True,
                initial_data={measured: float("nan")},
            )
        battery = plan.children("battery")
        for unit in scenario.units("battery"):
            name = unit["name"]
            plan.connect(control[name], battery[name], "p_set_kw")
            # Measured states, time-shifted (the state at the start of the step); one
            # connection per source (a sensor may measure both).
            by_source: dict[Any, list[tuple[str, str]]] = {}
            for state in ("soc", "soh"):
                if state in cls.inputs:
                    source, measured = plan.observe("battery", battery[name], state)
                    by_source.setdefault(source, []).append((measured, state))
            for source, pairs in by_source.items():
                plan.connect(
                    source,
                    control[name],
                    *pairs,
                    time_shifted=True,
                    initial_data={m: unit[f"{state}_init"] for m, state in pairs},
                )
        ev = plan.children("ev")
        state = {"connected": 0.0, "e_needed_kwh": 0.0, "t_departure_h": 0.0}
        for charger in chargers(scenario):
            name = charger["name"]
            plan.connect(control[name], ev[name], ("p_ev_set_kw", "p_set_kw"))
            plan.connect(ev[name], control[name], *state, time_shifted=True, initial_data=state)
