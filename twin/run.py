"""Running a scenario end to end: world, results, metadata, KPIs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.diskcache import installed_version
from twin.checks import CheckFailure, all_checks, evaluate_checks
from twin.component import Component, components
from twin.errors import RunError
from twin.identity import input_digests, new_run_id, scenario_hash
from twin.kpi import compute_kpis
from twin.results import load_results, merge_parts, open_results
from twin.rundir import claim_run_dir, write_json
from twin.scenario import ScenarioBase

__all__ = [
    "RunCheckError",
    "RunResult",
    "abort_world",
    "close_run",
    "open_run",
    "package_versions",
    "run_scenario",
]

VERSIONED_PACKAGES = (
    "twin",
    "mosaik",
    "mosaik-api-v3",
    "pandapower",
    "simbench",
    "pvlib",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
)


@dataclass
class RunResult:
    """What a finished run produced."""

    out_dir: Path
    kpis: dict[str, float]
    metadata: dict[str, Any]


class RunCheckError(RunError):
    """A run completed its steps but failed a run check (:mod:`twin.checks`).

    Its results, KPIs and ``run.json`` (``status: failed``, the ``checks``) are on
    disk for diagnosis; ``result`` holds them.
    """

    def __init__(self, result: RunResult, failures: list[CheckFailure]) -> None:
        self.result = result
        self.failures = failures
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(
            f"run {result.metadata['run_id']} failed {len(failures)} check(s):\n{lines}"
        )


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a run's numbers."""
    return {name: installed_version(name) or "not installed" for name in VERSIONED_PACKAGES}


def abort_world(world: Any) -> None:
    """Cancel the simulator tasks mosaik leaves pending after a failure, then shut down.

    A :class:`twin.executor.DirectWorld` has no tasks: its simulators are finalized.
    """
    loop = getattr(world, "loop", None)
    if loop is None:
        world.shutdown(quiet=True)  # the run's own error is the one to report
        return
    import asyncio  # a mosaik world: mosaik has imported it

    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    try:
        world.shutdown()
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        # A simulator's finalize failed too (a full disk refuses its last chunk): the
        # shutdown was done as far as it could go; mosaik must not warn of it later.
        inner = getattr(world, "_async_world", None)
        if inner is not None:
            inner._shutdown_performed = True
        if not loop.is_closed():
            loop.close()


#: Keys of ``run.json`` the core writes after the components' counters: never theirs.
RESERVED_METADATA = frozenset(
    {
        "status",
        "error",
        "checks",
        "wall_s",
        "loop_s",
        "setup_s",
        "first_step_s",
        "first_step_process_s",
        "component_s",
        "realtime",
        "rows_saved",
        "grid_injections",
        "executor",
        "executor_fallback",
    }
)


def add_component_metadata(
    metadata: dict[str, Any], active: list[Component], scenario: Any, parts_dir: Path
) -> None:
    """Add what every component's simulators counted to the run metadata (``run.json``).

    Raises
    ------
    RunError
        If a component's key is already there or is one the core writes.
    """
    for component in active:
        counted = component.run_metadata(scenario, parts_dir)
        reserved = sorted(RESERVED_METADATA & set(counted))
        if reserved:
            raise RunError(
                f"run metadata of {component.name!r} uses keys the core writes: "
                f"{', '.join(reserved)}"
            )
        _merge(f"run metadata of {component.name!r}", metadata, counted)


