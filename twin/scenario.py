"""Scenario schema, loading and validation.

A scenario is a YAML file. :func:`load_scenario` reads it, applies ``--set``
overrides, validates it against the schema and against the grid it names, and returns
a resolved scenario (bus indices, loads taken from the grid expanded). Every problem is
reported at once, with the path of the field (``assets.battery[0].e_kwh``) and what was
expected.

The schema is composed: this module holds the core (name, time span, site, grid,
weather, where outputs go); every other section belongs to a component
(:mod:`twin.component`) that declares it, and :func:`scenario_model` builds the scenario
model from the core and every available component's sections. ``Scenario`` is that
model for the components installed now.
"""

from __future__ import annotations

import functools
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from models.base import Clock
from twin.bounds import (
    MAX_DESCRIPTION,
    MAX_DURATION_S,
    MAX_TEXT,
    START_YEARS,
    OutputDir,
    SafeName,
    bounded,
    whole,
)
from twin.errors import Problem, ScenarioError, TwinError, did_you_mean
from twin.inputs import parse_yaml, read_yaml
from twin.limits import run_size
from twin.units import parse_duration_s

__all__ = [
    "ClockSpec",
    "ScenarioBase",
    "check_start_year",
    "check_whole_steps",
    "Strict",
    "apply_overrides",
    "field_names",
    "load_scenario",
    "scenario_model",
    "series_file_problems",
    "validate_scenario",
]


def _duration(value: str) -> str:
    parse_duration_s(value)  # raises with the accepted form
    return value


Duration = Annotated[str, AfterValidator(_duration)]
BusRef = whole(0, 10_000_000) | Annotated[str, Field(max_length=200)]


