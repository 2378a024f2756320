"""What the twin's models take, from a scenario file or from plain dicts.

Every model is built as ``cls(units, clock, context)`` (see :class:`models.base.Model`)
and every :class:`twin.wrapper.ModelSimulator` is started with the same three pieces
(``init(sid, model=..., clock=clock.to_dict())``, ``create(1, units=..., context=...)``).
This module makes them for a mosaik world of your own:

- :func:`from_scenario` reads a scenario file (validated and resolved as ``twin run``
  does) and returns its :class:`Assembly`;
- :func:`units`, :func:`grid_units`, :func:`tariff_units`, :func:`context` and
  :func:`clock` turn plain dicts written like a scenario's lines into the same, with
  every default filled from the scenario schema; :func:`assemble` does all at once.

A dict that does not fit the schema raises :class:`SpecError` listing every problem
with its field path (``pv[0].p_kwp``) and what was expected.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from models.base import Clock
from twin import scenario as schema
from twin.assets import schema as assets
from twin.errors import Problem, ScenarioError, did_you_mean
from twin.units import parse_duration_s

__all__ = [
    "ASSET_KINDS",
    "Assembly",
    "SpecError",
    "assemble",
    "clock",
    "context",
    "from_scenario",
    "grid_units",
    "spec_class",
    "tariff_units",
    "units",
]

#: Kinds of units that sit at a bus, each a registered model.
ASSET_KINDS = ("pv", "battery", "load", "ev")


def spec_class(kind: str) -> type[BaseModel]:
    """The scenario schema class of ``kind`` (the one place that knows where it lives).

    Raises
    ------
    SpecError
        For a kind the schema does not have, naming the known ones.
    """
    classes: dict[str, type[BaseModel]] = {
        "pv": assets.PVSpec,
        "battery": assets.BatterySpec,
        "load": assets.LoadSpec,
        "ev": assets.EVSpec,
        "tariff": assets.TariffSpec,
        "grid": schema.GridSpec,
        "site": schema.Site,
        "scenario": schema.scenario_model(),
    }
    if kind not in classes:
        hint = did_you_mean(kind, list(classes), lead=True)
        raise SpecError(
            [Problem("kind", f"unknown kind {kind!r}; {hint}known: {', '.join(classes)}")]
        )
    return classes[kind]


class SpecError(ScenarioError):
    """Plain dicts that do not fit the scenario schema; lists every problem with its path."""

    def __init__(self, problems: list[Problem], source: str = "twin.assembly") -> None:
        super().__init__(problems, source)


@dataclass(frozen=True)
class Assembly:
    """Everything the twin's simulators of one site take.

    Attributes
    ----------
    clock : Clock
        The run's clock (``clock.to_dict()`` is what ``ModelSimulator.init`` takes).
    context : dict
        ``site``, ``weather``, ``grid`` and ``seed``: the ``context`` of ``create``.
    units : dict of str to list of dict
        Unit dicts per model name: the asset kinds present, ``tariff`` and ``grid``.
    """

    clock: Clock
    context: dict[str, Any]
    units: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _problems(error: ValidationError, where: str, spec: type[BaseModel]) -> list[Problem]:
    """Pydantic's errors as problems with a field path under ``where``."""
    problems = []
    for item in error.errors():
        path = where
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            key = str(item["loc"][-1])
            fields = list(spec.model_fields) if len(item["loc"]) == 1 else []
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = f" (expected one of: {', '.join(fields)})" if fields else ""
            message = f"unknown key{hint}{known}"
        else:
            message = item["msg"].removeprefix("Value error, ")
            if "got " not in message and not isinstance(item.get("input"), dict | list):
                message += f" (got {item.get('input')!r})"
        problems.append(Problem(path, message))
    return problems


def _validate(kind: str, data: Any, where: str) -> tuple[BaseModel | None, list[Problem]]:
    spec = spec_class(kind)
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, Mapping):
        return None, [Problem(where, f"expected a mapping of fields, got {type(data).__name__}")]
    try:
        return spec.model_validate(dict(data)), []
    except ValidationError as exc:
        return None, _problems(exc, where, spec)


def _checked(kind: str, data: Any, where: str) -> BaseModel:
    valid, problems = _validate(kind, data, where)
    if problems or valid is None:
        raise SpecError(problems)
    return valid


def _grid_spec(grid: str | Mapping[str, Any] | BaseModel) -> BaseModel:
    return _checked("grid", {"source": grid} if isinstance(grid, str) else grid, "grid")