def run_scenario(
    scenario: ScenarioBase,
    out_dir: str | Path | None = None,
    *,
    progress: bool = False,
    compare_uncontrolled: bool = True,
    rt_factor: float | None = None,
    warn_late_s: float | None = None,
    parent_run_id: str | None = None,
    executor: str | None = None,
) -> RunResult:
    """Run a validated scenario and write ``results.parquet``, ``run.json``, ``kpis.json``.

    Every call is a new run with a unique ``run_id`` (:func:`twin.identity.new_run_id`);
    ``run.json`` also holds the ``scenario_hash`` of what was run and the digests of its
    input files. The run directory is locked for the run (a second writer gets
    :class:`twin.rundir.RunDirLockedError`) and an earlier run's outputs in it are
    removed first; ``run.json`` says ``status: running`` until the run ends.

    Parameters
    ----------
    scenario : ScenarioBase
        A scenario from :func:`twin.scenario.load_scenario`.
    out_dir : str or Path, optional
        Run directory (default: the scenario's ``outputs.dir``).
    progress : bool
        Show mosaik's progress bar.
    compare_uncontrolled : bool
        For a scenario with EV parks and a controller, also run it with
        ``controller: none`` (into ``out_dir/uncontrolled``) and report that run's
        peak import as ``peak_import_uncontrolled_kw``.
    rt_factor : float, optional
        Pace the run in real time: wall seconds per simulated second (1.0 = real time,
        0.5 = twice as fast). Step lateness (p50/p99/max) goes to ``run.json``.
    warn_late_s : float, optional
        Warn (once) when a step starts later than this; default: a tenth of a step.
    parent_run_id : str, optional
        Run id of the run this one was made for (the uncontrolled comparison's parent).
    executor : {"auto", "mosaik", "direct"}, optional
        What steps the world (:mod:`twin.executor`); default ``$TWIN_EXECUTOR`` or
        ``auto``: the direct executor where every simulator allows it, else mosaik.
        ``run.json`` says which (``executor``) and why auto fell back
        (``executor_fallback``).

    Raises
    ------
    RunDirLockedError
        If another run is writing into the same directory (nothing is touched).
    RunCheckError
        If the run completed but failed a run check (:mod:`twin.checks`): results and
        KPIs are written, ``run.json`` says ``status: failed`` and lists the checks.
    RunError
        If the co-simulation fails; the steps recorded before the failure are saved
        and ``run.json`` records the error; or ``direct`` was asked for a world that
        cannot run without mosaik (caused by a :class:`twin.executor.ExecutorError`).
    """
    from twin.executor import requested_executor

    wanted = requested_executor(executor)
    out = Path(out_dir) if out_dir is not None else scenario.output_dir()
    with claim_run_dir(out):
        metadata = open_run(
            scenario, out, compare_uncontrolled=compare_uncontrolled, parent_run_id=parent_run_id
        )
        return _run(
            scenario,
            out,
            metadata,
            progress=progress,
            rt_factor=rt_factor,
            warn_late_s=warn_late_s,
            executor=wanted,
        )


