"""The reference of a what-if study: the site without the investment, and a run's year.

A study compares a run with a **reference run** of the same site without the
investment. Either the ``economics.reference_run`` directory names a finished run, or
the reference is made beside the run, into ``<run>/reference``: the same scenario
without the invested assets (``economics.invest``, default every battery and PV plant),
the faults whose target was one of them, the controller if no battery is left for it to
drive, and without the sections that watch the assets (diagnostics, estimation). What
it removed is recorded (``reference_removed`` in ``run.json``) and said in the report.
The what-if acts on nothing outside (:func:`twin.component.baseline_of`).

A run's figures are scaled to a year by its length: ``365 days / run days`` (a summer
day stands for a year of summer days; use a year-long run for a year's answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from twin.errors import ResultsError

__all__ = [
    "REFERENCE_DIR",
    "Reference",
    "invested",
    "reference_problem",
    "reference_removed",
    "reference_scenario",
    "run_reference",
    "year_factor",
]

#: Where a reference made beside a run is written (inside the run directory).
REFERENCE_DIR = "reference"
#: Asset kinds an investment is made of (``economics.invest`` names units of these).
INVESTED_KINDS = ("battery", "pv")
#: Asset kinds a controller drives: with none left, the reference runs uncontrolled.
DRIVEN_KINDS = ("battery", "ev")
#: Sections set to ``None`` in the reference when the scenario has them (they watch the
#: assets); ``economics`` and ``carbon`` go with :meth:`WhatIfComponent.baseline`.
DROPPED = ("diagnostics", "estimation")
SECONDS_PER_YEAR = 365 * 86_400


@dataclass(frozen=True)
class Reference:
    """A finished reference run: its directory, KPIs, tidy results and metadata."""

    directory: Path
    kpis: dict[str, float]
    results: pd.DataFrame
    metadata: dict[str, Any]


def year_factor(scenario: Any) -> float:
    """How many runs of this length make a year (``365 days / run days``)."""
    return SECONDS_PER_YEAR / scenario.clock().end_s


def _span(scenario: dict[str, Any]) -> tuple[pd.Timestamp, int, int]:
    """(start, duration s, step s) of a run's recorded scenario."""
    from twin.units import parse_duration_s

    start = pd.Timestamp(scenario["start"])
    return start, parse_duration_s(scenario["duration"]), parse_duration_s(scenario["step"])


