"""A fleet in one mosaik world: every site's simulators on one clock, in one process.

Each site is planned alone, as the run it would be by itself
(:func:`twin.world.plan_world` into ``sites/<site>/``, tagged ``site=<site>``), then
joined into one plan under its own simulator ids ``<site>-<sid>``
(:meth:`twin.plan.WorldPlan.join_site`): its own grid simulator and point of
connection, assets and controller. The world runs once; then each site is finished as
a run of its own (:func:`twin.run.close_run`: results, KPIs, checks, ``run.json``), so a
site whose KPIs or checks fail fails alone. A failure of the world itself fails every
site, each keeping the steps every simulator completed. The world runs on the direct
executor where every site's simulators allow it (:mod:`twin.executor`; ``$TWIN_EXECUTOR``
chooses otherwise), and each site's ``run.json`` says which.
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from twin.errors import RunError

__all__ = ["run_world"]


def run_world(fleet: Any, out: Path, *, progress: bool = False) -> dict[str, dict[str, Any]]:
    """Run every site of ``fleet`` in one world; return a row per site (as a campaign's).

    A row holds ``status`` (finished or failed), ``error``, ``kpis``, ``run_id`` and
    ``scenario_hash``. Each site directory is claimed for the run.

    Raises
    ------
    RunError
        If the world could not be set up or failed during its steps (every site's
        ``run.json`` then says failed).
    """
    from twin.rundir import claim_run_dir

    started = time.perf_counter()
    with ExitStack() as claimed:
        dirs = {
            s.name: claimed.enter_context(claim_run_dir(out / "sites" / s.name))
            for s in fleet.sites
        }
        return _run(fleet, dirs, started, progress)


def _run(
    fleet: Any, dirs: dict[str, Path], started: float, progress: bool
) -> dict[str, dict[str, Any]]:
    """The body of :func:`run_world`, in claimed site directories."""
    from twin.run import open_run

    metas: dict[str, dict[str, Any]] = {}
    try:
        for site in fleet.sites:
            metas[site.name] = open_run(site.scenario, dirs[site.name], compare_uncontrolled=False)
    except RunError as exc:  # a site's input files: the sites opened so far fail too
        opened = [s for s in fleet.sites if s.name in metas]
        _fail_all(opened, dirs, metas, f"the fleet could not start: {exc}")
        raise RunError(f"fleet {fleet.name}: {exc}") from exc
    services = ExitStack()
    try:
        world, plans, actives, checks = _build(fleet, dirs, metas, services)
        setup_s = time.perf_counter() - started
        loop_s, state = _steps(fleet, world.world, plans, dirs, metas, progress)
        component_s = state.component_s()
        rows = {}
        for site in fleet.sites:
            meta = metas[site.name]
            meta.update(setup_s=setup_s, loop_s=loop_s, fleet_sites=len(fleet.sites))
            meta["executor"] = world.executor
            if world.fallback:
                meta["executor_fallback"] = world.fallback
            meta.update(state.first_step_times(started))
            meta["component_s"] = _site_timings(component_s, site.name, plans[site.name])
            rows[site.name] = _close(
                site, dirs[site.name], world.world, plans, meta, actives, checks, started
            )
    finally:
        services.close()
    return rows


def _build(
    fleet: Any, dirs: dict[str, Path], metas: dict[str, dict[str, Any]], services: ExitStack
) -> tuple[Any, dict[str, Any], dict[str, list[Any]], dict[str, dict[str, Any]]]:
    """Plan every site, join the plans, start the world; on failure every site fails.

    The world is returned as a :class:`twin.world.BuiltWorld` (which executor runs it).
    """
    from twin.checks import all_checks
    from twin.component import components
    from twin.executor import requested_executor
    from twin.plan import WorldPlan
    from twin.run import abort_world
    from twin.world import plan_world, start_world

    try:
        wanted = requested_executor()
        plans, actives, checks = {}, {}, {}
        joined = WorldPlan(
            fleet.sites[0].scenario.clock(), dirs[fleet.sites[0].name].parent, {}, {}
        )
        for site in fleet.sites:
            sc, out = site.scenario, dirs[site.name]
            actives[site.name] = [c for c in components() if c.wanted(sc)]
            checks[site.name] = all_checks(actives[site.name])
            for component in actives[site.name]:
                services.enter_context(component.services(sc, out))
            plans[site.name] = plan_world(
                sc,
                out,
                metas[site.name]["run_id"],
                scenario_hash=metas[site.name]["scenario_hash"],
                active=actives[site.name],
            )
            joined.join_site(site.name, plans[site.name])
        world = start_world(joined, wanted)
        try:
            for site in fleet.sites:
                for component in actives[site.name]:
                    component.after_setup(site.scenario, dirs[site.name])
        except BaseException:
            abort_world(world.world)
            raise
    except Exception as exc:  # any set-up failure: every site failed, never "running"
        error = f"{type(exc).__name__}: {exc}"
        _fail_all(fleet.sites, dirs, metas, f"the fleet's world could not be set up: {error}")
        raise RunError(f"fleet {fleet.name}: the world could not be set up: {exc}") from exc
    return world, plans, actives, checks


def _steps(
    fleet: Any,
    world: Any,
    plans: dict[str, Any],
    dirs: dict[str, Path],
    metas: dict[str, dict[str, Any]],
    progress: bool,
) -> tuple[float, Any]:
    """Run the world to the end (its loop seconds and :class:`twin.runstate.RunState`).

    On failure each site keeps the steps every simulator completed.
    """
    from twin.results import merge_parts
    from twin.run import abort_world
    from twin.runstate import RunState

    state = RunState()
    clock = fleet.sites[0].scenario.clock()
    try:
        state = RunState.of_world(world)
        state.watch_first_step()
        began = time.perf_counter()
        world.run(until=clock.end_s, print_progress=progress)
        return time.perf_counter() - began, state
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        try:
            completed = state.save_completed()
        except Exception as lost:  # noqa: BLE001 - the world's own error is the one to raise
            completed, error = 0, f"{error}; saving the completed steps failed: {lost}"
        abort_world(world)
        for site in fleet.sites:
            out, meta = dirs[site.name], metas[site.name]
            try:
                parts = plans[site.name].parts
                saved = merge_parts(parts, out / "results.parquet", completed) if completed else 0
            except Exception as lost:  # noqa: BLE001 - a full disk: keep the chunks, say so
                meta["error_saving"] = (
                    f"saving the completed steps failed ({type(lost).__name__}: {lost}): the "
                    f"closed chunks stay in {out / 'parts'} (twin.results.recover)"
                )
                continue
            shutil.rmtree(out / "parts", ignore_errors=True)
            meta["rows_saved"] = saved
        _fail_all(fleet.sites, dirs, metas, f"the fleet's world failed: {error}")
        raise RunError(
            f"fleet {fleet.name}: the world failed: {exc} (completed steps saved)"
        ) from exc


def _site_timings(component_s: dict[str, float], site: str, plan: Any) -> dict[str, float]:
    """A site's part of the world's timings, under its own simulator ids."""
    own = {f"{site}-{sid}": sid for sid in plan.simulators}
    out = {}
    for key, seconds in component_s.items():
        sid, sep, part = key.partition(":")
        if sid in own:
            out[own[sid] + sep + part] = seconds
    return out


def _close(
    site: Any,
    out: Path,
    world: Any,
    plans: dict[str, Any],
    meta: dict[str, Any],
    actives: dict[str, list[Any]],
    checks: dict[str, dict[str, Any]],
    started: float,
) -> dict[str, Any]:
    """Finish one site as a run of its own; its row (a failure is a row, not a raise)."""
    from twin.run import RunCheckError, close_run
    from twin.world import BuiltWorld

    row: dict[str, Any] = {"status": "finished", "error": None, "kpis": {}}
    try:
        result = close_run(
            site.scenario,
            out,
            BuiltWorld(world, plans[site.name]),
            meta,
            actives[site.name],
            checks[site.name],
            started=started,
            stop=lambda: None,  # the fleet's services stop once every site is closed
        )
        row["kpis"] = result.kpis
    except RunCheckError as exc:
        failures = "; ".join(str(failure) for failure in exc.failures)
        row.update(status="failed", error=f"failed run checks: {failures}")
    except RunError as exc:
        row.update(status="failed", error=str(exc))
    row.update(
        run_id=meta["run_id"], scenario_hash=meta["scenario_hash"], wall_s=meta.get("wall_s")
    )
    return row


def _fail_all(
    sites: Any, dirs: dict[str, Path], metas: dict[str, dict[str, Any]], error: str
) -> None:
    """Every site's ``run.json`` says failed, with the fleet's error."""
    from twin.rundir import write_json

    for site in sites:
        metas[site.name].update(status="failed", error=error)
        write_json(dirs[site.name] / "run.json", metas[site.name])