def open_run(
    scenario: ScenarioBase,
    out: Path,
    *,
    compare_uncontrolled: bool = True,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Start a run's metadata and write it as ``out/run.json`` (``status: running``).

    The run's unique ``run_id``, the ``scenario_hash`` of what is run and the digests of
    its input files (:mod:`twin.identity`). ``out`` must be claimed already
    (:func:`twin.rundir.claim_run_dir`).

    Raises
    ------
    RunError
        If an input file cannot be read (``run.json`` then says ``failed``).
    """
    try:
        inputs = input_digests(scenario)
    except Exception as exc:  # a component naming a file it cannot read, say
        write_json(out / "run.json", {"status": "failed", "error": f"inputs: {exc}"})
        raise RunError(f"the scenario's input files could not be read: {exc}") from exc
    metadata: dict[str, Any] = {
        "run_id": new_run_id(scenario.name),
        "scenario_hash": scenario_hash(scenario, inputs),
        "started_utc": pd.Timestamp.now(tz="UTC").isoformat(),
        "scenario": scenario.model_dump(mode="json"),
        "inputs": inputs,
        "seed": scenario.seed,
        "versions": package_versions(),
        "compare_uncontrolled": compare_uncontrolled,
        "status": "running",
    }
    if parent_run_id is not None:
        metadata["parent_run_id"] = parent_run_id
    write_json(out / "run.json", metadata)
    return metadata


def _run(
    scenario: ScenarioBase,
    out: Path,
    metadata: dict[str, Any],
    *,
    progress: bool,
    rt_factor: float | None,
    warn_late_s: float | None,
    executor: str = "auto",
) -> RunResult:
    """The body of :func:`run_scenario`, in a claimed run directory.

    Whatever happens, even an interrupt, the components' services (emulated devices)
    stop with the run.
    """
    services = ExitStack()
    try:
        from twin.runstate import RunState
        from twin.world import build_world

        run_id = metadata["run_id"]
        started = time.perf_counter()
        try:
            active = [component for component in components() if component.wanted(scenario)]
            checks = all_checks(active)  # a clash of check names fails here, not after the steps
            for component in active:
                services.enter_context(component.services(scenario, out))
            plan = build_world(
                scenario,
                out,
                run_id,
                realtime=rt_factor is not None,
                scenario_hash=metadata["scenario_hash"],
                active=active,
                executor=executor,
            )
            try:
                for component in active:
                    component.after_setup(scenario, out)
            except BaseException:
                abort_world(plan.world)
                raise
        except Exception as exc:  # any set-up failure: a failed run, never "running"
            error = f"{type(exc).__name__}: {exc}"
            error += _quietly(services.close, "stopping the services")
            metadata.update(status="failed", error=error)
            write_json(out / "run.json", metadata)
            raise RunError(f"run {run_id} could not be set up: {exc}") from exc
        metadata["setup_s"] = time.perf_counter() - started
        metadata["executor"] = plan.executor
        if plan.fallback:
            metadata["executor_fallback"] = plan.fallback
        step_s = plan.clock.step_s
        warn_after = warn_late_s if warn_late_s is not None else 0.1 * step_s * (rt_factor or 1.0)
        state = RunState()  # this run's simulators, timings and lateness meter
        try:
            state = RunState.of_world(plan.world, rt_factor=rt_factor, warn_after_s=warn_after)
            state.watch_first_step()
            run_started = time.perf_counter()
            plan.world.run(
                until=plan.clock.end_s,
                print_progress=progress,
                rt_factor=rt_factor,
                rt_strict=False,
            )
            metadata["loop_s"] = time.perf_counter() - run_started
            metadata.update(state.first_step_times(started))
            metadata["component_s"] = state.component_s()
            if state.lateness is not None:
                metadata["realtime"] = state.lateness.summary()
        except Exception as exc:
            # Keep the steps every simulator completed: a consistent, shorter run.
            error = f"{type(exc).__name__}: {exc}"
            try:
                completed = state.save_completed()
                saved = merge_parts(plan.parts, plan.results_path, completed) if completed else 0
                keep_parts = False
            except Exception as lost:  # a full disk refuses the rest too: say so, keep chunks
                saved, keep_parts = 0, True
                error += (
                    f"; saving the completed steps failed ({type(lost).__name__}: {lost}): "
                    f"the closed chunks stay in {out / 'parts'} (twin.results.recover)"
                )
            abort_world(plan.world)
            error += _quietly(services.close, "stopping the services")
            error += _quietly(
                lambda: add_component_metadata(metadata, active, scenario, out / "parts"),
                "reading the components' counters",
            )
            if not keep_parts:
                shutil.rmtree(out / "parts", ignore_errors=True)
            metadata.update(
                status="failed", error=error, rows_saved=saved, wall_s=time.perf_counter() - started
            )
            write_json(out / "run.json", metadata)
            raise RunError(f"run {run_id} failed: {exc} (recorded steps saved in {out})") from exc
        return close_run(
            scenario, out, plan, metadata, active, checks, started=started, stop=services.close
        )
    finally:
        _quietly(services.close, "stopping the services")


def close_run(
    scenario: ScenarioBase,
    out: Path,
    built: Any,
    metadata: dict[str, Any],
    active: list[Component],
    checks: dict[str, Any],
    *,
    started: float,
    stop: Callable[[], Any],
) -> RunResult:
    """After the last step: results, KPIs, checks, then ``kpis.json`` and ``run.json``.

    ``built`` is the run's :class:`twin.world.BuiltWorld` (its plan says which parts to
    merge into ``out/results.parquet``); ``stop`` stops the run's services once the
    results are safe; ``started`` is the run's ``perf_counter`` origin (``wall_s``).

    Raises
    ------
    RunCheckError
        If a run check failed (results and KPIs written, ``status: failed``).
    RunError
        If results or KPIs could not be made (``status: failed``).
    """
    run_id = metadata["run_id"]
    try:
        kpis = _finish(scenario, out, built, metadata, active)
    except Exception as exc:
        # The steps ran but what follows them did not (results, KPIs, the comparison
        # run): never leave run.json saying "running", never a traceback.
        stop()
        metadata.update(
            status="failed",
            error=f"after the last step: {type(exc).__name__}: {exc}",
            wall_s=time.perf_counter() - started,
        )
        (out / "kpis.json").unlink(missing_ok=True)
        write_json(out / "run.json", metadata)
        raise RunError(f"run {run_id} failed after its last step: {exc}") from exc
    # services stop after the results are safe: a service that cannot stop fails the
    # run like a check (results and KPIs kept), it does not lose them
    stopped = _quietly(stop, "stopping the services")
    metadata["wall_s"] = time.perf_counter() - started
    passed, failures = evaluate_checks(scenario, metadata, kpis, checks)
    if stopped:
        failures.append(CheckFailure("services", stopped.removeprefix("; and ")))
    metadata["checks"] = {
        "passed": passed,
        "failed": [failure.as_dict() for failure in failures],
    }
    if failures:
        metadata["status"] = "failed"
        metadata["error"] = "; ".join(str(failure) for failure in failures)
    else:
        metadata["status"] = "finished"
    write_json(out / "kpis.json", kpis)
    write_json(out / "run.json", metadata)  # last: its status says the rest is complete
    result = RunResult(out, kpis, metadata)
    if failures:
        raise RunCheckError(result, failures)
    return result


def _quietly(action: Any, what: str) -> str:
    """Run a clean-up ``action`` of a run that already failed; its own error, as text."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to raise
        return f"; and {what} failed: {type(exc).__name__}: {exc}"
    return ""