class Strict(BaseModel):
    """Base of every scenario section: unknown keys are errors; numbers finite; text short."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, allow_inf_nan=False, str_max_length=MAX_TEXT
    )


class Site(Strict):
    """Where the site is: position (degrees), altitude (m) and IANA time zone."""

    lat: bounded(-90.0, 90.0)
    lon: bounded(-180.0, 180.0)
    altitude: bounded(-500.0, 9000.0) = 0.0
    tz: Annotated[str, Field(max_length=64)]
    #: A weather file recorded farther away than this (km) is a validation problem.
    max_weather_distance_km: bounded(0.001, 40_100.0) = 100.0

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA time zone such as 'Europe/Berlin', got {value!r}"
            ) from None
        return value


class GridSpec(Strict):
    """The grid: ``source`` is a SimBench code, a pandapower network name or a JSON file."""

    source: str
    solver: Literal["fast", "pandapower"] = "fast"
    v_min_pu: bounded(0.5, 1.0) = 0.90
    v_max_pu: bounded(1.0, 1.5) = 1.10


class Outputs(Strict):
    """Where results go and how large they may grow (components add ``outputs.<key>``)."""

    dir: OutputDir = "runs/{name}"
    max_memory_gb: bounded(0.0, 1024.0, low_open=True) = 4.0
    max_disk_gb: bounded(0.0, 10_000.0, low_open=True) = 10.0


def check_start_year(value: Any) -> Any:
    """``value`` (a start time) if its year is in :data:`twin.bounds.START_YEARS`.

    Raises
    ------
    ValueError
        Naming the accepted years.
    """
    if not START_YEARS[0] <= value.year <= START_YEARS[1]:
        raise ValueError(
            f"expected a start in the years {START_YEARS[0]}..{START_YEARS[1]}, got {value}"
        )
    return value


def check_whole_steps(duration: str, step: str) -> None:
    """A run's span: at most :data:`twin.bounds.MAX_DURATION_S`, a whole number of steps.

    Raises
    ------
    ValueError
        Saying which of the three does not hold.
    """
    duration_s, step_s = parse_duration_s(duration), parse_duration_s(step)
    if duration_s > MAX_DURATION_S:
        raise ValueError(
            f"expected a duration of at most {MAX_DURATION_S // 86400}d, got {duration}"
        )
    if step_s > duration_s:
        raise ValueError(f"expected step <= duration, got {step} > {duration}")
    if duration_s % step_s:
        raise ValueError(f"duration {duration} is not a whole number of steps {step}")


class ClockSpec(Strict):
    """The clock of a run alone: start, duration and step (as in a scenario)."""

    start: AwareDatetime
    duration: Duration
    step: Duration

    @field_validator("start")
    @classmethod
    def _start_year(cls, value: Any) -> Any:
        return check_start_year(value)

    @model_validator(mode="after")
    def _whole_steps(self) -> ClockSpec:
        check_whole_steps(self.duration, self.step)
        return self


class ScenarioBase(Strict):
    """The core of every scenario; :func:`scenario_model` adds the components' sections."""

    name: SafeName
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""
    start: AwareDatetime
    duration: Duration
    step: Duration
    seed: whole(0, 2**32 - 1) = 0
    site: Site
    grid: GridSpec
    weather: str = "723170TYA.CSV"
    outputs: Outputs = Outputs()

    @field_validator("start")
    @classmethod
    def _start_year(cls, value: Any) -> Any:
        return check_start_year(value)

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_shorthand(cls, value: Any) -> Any:
        return {"source": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _whole_steps(self) -> ScenarioBase:
        check_whole_steps(self.duration, self.step)
        return self

    @property
    def start_ts(self) -> pd.Timestamp:
        """Tz-aware start."""
        return pd.Timestamp(self.start)

    def clock(self) -> Clock:
        """The run's clock."""
        step_s = parse_duration_s(self.step)
        return Clock(self.start_ts, step_s, parse_duration_s(self.duration) // step_s)

    def units(self, kind: str) -> list[dict[str, Any]]:
        """Parameter dicts of the assets of ``kind`` (of the ``assets`` component)."""
        return [spec.model_dump() for spec in getattr(self.assets, kind)]

    def output_dir(self) -> Path:
        """Output directory with ``{name}`` filled in."""
        return Path(self.outputs.dir.format(name=self.name))


# --- the scenario model, composed from the core and the components -------------------------


class ComponentSectionError(TwinError):
    """Two components (or a component and the core) claim the same scenario key."""


def scenario_model() -> type[ScenarioBase]:
    """The scenario model of the core and every available component's sections."""
    from twin.component import component_classes

    return _compose(tuple(component_classes()))


@functools.lru_cache(maxsize=16)
def _compose(classes: tuple[type[Any], ...]) -> type[ScenarioBase]:
    top: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for cls in classes:
        for section in cls.sections:
            key = section.key
            inner = key.removeprefix("outputs.")
            taken = Outputs.model_fields if inner != key else ScenarioBase.model_fields
            if key in owner or inner in taken:
                raise ComponentSectionError(
                    f"component {cls.name!r} declares section {key!r}, already owned by "
                    f"{owner.get(key, 'the core')}"
                )
            owner[key] = repr(cls.name)
            (nested if inner != key else top)[inner] = (section.annotation, section.default)
    outputs = create_model("ComposedOutputs", __base__=Outputs, **nested)
    return create_model("Scenario", __base__=ScenarioBase, outputs=(outputs, outputs()), **top)


def __getattr__(name: str) -> Any:
    # the composed models, for ``from twin.scenario import Scenario`` and for pickle
    if name == "Scenario":
        return scenario_model()
    if name == "ComposedOutputs":
        return scenario_model().model_fields["outputs"].annotation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- problems reported with their field path ------------------------------------------------


def _path(loc: tuple[Any, ...], names: frozenset[str], keyed: frozenset[str] = frozenset()) -> str:
    """The field path of an error location: fields, list indices and mapping keys.

    Other parts of a pydantic location (the member of a union it tried) are left out.
    """
    out = ""
    key_next = False  # the previous part is a mapping field: this part is one of its keys
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif key_next or part in names:
            out += f".{part}" if out else str(part)
        key_next = not key_next and part in keyed
    return out


def _is_mapping(annotation: Any) -> bool:
    """A ``dict[...]`` annotation, also inside a union (``dict[str, X] | None``)."""
    return typing.get_origin(annotation) is dict or any(
        typing.get_origin(a) is dict for a in typing.get_args(annotation)
    )


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _all_fields(model: type[BaseModel], seen: set[str]) -> set[str]:
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for sub in _models_in(field.annotation):
            if sub.__name__ not in seen:
                seen.add(sub.__name__)
                names |= _all_fields(sub, seen)
    return names


def field_names(model: type[BaseModel] | None = None) -> frozenset[str]:
    """Every field name in ``model`` (default: the scenario model) and its sub-models."""
    return _field_names(model or scenario_model())


@functools.lru_cache(maxsize=16)
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(_all_fields(model, set()))


@functools.lru_cache(maxsize=16)
def _keyed_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields (of ``model`` and its sub-models) mapping names to sub-models."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _is_mapping(annotation) and _models_in(annotation):
            names.add(name)
        for sub in _models_in(annotation):
            names |= _keyed_fields(sub)
    return frozenset(names)


def _unknown_keys(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[Problem]:
    if not isinstance(data, dict):
        return []
    problems = []
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            name = _short(str(key), quote=False)
            hint = did_you_mean(str(key)[:100], list(fields))
            problems.append(
                Problem(
                    f"{_path(loc, field_names(), _keyed_fields(scenario_model()))}.{name}"
                    if loc
                    else name,
                    f"unknown key {_short(key)}{hint} (expected one of: {', '.join(fields)})",
                )
            )
            continue
        annotation = fields[key].annotation
        subs = _models_in(annotation)
        if not subs:
            continue
        origin = typing.get_origin(annotation)
        is_list = origin is list or any(
            typing.get_origin(a) is list for a in typing.get_args(annotation)
        )
        is_dict = _is_mapping(annotation)
        if is_list and isinstance(value, list):
            for i, item in enumerate(value):
                problems += _unknown_keys(subs[0], item, (*loc, key, i))
        elif is_dict and isinstance(value, dict):
            for name, item in value.items():
                problems += _unknown_keys(subs[0], item, (*loc, key, name))
        else:
            problems += _unknown_keys(subs[0], value, (*loc, key))
    return problems


#: Fields whose value may hold a secret (a URL may carry ``user:password@``): an error
#: about them never echoes the value.
SECRET_FIELDS = frozenset({"password", "token", "url", "broker"})


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("missing",):
        return "required field is missing"
    value = error.get("input")
    if any(str(part) in SECRET_FIELDS for part in error["loc"]):
        return message  # never echo a secret
    if (
        error["type"] not in ("model_type", "dict_type")
        and not isinstance(value, dict | list)
        and "got " not in message
    ):
        message += f" (got {_short(value)})"
    return message


def _short(value: Any, limit: int = 80, *, quote: bool = True) -> str:
    """``repr`` (or ``str``) of a value, cut to ``limit`` characters (it may be huge)."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


def _schema_problems(raw: dict[str, Any]) -> tuple[ScenarioBase | None, list[Problem]]:
    model = scenario_model()
    problems = _unknown_keys(model, raw, ())
    try:
        scenario = model.model_validate(_drop_unknown(model, raw))
    except ValidationError as exc:
        for problem in _validation_problems(model, exc):
            if problem not in problems:
                problems.append(problem)
        return None, problems
    return (None if problems else scenario), problems


def _validation_problems(model: type[BaseModel], exc: ValidationError) -> list[Problem]:
    """One problem per error of a failed validation, at its field path."""
    names, keyed = field_names(model), _keyed_fields(model)
    return [Problem(_path(error["loc"], names, keyed), _describe(error)) for error in exc.errors()]


def _drop_unknown(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key not in model.model_fields:
            continue
        annotation = model.model_fields[key].annotation
        subs = _models_in(annotation)
        keyed = _is_mapping(annotation)
        if subs and isinstance(value, list):
            out[key] = [_drop_unknown(subs[0], v) for v in value]
        elif subs and keyed and isinstance(value, dict):
            out[key] = {name: _drop_unknown(subs[0], v) for name, v in value.items()}
        elif subs:
            out[key] = _drop_unknown(subs[0], value)
        else:
            out[key] = value
    return out


def _resolve(scenario: ScenarioBase) -> tuple[ScenarioBase, list[Problem]]:
    """Resolve the scenario against its grid, weather and files: every component's part."""
    from models.gridnet import GridSourceError, load_tables, unsupported_elements
    from twin.component import Resolution, components, section_value
    from twin.weather_checks import weather_problems

    problems: list[Problem] = weather_problems(scenario)
    try:
        net = load_tables(scenario.grid.source)  # no pandapower import from a warm cache
    except GridSourceError as exc:
        return scenario, [*problems, Problem("grid.source", str(exc))]
    problems += [Problem("grid.source", problem) for problem in unsupported_elements(net)]

    data = scenario.model_dump(mode="json")
    active = components()
    for component in active:
        for section in component.sections:
            if section.keep_validated:  # as validated: a JSON dump masks SecretStr values
                *parents, key = section.key.split(".")
                node = data
                for parent in parents:
                    node = node[parent]
                node[key] = section_value(scenario, section.key)
    resolution = Resolution(scenario, data, net)
    for component in active:
        problems += component.resolve(resolution)
    try:
        resolved = type(scenario).model_validate(data)
    except ValidationError as exc:  # what resolution brought in (the grid's loads) is refused
        note = " (as resolved against the grid and input files)"
        found = _validation_problems(type(scenario), exc)
        return scenario, [*problems, *(Problem(p.path, p.message + note) for p in found)]
    for component in active:
        problems += component.problems(resolved, resolution)
    problems += _size_problems(resolved, len(net.bus), len(net.line), len(net.trafo))
    return resolved, problems


def _size_problems(
    scenario: ScenarioBase, n_buses: int, n_lines: int, n_trafos: int
) -> list[Problem]:
    """Refuse a run that would not fit the memory and disk limits of ``outputs``.

    Disk: every recorded value (``results.parquet``). Memory: what grows with the steps
    up to a window once results stream to disk (the KPIs' tables, the exogenous series).
    """
    size = run_size(scenario, n_buses, n_lines, n_trafos)
    problems = []
    for need, limit, key, what, counted in (
        (
            size.memory_bytes,
            scenario.outputs.max_memory_gb,
            "max_memory_gb",
            "memory",
            f"up to {min(size.steps, size.kpi_window_steps or size.steps):,} steps at once "
            f"x about {size.kpi_series:,} series the KPIs read, and {size.units:,} units' "
            "exogenous series,",
        ),
        (
            size.disk_bytes,
            scenario.outputs.max_disk_gb,
            "max_disk_gb",
            "disk",
            f"{size.steps:,} steps x about {size.series:,} recorded series = "
            f"{size.values:,} values",
        ),
    ):
        if need > limit * 1e9:
            problems.append(
                Problem(
                    "duration",
                    f"{counted} need about {need / 1e9:.1f} GB of {what}, above the limit "
                    f"outputs.{key} = {limit:g} GB; shorten the duration, lengthen the step, "
                    f"or raise the limit (--set outputs.{key}=...)",
                )
            )
    return problems


def series_file_problems(
    scenario: ScenarioBase,
    wanted: list[tuple[str, str, str, bool, tuple[float, float] | None]],
) -> list[Problem]:
    """Read CSV time series as the run will: gaps, bad cells and short files.

    ``wanted``: (path, column, field path, required, value limits) as the models read
    them. Uses :func:`models.profiles.csv_series_means` with the scenario's clock, so a
    file that passes validation is a file the run can use (and the reverse).
    """
    from models.profiles import MissingColumnError, SeriesFileError, csv_series_means

    clock = scenario.clock()
    problems = []
    for path, column, where, required, limits in wanted:
        try:
            csv_series_means(path, column, clock, limits)
        except MissingColumnError as exc:
            if required:
                problems.append(Problem(where, str(exc)))
        except SeriesFileError as exc:
            problems.append(Problem(where, str(exc)))
    return list(dict.fromkeys(problems))  # a file unreadable for two columns: once


def validate_scenario(raw: Any, source: str = "scenario") -> ScenarioBase:
    """Validate a raw scenario mapping and resolve it against its grid.

    Raises
    ------
    ScenarioError
        Listing every problem with its field path.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of fields, got {type(raw).__name__}")], source
        )
    scenario, problems = _schema_problems(raw)
    if scenario is None:
        raise ScenarioError(problems, source)
    resolved, problems = _resolve(scenario)
    if problems:
        raise ScenarioError(problems, source)
    return resolved


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``path=value`` overrides (``assets.battery[0].e_kwh=20``) to a raw scenario.

    Values are parsed as YAML (numbers, booleans, lists). Missing intermediate keys are
    created; list indices must exist.

    Raises
    ------
    ScenarioError
        For a malformed override or an index that does not exist.
    """
    import re

    token = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
    for item in overrides:
        if "=" not in item:
            raise ScenarioError([Problem(item, "expected --set path=value")], "--set")
        path, text = item.split("=", 1)
        parts: list[str | int] = [
            m.group(1) if m.group(1) is not None else int(m.group(2)) for m in token.finditer(path)
        ]
        if not parts:
            raise ScenarioError([Problem(path, "empty path in --set")], "--set")
        node: Any = raw
        for here, nxt in zip(parts, parts[1:], strict=False):
            try:
                if isinstance(here, int):
                    node = node[here]
                else:
                    node = node.setdefault(here, [] if isinstance(nxt, int) else {})
            except (IndexError, TypeError, AttributeError):
                raise ScenarioError(
                    [Problem(path, f"no element {here!r} to set")], "--set"
                ) from None
        value = parse_yaml(text, "--set", path)
        try:
            node[parts[-1]] = value
        except (IndexError, TypeError):
            raise ScenarioError([Problem(path, f"cannot set {parts[-1]!r}")], "--set") from None
    return raw


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> ScenarioBase:
    """Read, override, validate and resolve a scenario file.

    Raises
    ------
    ScenarioError
        For a missing or unparsable file and for every invalid field.
    """
    path = Path(path)
    raw = read_yaml(path, "scenario")
    if isinstance(raw, dict):
        if isinstance(raw.get("grid"), str):  # shorthand, so that --set grid.solver=... works
            raw["grid"] = {"source": raw["grid"]}
        raw = apply_overrides(raw, overrides or [])
    return validate_scenario(raw, str(path))