def units(
    kind: str,
    dicts: Sequence[Mapping[str, Any]],
    *,
    grid: str | Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Full, validated unit dicts of an asset kind, from dicts written like a scenario's.

    Parameters
    ----------
    kind : str
        One of :data:`ASSET_KINDS` (``"pv"``, ``"battery"``, ``"load"``, ``"ev"``).
    dicts : sequence of dict
        One dict per unit, as under ``assets.<kind>`` of a scenario
        (``{"name": "pv1", "bus": 1, "p_dc_kw": 10}``); missing fields take the
        schema's defaults, a missing ``name`` becomes ``<kind>_<i>``.
    grid : str or dict, optional
        The grid (a source string or a ``grid`` section): needed only to resolve bus
        *names* to indices.

    Returns
    -------
    list of dict
        What the model of ``kind`` takes as ``units``.

    Raises
    ------
    SpecError
        Listing every problem with its path (``pv[0].p_dc_kw``).
    """
    if kind not in ASSET_KINDS:
        raise SpecError(
            [Problem("kind", f"expected one of {', '.join(ASSET_KINDS)}, got {kind!r}")]
        )
    if isinstance(dicts, Mapping) or not isinstance(dicts, Sequence):
        raise SpecError([Problem(kind, "expected a list with one dict per unit")])
    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    net = None
    for i, data in enumerate(dicts):
        where = f"{kind}[{i}]"
        valid, found = _validate(kind, data, where)
        problems += found
        if valid is None:
            continue
        unit = valid.model_dump()
        unit["name"] = unit["name"] or f"{kind}_{i}"
        if unit["name"] in names:
            problems.append(
                Problem(
                    f"{where}.name", f"name {unit['name']!r} already used by {names[unit['name']]}"
                )
            )
        names[unit["name"]] = where
        if unit.get("from_grid"):
            problems.append(
                Problem(
                    f"{where}.from_grid",
                    "the grid's own loads come with a scenario file (from_scenario); "
                    "give each load a bus here",
                )
            )
        elif isinstance(unit["bus"], str):
            if grid is None:
                problems.append(Problem(f"{where}.bus", "a bus name needs grid=... to resolve it"))
            else:
                from models.gridnet import bus_index, load_net

                source = _grid_spec(grid).source  # type: ignore[attr-defined]
                net = net if net is not None else load_net(source)
                try:
                    unit["bus"] = bus_index(net, unit["bus"])
                except KeyError as exc:
                    problems.append(Problem(f"{where}.bus", f"{exc.args[0]} of grid {source!r}"))
        out.append(unit)
    if problems:
        raise SpecError(problems)
    return out


def grid_units(grid: str | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The one unit of the ``grid`` model: its point of connection ``"poc"``.

    Parameters
    ----------
    grid : str or dict
        A source (SimBench code, ``pandapower.networks`` name, JSON path) or a
        ``grid`` section (``{"source": ..., "solver": "pandapower"}``).
    """
    spec = _grid_spec(grid)
    return [{"name": "poc", "grid": spec.source, "solver": spec.solver}]  # type: ignore[attr-defined]


def tariff_units(tariff: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The one unit of the ``tariff`` model, from a ``tariff`` section (defaults if none)."""
    return [{"name": "tariff", **_checked("tariff", tariff or {}, "tariff").model_dump()}]


def context(
    *,
    site: Mapping[str, Any],
    grid: str | Mapping[str, Any],
    weather: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The run-wide context every model takes.

    Parameters
    ----------
    site : dict
        ``lat``, ``lon`` (degrees), ``tz`` (IANA zone) and optionally ``altitude`` (m).
    grid : str or dict
        The grid's source or ``grid`` section (load profiles of SimBench grids come
        from it).
    weather : str or Path, optional
        A TMY3/TMY2 file or the name of one pvlib ships (the scenario default if none).
    seed : int
        Seed of every stochastic model (EV arrivals).

    Raises
    ------
    SpecError
        For a site, grid, weather file or seed the scenario schema would refuse.
    """
    from models.weather import resolve_weather_path

    problems: list[Problem] = []
    site_spec, found = _validate("site", site, "site")
    problems += found
    grid_spec, found = _validate(
        "grid", {"source": grid} if isinstance(grid, str) else grid, "grid"
    )
    problems += found
    if weather is None:
        weather = spec_class("scenario").model_fields["weather"].default
    try:
        resolve_weather_path(weather)
    except FileNotFoundError as exc:
        problems.append(Problem("weather", str(exc)))
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        problems.append(Problem("seed", f"expected a whole number 0..2**32-1, got {seed!r}"))
    if problems or site_spec is None or grid_spec is None:
        raise SpecError(problems)
    return {
        "site": site_spec.model_dump(),
        "weather": str(weather),
        "grid": grid_spec.source,  # type: ignore[attr-defined]
        "seed": seed,
    }


def clock(start: str | datetime | pd.Timestamp, step: str | int, duration: str | int) -> Clock:
    """The run's clock from a tz-aware start, a step and a duration.

    Parameters
    ----------
    start : str, datetime or pandas.Timestamp
        Tz-aware start (``"2016-06-21T00:00-04:00"``).
    step, duration : str or int
        ``"15min"``, ``"1h"``, ``"1d"``... or whole seconds; the duration a whole
        number of steps.

    Raises
    ------
    SpecError
        For a naive or unreadable start, a malformed step or duration, or a duration
        that is not a whole number of steps.
    """
    problems: list[Problem] = []
    try:
        start_ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise SpecError(
            [Problem("start", f"expected a tz-aware time, got {start!r} ({exc})")]
        ) from None
    if start_ts.tzinfo is None:
        problems.append(
            Problem("start", f"expected a tz-aware time ('2016-06-21T00:00-04:00'), got {start!r}")
        )
    seconds = {}
    for name, value in (("step", step), ("duration", duration)):
        try:
            seconds[name] = parse_duration_s(value)
        except ValueError as exc:
            problems.append(Problem(name, str(exc)))
    if len(seconds) == 2 and seconds["duration"] % seconds["step"]:
        problems.append(
            Problem("duration", f"duration {duration!r} is not a whole number of steps {step!r}")
        )
    if problems:
        raise SpecError(problems)
    return Clock(start_ts, seconds["step"], seconds["duration"] // seconds["step"])


def assemble(
    *,
    start: str | datetime | pd.Timestamp,
    step: str | int,
    duration: str | int,
    site: Mapping[str, Any],
    grid: str | Mapping[str, Any],
    weather: str | Path | None = None,
    seed: int = 0,
    assets: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    tariff: Mapping[str, Any] | None = None,
) -> Assembly:
    """All of :func:`clock`, :func:`context` and the units at once, from plain dicts.

    ``assets`` maps asset kinds to unit dicts as a scenario's ``assets`` section does.

    Raises
    ------
    SpecError
        Listing every problem of every part.
    """
    problems: list[Problem] = []
    parts: dict[str, Any] = {}
    steps: list[tuple[str, Any]] = [
        ("clock", lambda: clock(start, step, duration)),
        ("context", lambda: context(site=site, grid=grid, weather=weather, seed=seed)),
        ("tariff", lambda: tariff_units(tariff)),
        ("grid", lambda: grid_units(grid)),
    ]
    unknown = sorted(set(assets or {}) - set(ASSET_KINDS))
    for kind in unknown:
        problems.append(
            Problem(kind, f"unknown asset kind; expected one of {', '.join(ASSET_KINDS)}")
        )
    for kind in ASSET_KINDS:
        if (assets or {}).get(kind):
            steps.append((kind, lambda kind=kind: units(kind, assets[kind], grid=grid)))  # type: ignore[index]
    for name, make in steps:
        try:
            parts[name] = make()
        except SpecError as exc:
            problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise SpecError(problems)
    all_units = {k: parts[k] for k in ASSET_KINDS if k in parts}
    all_units.update(tariff=parts["tariff"], grid=parts["grid"])
    return Assembly(parts["clock"], parts["context"], all_units)


def from_scenario(
    scenario: schema.ScenarioBase | str | Path, overrides: list[str] | None = None
) -> Assembly:
    """The clock, context and units of a scenario file, as ``twin run`` builds them.

    Parameters
    ----------
    scenario : Scenario, str or Path
        A scenario file (validated and resolved: the grid's own loads expanded, bus
        names resolved) or a :class:`twin.scenario.Scenario` already loaded.
    overrides : list of str, optional
        ``--set``-style overrides (``["assets.pv[0].p_dc_kw=20"]``) for a file.

    Raises
    ------
    ScenarioError
        For an invalid scenario file, listing every problem.
    """
    from twin.world import plan_world

    if not isinstance(scenario, schema.ScenarioBase):
        scenario = schema.load_scenario(scenario, overrides)
    # the plan of the run itself: one source of truth for what each model is given
    plan = plan_world(scenario, scenario.output_dir(), run_id="assembly")
    plant = {role: sim.params["units"] for role, sim in plan.fleets.items() if role != "controller"}
    return Assembly(plan.clock, plan.context, plant)
