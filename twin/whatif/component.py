"""The ``whatif`` component: the ``economics`` and ``carbon`` sections of a scenario.

Neither adds anything to the world: once the run's KPIs are known
(:meth:`WhatIfComponent.after_run`) it reads the reference run (or makes it beside the
run, :mod:`twin.whatif.reference`) and adds the economics and carbon KPIs; the
investment's cash flows go into ``run.json`` for the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.checks import CheckFailure
from twin.component import Component, Resolution, Section
from twin.errors import Problem
from twin.scenario import series_file_problems
from twin.whatif.reference import INVESTED_KINDS, invested, reference_problem, run_reference
from twin.whatif.schema import CARBON_LIMITS, CarbonSpec, EconomicsSpec

__all__ = ["WhatIfComponent"]


def _reference_finished(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """Figures against a reference need that reference to have finished its checks."""
    status = metadata.get("reference_status")
    if status is None or status == "finished":
        return []
    if status == "crashed":
        return [
            CheckFailure(
                "reference_run",
                f"the reference run made in {metadata.get('reference_dir')} crashed "
                f"({metadata.get('reference_error')}): no economics or carbon KPIs",
            )
        ]
    return [
        CheckFailure(
            "reference_run",
            f"the reference run {metadata.get('reference_run_id')} ended '{status}' (see "
            f"{metadata.get('reference_dir')}/run.json): the economics and carbon KPIs "
            "against it are not to be trusted",
        )
    ]


def _investment_problems(scenario: Any) -> list[Problem]:
    """Invested names must be batteries or PV; an invested battery must be able to age."""
    problems: list[Problem] = []
    known = {unit["name"] for kind in INVESTED_KINDS for unit in scenario.units(kind)}
    for i, name in enumerate(scenario.economics.invest or []):
        if name not in known:
            problems.append(
                Problem(
                    f"economics.invest[{i}]",
                    f"{name!r} is not a battery or PV plant of the scenario "
                    f"(known: {', '.join(sorted(known)) or 'none'})",
                )
            )
    names = invested(scenario)
    for i, unit in enumerate(scenario.units("battery")):
        if unit["name"] in names and unit["soh_init"] <= unit["soh_eol"]:
            problems.append(
                Problem(
                    f"assets.battery[{i}].soh_init",
                    f"{unit['soh_init']} is at or below soh_eol {unit['soh_eol']}: expected "
                    "an invested battery above its end of life (its replacements are costed)",
                )
            )
    return problems


class WhatIfComponent(Component):
    """Money and carbon of a run against a reference run without its batteries and PV."""

    name = "whatif"
    sections = (
        Section("economics", EconomicsSpec | None, None),
        Section("carbon", CarbonSpec | None, None),
    )
    order = 900  # after every component that adds KPIs

    def resolve(self, resolution: Resolution) -> list[Problem]:
        """The reference run must be a finished run; the intensity file must exist."""
        scenario, problems = resolution.scenario, []
        economics, carbon = scenario.economics, scenario.carbon
        if economics is not None and economics.reference_run:
            problem = reference_problem(economics.reference_run, scenario, resolution.data)
            if problem:
                problems.append(Problem("economics.reference_run", problem))
        if economics is not None:
            problems += _investment_problems(scenario)
        if carbon is not None and carbon.intensity_csv:
            if not Path(carbon.intensity_csv).is_file():
                problems.append(
                    Problem("carbon.intensity_csv", f"file {carbon.intensity_csv!r} not found")
                )
        return problems

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """Read the intensity file as the run will: gaps, bad values, coverage."""
        carbon = scenario.carbon
        if carbon is None or not (carbon.intensity_csv and Path(carbon.intensity_csv).is_file()):
            return []
        wanted: list[tuple[str, str, str, bool, tuple[float, float] | None]] = [
            (carbon.intensity_csv, "g_co2_kwh", "carbon.intensity_csv", True, CARBON_LIMITS)
        ]
        return series_file_problems(scenario, wanted)

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """The carbon intensity file."""
        return {"carbon.intensity_csv": scenario.carbon.intensity_csv if scenario.carbon else None}

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """A what-if beside the run (the reference itself) makes no study of its own."""
        return {"economics": None, "carbon": None}

    def after_run(
        self, scenario: Any, kpis: dict[str, float], metadata: dict[str, Any], out_dir: Path
    ) -> None:
        """Add the economics and carbon KPIs against the reference run."""
        from twin.results import load_results

        results = load_results(out_dir)
        reference = run_reference(scenario, out_dir, metadata)
        if reference is None:  # it crashed: the reference_run check says so
            return
        if scenario.economics is not None:
            from twin.whatif.economics import economics_kpis

            found, flows = economics_kpis(scenario, results, kpis, reference)
            kpis.update(found)
            metadata["economics_cash_flows"] = [list(flow) for flow in flows]
            metadata["economics_discount_rate"] = scenario.economics.discount_rate
        if scenario.carbon is not None:
            from twin.whatif.carbon import carbon_kpis

            kpis.update(carbon_kpis(scenario, results, kpis, reference))

    def checks(self) -> dict[str, Any]:
        """The reference run must have finished."""
        return {"reference_run": _reference_finished}
