"""The ``assets`` and ``tariff`` components: the plant's models and how they inject.

Assets are registered models whose units sit at a bus (:data:`ASSET_KINDS`). Resolving
them names every unit, turns bus references into the grid's bus indices, expands
``from_grid`` loads into the grid's own loads and reads every profile file as the run
will. In the world each kind is one vectorised simulator whose elements inject into
their bus (``p_kw``, ``q_kvar``), or whatever replaces them downstream (a device bridge
registered in :attr:`twin.plan.WorldPlan.sources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.assets.schema import ASSET_KINDS, Assets, TariffSpec
from twin.component import Component, Resolution, Section
from twin.errors import Problem, did_you_mean
from twin.plan import WorldPlan
from twin.registry import get_model
from twin.scenario import ScenarioBase, series_file_problems

__all__ = ["AssetsComponent", "TariffComponent", "injectors", "world_attrs"]


def world_attrs(model: str, group: str) -> set[str]:
    """Output names of ``group`` of the registered model ``model``."""
    cls = get_model(model)
    return {n for n, port in cls.outputs.items() if (port.group or cls.kind) == group}


def injectors(scenario: ScenarioBase, plan: WorldPlan) -> list[tuple[str, str, int]]:
    """(kind, element name, bus) of every element that injects into a bus."""
    out = []
    for kind in ASSET_KINDS:
        sim = plan.fleets.get(kind)
        for unit in scenario.units(kind):
            if sim is None:
                continue
            names = get_model(kind).element_names([unit], plan.context)
            # an EV park injects through its chargers (group ``ev``)
            group = "ev" if kind == "ev" else kind
            out += [(kind, name, unit["bus"]) for name in names[group]]
    return out


class AssetsComponent(Component):
    """PV plants, batteries, loads and EV parks (section ``assets``)."""

    name = "assets"
    sections = (Section("assets", Assets, Assets()),)
    order = 10

    def resolve(self, resolution: Resolution) -> list[Problem]:
        """Expand grid loads, name units, resolve buses and check profiles."""
        from models.gridnet import bus_index

        scenario, net = resolution.scenario, resolution.net
        assets = resolution.data["assets"]
        problems = _expand_grid_loads(assets, net)
        profiles = None
        names: dict[str, str] = {}
        for kind in ASSET_KINDS:
            for i, unit in enumerate(assets[kind]):
                where = f"assets.{kind}[{i}]"
                unit["name"] = unit["name"] or f"{kind}_{i}"
                if unit["name"] in names:
                    problems.append(
                        Problem(
                            f"{where}.name",
                            f"name {unit['name']!r} already used by {names[unit['name']]}",
                        )
                    )
                names[unit["name"]] = where
                try:
                    unit["bus"] = bus_index(net, unit["bus"])
                except KeyError as exc:
                    problems.append(
                        Problem(f"{where}.bus", f"{exc.args[0]} of grid {scenario.grid.source!r}")
                    )
                profile = unit.get("profile")
                if kind == "load" and profile and not profile.lower().endswith(".csv"):
                    if profiles is None:
                        from models.profiles import simbench_profile_table

                        profiles = simbench_profile_table(scenario.grid.source)
                    problems += _simbench_profile_problems(where, profile, profiles)
                elif kind == "load" and profile and not Path(profile).is_file():
                    problems.append(
                        Problem(f"{where}.profile", f"profile file {profile!r} not found")
                    )
        return problems

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """Read every load profile CSV as the run will."""
        from models.load import PROFILE_LIMITS

        wanted: list[tuple[str, str, str, bool, tuple[float, float] | None]] = []
        for i, unit in enumerate(scenario.units("load")):
            profile = unit.get("profile")
            if profile and str(profile).lower().endswith(".csv") and Path(profile).is_file():
                where = f"assets.load[{i}].profile"
                wanted += [(profile, "p_pu", where, True, PROFILE_LIMITS)]
                wanted += [(profile, "q_pu", where, False, PROFILE_LIMITS)]
        return series_file_problems(scenario, wanted)

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """Load profile files (a SimBench profile name is not a file and is skipped)."""
        return {
            f"assets.load[{i}].profile": load.profile for i, load in enumerate(scenario.assets.load)
        }

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """One simulator per asset kind that the scenario has."""
        for kind in ASSET_KINDS:
            units = scenario.units(kind)
            if units:
                plan.add_model(kind, units)

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """Every asset (or what replaces it) injects into its bus.

        One fleet connection per asset kind carries every element's injection into the
        grid's buses (:meth:`twin.plan.WorldPlan.connect_fleet`); an element replaced by a
        device injects through its own connection from the device. Without
        ``plan.fleet_exchange`` every element has its own connection.
        """
        grid = plan.children("grid")
        buses = {e.eid: j for j, e in enumerate(e for e in grid.values() if e.type == "bus")}
        children = {kind: plan.children(kind) for kind in ASSET_KINDS}
        fleets: dict[str, dict[str, int]] = {}
        for kind, name, bus in injectors(scenario, plan):
            child = children[kind][name]
            attrs = [a for a in ("p_kw", "q_kvar") if a in world_attrs(kind, child.type)]
            source = plan.source_of(kind, child)
            if plan.fleet_exchange and source is child:
                fleets.setdefault(kind, {})[name] = buses[f"bus_{bus}"]
                continue
            plan.connect(source, grid[f"bus_{bus}"], *attrs)
        for kind, at in fleets.items():
            sim = plan.fleets[kind]
            group = "ev" if kind == "ev" else kind
            attrs = [a for a in ("p_kw", "q_kvar") if a in world_attrs(kind, group)]
            index = [at.get(e.eid, -1) for e in sim.entities if e.type == group]
            plan.connect_fleet(sim, plan.fleets["grid"], *attrs, index=index)

    def wanted(self, scenario: Any) -> bool:
        """Always part of a world (a scenario without assets still has none to add)."""
        return True


def _expand_grid_loads(assets: dict[str, list[dict[str, Any]]], net: Any) -> list[Problem]:
    """Replace ``from_grid`` loads by the grid's in-service loads, times their scaling."""
    problems = []
    loads = []
    for i, load in enumerate(assets["load"]):
        if not load["from_grid"]:
            loads.append(load)
            continue
        for idx, row in net.load[net.load["in_service"].astype(bool)].iterrows():
            scaling = float(row.get("scaling", 1.0))
            loads.append(
                {
                    "name": f"load_{idx}",
                    "bus": int(row["bus"]),
                    "from_grid": False,
                    "p_kw": float(row["p_mw"]) * scaling * 1000.0,
                    "q_kvar": float(row["q_mvar"]) * scaling * 1000.0,
                    "profile": row.get("profile") if isinstance(row.get("profile"), str) else None,
                }
            )
        if net.load.empty:
            problems.append(Problem(f"assets.load[{i}].from_grid", "the grid has no loads"))
    assets["load"] = loads
    return problems