def reference_problem(
    directory: str | Path, scenario: Any = None, resolved: dict[str, Any] | None = None
) -> str | None:
    """Why ``directory`` is not a finished run to compare with (``None``: it is).

    With ``scenario``, the reference must also cover the same steps (start, duration,
    step): a week compared with a day would scale the wrong costs to a year; and be of
    the same site: its site, grid, tariff and loads (:data:`SAME_SITE`) as the run's
    (``resolved``: the scenario as resolved so far, while it is validated).
    """
    path = Path(directory)
    missing = [n for n in ("run.json", "kpis.json", "results.parquet") if not (path / n).is_file()]
    if missing:
        return f"{path} is not a run directory: {', '.join(missing)} missing"
    try:
        meta = json.loads((path / "run.json").read_text())
        status = meta.get("status")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{path / 'run.json'} is not readable run metadata ({exc})"
    if status != "finished":
        return f"the run in {path} did not finish (status {status!r})"
    if scenario is None:
        return None
    try:
        theirs = _span(meta["scenario"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"{path / 'run.json'} does not say which steps the run covered ({exc})"
    clock = scenario.clock()
    ours = (scenario.start_ts, clock.end_s, clock.step_s)
    if theirs != ours:
        return (
            f"the run in {path} covers {theirs[0].isoformat()} + {theirs[1]} s in steps of "
            f"{theirs[2]} s; expected the same steps as this run: {ours[0].isoformat()} + "
            f"{ours[1]} s in steps of {ours[2]} s"
        )
    differ = _site_differences(meta["scenario"], resolved or scenario.model_dump(mode="json"))
    if differ:
        return (
            f"the run in {path} is not of the same site: its {', '.join(differ)} differ "
            "from this run's (expected the same site, grid, loads and tariff)"
        )
    return None


#: What a given reference must share with the run (the site without the investment).
SAME_SITE = ("site", "grid", "tariff", "assets.load")


def _section(raw: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        raw = (raw or {}).get(part) if isinstance(raw, dict) else None
    return raw


def _site_differences(recorded: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Which of :data:`SAME_SITE` a recorded scenario has other than ``ours``."""
    ours = json.loads(json.dumps(ours))
    return [key for key in SAME_SITE if _section(recorded, key) != _section(ours, key)]


def invested(scenario: Any) -> set[str]:
    """Names of the invested assets: ``economics.invest``, default every battery and PV."""
    spec = scenario.economics
    if spec is not None and spec.invest is not None:
        return set(spec.invest)
    return {unit["name"] for kind in INVESTED_KINDS for unit in scenario.units(kind)}


def _fault_kept(fault: dict[str, Any], removed: set[str]) -> bool:
    """A fault stays unless its target (``asset`` or ``asset.quantity``) was removed."""
    return fault["target"].split(".", 1)[0] not in removed


def _reference_raw(scenario: Any) -> tuple[dict[str, Any], list[str]]:
    """The reference's raw scenario and what it removed, in words."""
    from twin.component import baseline_of

    names = invested(scenario)
    raw = baseline_of(scenario).model_dump(mode="json")
    removed: list[str] = []
    assets = dict(raw["assets"])
    for kind in INVESTED_KINDS:
        units = assets.get(kind) or []
        removed += [f"{kind} {u['name']}" for u in units if u["name"] in names]
        assets[kind] = [u for u in units if u["name"] not in names]
    raw["assets"] = assets
    faults = raw.get("faults") or []
    kept = [f for f in faults if _fault_kept(f, names)]
    removed += [f"fault {f['kind']} on {f['target']}" for f in faults if f not in kept]
    if "faults" in raw:
        raw["faults"] = kept
    controller = getattr(scenario, "controller", "none")
    if controller != "none":  # the what-if baseline drops it: kept if it has a unit left
        driven = any(assets.get(kind) for kind in DRIVEN_KINDS)
        raw["controller"] = controller if driven else "none"
        if not driven:
            removed.append(f"controller {controller} (no battery or EV left to drive)")
    for key in DROPPED:
        if getattr(scenario, key, None) is not None:
            removed.append(key)
            raw[key] = None
    return raw, removed


def reference_removed(scenario: Any) -> list[str]:
    """What the reference made beside ``scenario`` leaves out, in words (one per item)."""
    return _reference_raw(scenario)[1]


def reference_scenario(scenario: Any) -> Any:
    """The scenario of the reference run: ``scenario`` without the investment."""
    from twin.scenario import validate_scenario

    raw, _ = _reference_raw(scenario)
    return validate_scenario(raw, "reference run (the scenario without the investment)")


def load_reference(directory: str | Path, scenario: Any = None) -> Reference:
    """Read a finished run (of the same steps as ``scenario``) as a reference.

    Raises
    ------
    twin.errors.ResultsError
        If ``directory`` does not hold a finished run (of the same steps).
    """
    from twin.results import load_results

    problem = reference_problem(directory, scenario)
    if problem:
        raise ResultsError(f"economics.reference_run: {problem}")
    path = Path(directory)
    return Reference(
        path,
        json.loads((path / "kpis.json").read_text()),
        load_results(path),
        json.loads((path / "run.json").read_text()),
    )


def run_reference(scenario: Any, out_dir: Path, metadata: dict[str, Any]) -> Reference | None:
    """The reference of ``scenario``: the run it names, or one made beside it.

    A reference made here whose run checks fail still serves (its ``run.json`` says
    so); ``metadata`` records its run id and status. One that crashes gives ``None``:
    ``metadata`` records ``reference_status: crashed`` and the error (the
    ``reference_run`` check fails the run, its own KPIs stay).
    """
    given = scenario.economics.reference_run if scenario.economics else None
    if given:
        reference = load_reference(given, scenario)
    else:
        from twin.run import RunCheckError, run_scenario

        try:
            result = run_scenario(
                reference_scenario(scenario),
                out_dir / REFERENCE_DIR,
                compare_uncontrolled=False,
                parent_run_id=metadata["run_id"],
            )
        except RunCheckError as exc:
            result = exc.result
        except Exception as exc:  # noqa: BLE001 - the run's own results must survive it
            metadata["reference_run_id"] = None
            metadata["reference_status"] = "crashed"
            metadata["reference_error"] = f"{type(exc).__name__}: {exc}"
            metadata["reference_dir"] = str(out_dir / REFERENCE_DIR)
            return None
        from twin.results import load_results

        reference = Reference(
            result.out_dir, result.kpis, load_results(result.out_dir), result.metadata
        )
        metadata["reference_removed"] = reference_removed(scenario)
    metadata["reference_run_id"] = reference.metadata.get("run_id")
    metadata["reference_status"] = reference.metadata.get("status")
    metadata["reference_dir"] = str(reference.directory)
    return reference