def _finish(
    scenario: ScenarioBase,
    out: Path,
    plan: Any,
    metadata: dict[str, Any],
    active: list[Component],
) -> dict[str, float]:
    """Merge the results, compute the KPIs, let the components add theirs and act on them."""
    from twin.world import grid_injections

    merge_parts(plan.parts, plan.results_path)
    add_component_metadata(metadata, active, scenario, out / "parts")
    shutil.rmtree(out / "parts", ignore_errors=True)
    results = open_results(out)  # lazy: each KPI reads its quantity, not the whole file
    injecting = grid_injections(plan.plan)
    metadata["grid_injections"] = {kind: len(names) for kind, names in injecting.items()}
    kpis = compute_kpis(results, scenario, injecting)
    # components' KPIs get the tidy frame (their API); loaded only if one computes any
    own = [c for c in active if type(c).kpis is not Component.kpis]
    frame = load_results(out) if own else None
    for component in own:
        _merge(
            f"KPIs of component {component.name!r}",
            kpis,
            component.kpis(scenario, frame, metadata),
        )
    for component in active:
        component.after_run(scenario, kpis, metadata, out)
    for component in active:  # the KPIs are final: sinks may store them
        component.export(scenario, kpis, metadata, out)
    return kpis


def _merge(what: str, into: dict[str, Any], new: dict[str, Any]) -> None:
    """Add ``new`` to ``into``; a key that is already there is an error, never overwritten."""
    clash = sorted(set(into) & set(new))
    if clash:
        raise RunError(f"{what} would overwrite {', '.join(clash)}")
    into.update(new)