def _simbench_profile_problems(where: str, profile: str, profiles: Any) -> list[Problem]:
    known = sorted({c.rsplit("_", 1)[0] for c in profiles.columns})
    if profile in known:
        return []
    hint = did_you_mean(profile, known, lead=True)
    return [
        Problem(
            f"{where}.profile",
            f"unknown SimBench profile {profile!r}; {hint}known: {', '.join(known)}",
        )
    ]


class TariffComponent(Component):
    """Import and export prices (section ``tariff``): one ``tariff`` simulator."""

    name = "tariff"
    sections = (Section("tariff", TariffSpec, TariffSpec()),)
    order = 20

    def resolve(self, resolution: Resolution) -> list[Problem]:
        """The price file must exist."""
        price_csv = resolution.scenario.tariff.price_csv
        if price_csv and not Path(price_csv).is_file():
            return [Problem("tariff.price_csv", f"file {price_csv!r} not found")]
        return []

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """Read the price file as the run will."""
        from models.tariff import PRICE_LIMITS

        price_csv = scenario.tariff.price_csv
        if not (price_csv and Path(price_csv).is_file()):
            return []
        wanted: list[tuple[str, str, str, bool, tuple[float, float] | None]] = [
            (price_csv, "import_eur_kwh", "tariff.price_csv", True, PRICE_LIMITS),
            (price_csv, "export_eur_kwh", "tariff.price_csv", False, PRICE_LIMITS),
        ]
        return series_file_problems(scenario, wanted)

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """The price file."""
        return {"tariff.price_csv": scenario.tariff.price_csv}

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """The tariff simulator (every world has one)."""
        plan.add_model("tariff", [tariff_unit(scenario)])

    def wanted(self, scenario: Any) -> bool:
        """Always part of a world."""
        return True


def tariff_unit(scenario: Any) -> dict[str, Any]:
    """The tariff model's one unit."""
    return {"name": "tariff", **scenario.tariff.model_dump()}
