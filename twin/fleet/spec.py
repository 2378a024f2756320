"""The fleet file: several sites on one clock, each a scenario of its own.

::

    kind: fleet                      # or simply a top-level `sites:` key
    name: lv_sites
    start: 2016-06-21T00:00:00-04:00 # the one clock of every site
    duration: 1d
    step: 15min
    seed: 7                          # site i runs with the seed derived from (7, i)
    mode: world                      # one mosaik world, or `split`: a run per site
    sites:
      - site: farm                   # the site's name: its `site` tag and directory
        scenario: ../microgrid_day.yaml   # a template, relative to the fleet file...
        set: ["assets.pv[0].p_dc_kw=60"]  # ...with `twin run --set` overrides
      - site: depot
        scenario: {...}              # or the scenario inline

Each site is validated by the scenario machinery (:func:`twin.scenario.validate_scenario`);
a problem's field path starts with the site's place in the file
(``sites[3].assets.pv[0].bus``). The fleet imposes its clock and seeds: a template's own
``start``, ``duration``, ``step``, ``seed`` and ``name`` are replaced (it is a template),
while a site that *asks* for another clock (an inline scenario or a ``set`` override
giving a different ``start``, ``duration`` or ``step``, or a ``set`` of ``seed`` or
``name``) is an error: one clock, one seed rule, one name per site. A template's
``outputs.dir`` is not used (a site writes to ``<fleet run dir>/sites/<site>/``); its
size limits (``outputs.max_memory_gb``...) hold per site.

``mode: world`` costs more per site the more sites share the world: mosaik 3.6 brings
every simulator's progress up to date after each simulator's step
(``mosaik/scheduler.py`` ``sim_process``, its own TODO), so a step costs in the square
of the simulators (about six per site). Beyond ten or so sites ``split`` is faster
(BENCHMARKS.md, "Many plants").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from twin.errors import Problem, ScenarioError
from twin.inputs import read_yaml
from twin.limits import NAME_MAX, name_problems

__all__ = [
    "FLEET_KEYS",
    "MAX_SITES",
    "MODES",
    "Fleet",
    "FleetSite",
    "is_fleet",
    "load_fleet",
    "site_seed",
    "validate_fleet",
]

#: Keys of a fleet file.
FLEET_KEYS = ("kind", "name", "description", "start", "duration", "step", "seed", "mode", "sites")
#: Keys of one entry of ``sites``.
SITE_KEYS = ("site", "scenario", "set")
#: How a fleet runs: every site in one world, or each in a run (process) of its own.
MODES = ("world", "split")
#: Most sites one fleet file may hold.
MAX_SITES = 10_000
#: What a fleet imposes on every site (a template's own values are replaced).
IMPOSED = ("name", "start", "duration", "step", "seed")
#: Longest site name: it prefixes simulator ids (``<site>-grid``) in one world.
SITE_NAME_MAX = 64


@dataclass(frozen=True)
class FleetSite:
    """One site of a fleet.

    Its name, place in the file, raw scenario (the fleet's clock, seed and name
    imposed) and the scenario validated and resolved from it.
    """

    name: str
    index: int
    raw: dict[str, Any]
    scenario: Any


@dataclass(frozen=True)
class Fleet:
    """A validated fleet file (:func:`load_fleet`)."""

    name: str
    start: str
    duration: str
    step: str
    seed: int
    mode: str
    sites: tuple[FleetSite, ...]
    description: str = ""

    def output_dir(self) -> Path:
        """The default fleet run directory, ``runs/<name>``."""
        return Path("runs") / self.name


def is_fleet(raw: Any) -> bool:
    """Whether a YAML document is a fleet file (``kind: fleet`` or a ``sites`` key)."""
    return isinstance(raw, dict) and (raw.get("kind") == "fleet" or "sites" in raw)


def site_seed(seed: int, index: int) -> int:
    """The seed of site ``index`` of a fleet seeded ``seed`` (deterministic, 32 bits)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet file (site templates relative to it).

    Raises
    ------
    ScenarioError
        Every problem of the file and of every site, with its field path.
    """
    path = Path(path)
    return validate_fleet(read_yaml(path, "fleet"), path.parent, str(path))


def validate_fleet(raw: Any, base_dir: Path, source: str = "fleet") -> Fleet:
    """Validate a fleet mapping; site scenario paths are relative to ``base_dir``.

    Raises
    ------
    ScenarioError
        Every problem of the fleet and of every site, with its field path.
    """
    from pydantic import ValidationError

    from twin.scenario import ClockSpec, _validation_problems

    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of fields, got {type(raw).__name__}")], source
        )
    problems = [
        Problem(str(key), f"unknown key; expected {', '.join(FLEET_KEYS)}")
        for key in raw
        if key not in FLEET_KEYS
    ]
    if raw.get("kind", "fleet") != "fleet":
        problems.append(Problem("kind", f"expected 'fleet', got {raw['kind']!r}"))
    name = raw.get("name")
    problems += [Problem("name", message) for message in name_problems(name, NAME_MAX)]
    try:
        clock = ClockSpec.model_validate({k: raw.get(k) for k in ("start", "duration", "step")})
    except ValidationError as exc:
        # the span as a whole (step, duration) is the duration's problem
        found = _validation_problems(ClockSpec, exc)
        problems += [Problem(p.path or "duration", p.message) for p in found]
        clock = None
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        problems.append(Problem("seed", f"expected a whole number 0..2**32-1, got {seed!r}"))
    mode = raw.get("mode", "world")
    if mode not in MODES:
        problems.append(Problem("mode", f"expected one of {', '.join(MODES)}, got {mode!r}"))
    entries = raw.get("sites")
    if not isinstance(entries, list) or not entries:
        problems.append(Problem("sites", "expected a non-empty list of sites"))
        entries = []
    elif len(entries) > MAX_SITES:
        problems.append(Problem("sites", f"{len(entries):,} sites; expected at most {MAX_SITES:,}"))
        entries = []
    problems += _entry_problems(entries)
    if problems or clock is None:
        raise ScenarioError(problems, source)
    sites = []
    for i, entry in enumerate(entries):
        site, found = _site(entry, i, clock, seed, base_dir)
        problems += found
        if site is not None:
            sites.append(site)
    if problems:
        raise ScenarioError(problems, source)
    return Fleet(
        name=name,
        start=clock.start.isoformat(),
        duration=clock.duration,
        step=clock.step,
        seed=seed,
        mode=mode,
        sites=tuple(sites),
        description=str(raw.get("description", "")),
    )


def _entry_problems(entries: list[Any]) -> list[Problem]:
    """The shape of every ``sites`` entry and unique, world-safe site names."""
    problems = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"sites[{i}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, "expected a mapping {site, scenario, set}"))
            continue
        problems += [
            Problem(f"{where}.{key}", f"unknown key; expected {', '.join(SITE_KEYS)}")
            for key in entry
            if key not in SITE_KEYS
        ]
        name = entry.get("site")
        found = name_problems(name, SITE_NAME_MAX)
        if not found and "." in name:
            found = [f"expected no '.' (simulator ids are <site>-<sid>.<entity>), got {name!r}"]
        problems += [Problem(f"{where}.site", message) for message in found]
        if not found and name in seen:
            problems.append(
                Problem(f"{where}.site", f"name {name!r} already used by sites[{seen[name]}]")
            )
        elif not found:
            seen[name] = i
        scenario = entry.get("scenario")
        if not (isinstance(scenario, dict) or (isinstance(scenario, str) and scenario)):
            problems.append(
                Problem(f"{where}.scenario", "expected the path of a scenario file or a mapping")
            )
        overrides = entry.get("set", [])
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            problems.append(Problem(f"{where}.set", "expected a list of path=value overrides"))
    return problems


def _site(
    entry: dict[str, Any], i: int, clock: Any, seed: int, base_dir: Path
) -> tuple[FleetSite | None, list[Problem]]:
    """One site: its template, the fleet's clock and seed imposed, validated."""
    from twin.scenario import apply_overrides, validate_scenario

    where = f"sites[{i}]"
    template = entry["scenario"]
    if isinstance(template, str):
        try:
            path = (base_dir / template).resolve()
            found = path.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long
            found = False
        if not found:
            return None, [
                Problem(f"{where}.scenario", f"scenario {template!r} not found (in {base_dir})")
            ]
        try:
            raw = read_yaml(path, "scenario")
        except ScenarioError as exc:
            return None, [Problem(f"{where}.scenario", str(p)) for p in exc.problems]
        if not isinstance(raw, dict):
            return None, [Problem(f"{where}.scenario", f"{template!r} is not a mapping")]
        problems: list[Problem] = []
    else:
        raw = copy.deepcopy(template)
        problems = _clock_clashes(raw, clock, f"{where}.scenario")
    overrides = entry.get("set", [])
    for j, item in enumerate(overrides):
        key = item.split("=", 1)[0].strip()
        if key in IMPOSED:
            problems.append(
                Problem(
                    f"{where}.set[{j}]",
                    f"{key} is the fleet's (one clock, seeds derived from the fleet's seed, "
                    "the site's name): set it at the top of the fleet file",
                )
            )
    if problems:
        return None, problems
    if isinstance(raw.get("grid"), str):  # shorthand, so that set: grid.solver=... works
        raw["grid"] = {"source": raw["grid"]}
    try:
        raw = apply_overrides(raw, overrides)
    except ScenarioError as exc:
        return None, [Problem(f"{where}.set: {p.path}", p.message) for p in exc.problems]
    raw.update(
        name=entry["site"],
        start=clock.start.isoformat(),
        duration=clock.duration,
        step=clock.step,
        seed=site_seed(seed, i),
    )
    try:
        scenario = validate_scenario(raw, f"site {entry['site']}")
    except ScenarioError as exc:
        return None, [
            Problem(f"{where}.{p.path}" if p.path else where, p.message) for p in exc.problems
        ]
    return FleetSite(entry["site"], i, raw, scenario), []


def _clock_clashes(raw: dict[str, Any], clock: Any, where: str) -> list[Problem]:
    """An inline scenario's own start, duration or step, where they differ from the fleet's."""
    from twin.units import parse_duration_s

    def same_start(value: Any) -> bool:
        return bool(pd.Timestamp(value) == pd.Timestamp(clock.start))

    def same_length(key: str) -> Any:
        return lambda value: parse_duration_s(str(value)) == parse_duration_s(getattr(clock, key))

    fleet_value = {
        "start": clock.start.isoformat(),
        "duration": clock.duration,
        "step": clock.step,
    }
    checks = {"start": same_start, "duration": same_length("duration"), "step": same_length("step")}
    problems = []
    for key, same in checks.items():
        if key not in raw:
            continue
        try:
            agrees = same(raw[key])
        except (TypeError, ValueError, OverflowError):
            agrees = False
        if not agrees:
            problems.append(
                Problem(
                    f"{where}.{key}",
                    f"the fleet's {key} is {fleet_value[key]}, got {raw[key]!r} "
                    "(one clock: leave it out or make it equal)",
                )
            )
    return problems
