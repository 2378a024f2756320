"""Who a run is and what it ran: unique run ids, scenario hashes, input file digests.

Two identities, kept apart:

- the **run id** names one execution: ``<name>-<UTC yyyymmddThhmmssZ>-<8 hex>``, unique
  and sortable as a string by start time (to the second). It tags every result row,
  InfluxDB point and ``run.json``; two executions of one scenario never share it, so
  neither overwrites the other's history.
- the **scenario hash** names what was run: a hash of the validated scenario and of the
  contents of every file it reads (weather, grid JSON, profile and price CSVs, policy).
  Equal hashes mean equal inputs; with the same seed, equal numbers. Where the
  results go (``outputs``: directory, InfluxDB) is not part of it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "HASHED_OUT",
    "file_digest",
    "input_changes",
    "input_digests",
    "input_files",
    "new_run_id",
    "scenario_hash",
]

#: Hex characters of the scenario hash (48 bits: collisions are not a practical concern).
HASH_CHARS = 12
#: Scenario fields left out of the hash: where results go does not change them.
HASHED_OUT = frozenset({"outputs"})


def new_run_id(name: str, now: datetime | None = None) -> str:
    """A unique id for one execution of scenario ``name``, ordered by its UTC start."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-{stamp}-{secrets.token_hex(4)}"


def input_files(scenario: Any) -> dict[str, Path]:
    """The files a scenario reads, by the field path that names them.

    The core's (weather, a grid file) and every component's
    (:meth:`twin.component.Component.input_files`).
    """
    from models.weather import resolve_weather_path

    files: dict[str, Path] = {}
    try:
        files["weather"] = resolve_weather_path(scenario.weather)
    except FileNotFoundError:
        pass  # validation reports it
    from twin.component import components

    named: dict[str, str | None] = {"grid.source": scenario.grid.source}
    for component in components():  # each names the files of its own sections
        for where, value in component.input_files(scenario).items():
            if where in named:
                raise ValueError(f"component {component.name!r} names input {where!r} again")
            named[where] = value
    for where, value in named.items():
        if value and Path(value).is_file():
            files[where] = Path(value)
    return files


@lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's contents (cached while its size and mtime stay the same)."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def input_digests(scenario: Any) -> dict[str, dict[str, str]]:
    """``{field path: {"path", "sha256"}}`` of every file the scenario reads."""
    return {
        where: {"path": str(path), "sha256": file_digest(path)}
        for where, path in input_files(scenario).items()
    }


def _hashed_fields(dump: dict[str, Any] | None) -> dict[str, Any]:
    """The dump minus what does not change the numbers and minus unset plugin sections.

    A section of a component outside the twin's own that a scenario leaves unset is not
    hashed: installing a plugin changes no scenario's hash.
    """
    from twin.component import BUILTIN_COMPONENTS, component_classes

    unset = {
        section.key
        for cls in component_classes()
        if cls.name not in BUILTIN_COMPONENTS
        for section in cls.sections
        if section.default in (None, [], {})
    }
    out = {}
    for key, value in (dump or {}).items():
        if key in HASHED_OUT or (key in unset and value in (None, [], {})):
            continue
        if key == "outputs" and isinstance(value, dict):
            value = {
                k: v
                for k, v in value.items()
                if not (f"outputs.{k}" in unset and v in (None, [], {}))
            }
        out[key] = value
    return out


def scenario_hash(scenario: Any, inputs: dict[str, dict[str, str]] | None = None) -> str:
    """Hash of the validated scenario and of the contents of the files it reads.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (secrets are masked in the dump, so they do not enter).
    inputs : dict, optional
        Its :func:`input_digests`, if already computed.
    """
    inputs = input_digests(scenario) if inputs is None else inputs
    text = json.dumps(
        {
            "scenario": _hashed_fields(scenario.model_dump(mode="json")),
            "inputs": {where: entry["sha256"] for where, entry in sorted(inputs.items())},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Field paths whose values differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            out += _diff(old.get(key), new.get(key), where)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = enumerate(zip(old, new, strict=True))
        return [d for i, (a, b) in pairs for d in _diff(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def input_changes(
    previous: dict[str, Any], scenario: Any, inputs: dict[str, dict[str, str]], limit: int = 5
) -> list[str]:
    """What differs between a previous run's ``run.json`` and a scenario about to run.

    Returns readable reasons (changed fields with old and new value, changed or
    added/removed input files); empty when the inputs are the same.
    """
    if "scenario_hash" not in previous:
        return ["the earlier run recorded no scenario hash (made by an older twin)"]
    if previous["scenario_hash"] == scenario_hash(scenario, inputs):
        return []
    reasons = _diff(
        _hashed_fields(previous.get("scenario")),
        _hashed_fields(scenario.model_dump(mode="json")),
    )
    old_inputs = previous.get("inputs") or {}
    for where in sorted(set(old_inputs) | set(inputs)):
        before, after = old_inputs.get(where), inputs.get(where)
        if before is None or after is None:
            reasons.append(f"input file {where} {'added' if before is None else 'removed'}")
        elif before.get("sha256") != after["sha256"]:
            reasons.append(f"input file {where} ({after['path']}) changed content")
    if not reasons:
        reasons = ["the scenario hash differs"]
    if len(reasons) > limit:
        reasons = [*reasons[:limit], f"... and {len(reasons) - limit} more"]
    return reasons
