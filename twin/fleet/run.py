"""Running a fleet: its sites in one world or apart, then one fleet run directory.

``out/`` holds ``run.json`` (the fleet's: ``kind: fleet``, its mode, every site's
status, run id and error), ``kpis.json`` (per site and fleet totals,
:mod:`twin.fleet.combine`), ``results.parquet`` (every site's rows, tagged ``site``)
and ``sites/<site>/``, each a run directory of its own. The fleet's ``status`` is
``finished`` when every site finished, ``partial`` when some failed (their results,
if any, are still combined) and ``failed`` when none finished; :func:`run_fleet`
then raises :class:`FleetError` after writing everything.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from twin.errors import RunError
from twin.fleet.combine import combine_results, fleet_totals
from twin.fleet.spec import MODES, Fleet

__all__ = ["FleetError", "FleetResult", "run_fleet"]


@dataclass
class FleetResult:
    """What a fleet run produced: its directory, KPIs (per site, fleet) and metadata."""

    out_dir: Path
    kpis: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def status(self) -> str:
        """``finished``, ``partial`` or ``failed``."""
        return str(self.metadata["status"])


class FleetError(RunError):
    """A fleet run in which a site failed or is missing (``result`` holds what was written).

    ``status`` is ``partial`` (some sites finished) or ``failed`` (none did).
    """

    def __init__(self, result: FleetResult) -> None:
        self.result = result
        bad = {
            name: site.get("error") or site["status"]
            for name, site in result.metadata["sites"].items()
            if site["status"] != "finished"
        }
        lines = "\n".join(f"  - {name}: {error}" for name, error in bad.items())
        super().__init__(
            f"fleet {result.metadata['name']} {result.status}: {len(bad)} of "
            f"{len(result.metadata['sites'])} site(s) did not finish:\n{lines}"
        )


def run_fleet(
    fleet: Fleet,
    out_dir: str | Path | None = None,
    *,
    mode: str | None = None,
    n_workers: int | None = None,
    executor: str = "dask",
    progress: bool = False,
) -> FleetResult:
    """Run every site of ``fleet`` and combine them into one fleet run directory.

    Parameters
    ----------
    fleet : Fleet
        From :func:`twin.fleet.load_fleet`.
    out_dir : str or Path, optional
        Fleet run directory (default ``runs/<name>``).
    mode : {"world", "split"}, optional
        Override the fleet file's ``mode``.
    n_workers : int, optional
        ``split``: worker processes (default: one per usable CPU, at most one per site).
    executor : {"dask", "threads"}
        ``split``: where the site runs execute (:func:`twin.campaign.dispatch`).
    progress : bool
        ``world``: mosaik's progress bar.

    Raises
    ------
    FleetError
        If a site failed or is missing: everything is written, ``status`` says
        ``partial`` or ``failed``.
    RunError
        If the fleet could not run at all (``status: failed``); a world that could not
        be set up or failed fails every site: a :class:`FleetError`.
    """
    from twin.identity import new_run_id
    from twin.rundir import claim_run_dir, write_json

    mode = mode or fleet.mode
    if mode not in MODES:
        raise RunError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    out = Path(out_dir) if out_dir is not None else fleet.output_dir()
    with claim_run_dir(out):
        out = out.resolve()  # split runs may execute elsewhere: absolute paths
        metadata: dict[str, Any] = {
            "kind": "fleet",
            "run_id": new_run_id(fleet.name),
            "name": fleet.name,
            "mode": mode,
            "started_utc": pd.Timestamp.now(tz="UTC").isoformat(),
            "start": fleet.start,
            "duration": fleet.duration,
            "step": fleet.step,
            "seed": fleet.seed,
            "sites": {s.name: {"status": "pending", "seed": s.scenario.seed} for s in fleet.sites},
            "status": "running",
        }
        write_json(out / "run.json", metadata)
        started = time.perf_counter()
        try:
            if mode == "world":
                from twin.fleet.world import run_world

                rows = run_world(fleet, out, progress=progress)
            else:
                rows = _run_split(fleet, out, n_workers, executor)
        except RunError as exc:  # the one world failed: every site did (steps kept)
            metadata["error"] = str(exc)
            rows = {
                s.name: {"status": "failed", "error": str(exc), "kpis": {}} for s in fleet.sites
            }
        except Exception as exc:
            _record(metadata, fleet, {}, out)
            raise _failed(metadata, out, started, f"{type(exc).__name__}: {exc}") from exc
        _record(metadata, fleet, rows, out)
        finished = [n for n, site in metadata["sites"].items() if site["status"] == "finished"]
        try:
            metadata["rows_saved"] = combine_results(out, [s.name for s in fleet.sites])
            kpis = {
                "sites": {name: rows[name]["kpis"] for name in finished},
                "fleet": fleet_totals(out, {name: rows[name]["kpis"] for name in finished}),
            }
        except Exception as exc:  # a full disk, say: never leave the fleet "running"
            error = f"combining the sites failed: {type(exc).__name__}: {exc}"
            raise _failed(metadata, out, started, error) from exc
        metadata["wall_s"] = time.perf_counter() - started
        if len(finished) == len(fleet.sites):
            metadata["status"] = "finished"
        else:
            metadata["status"] = "partial" if finished else "failed"
        write_json(out / "kpis.json", kpis)
        write_json(out / "run.json", metadata)  # last: its status says the rest is complete
        result = FleetResult(out, kpis, metadata)
        if metadata["status"] != "finished":
            raise FleetError(result)
        return result


def _failed(metadata: dict[str, Any], out: Path, started: float, error: str) -> RunError:
    """Mark the fleet failed in its ``run.json`` (written now); the error to raise."""
    from twin.rundir import write_json

    metadata.update(status="failed", error=error, wall_s=time.perf_counter() - started)
    write_json(out / "run.json", metadata)
    return RunError(f"fleet {metadata['name']} failed: {error}")


def _run_split(
    fleet: Fleet, out: Path, n_workers: int | None, executor: str
) -> dict[str, dict[str, Any]]:
    """Each site as a run of its own (:func:`twin.campaign.run_one`), on dask or threads."""
    from twin.campaign import dispatch, usable_cpus

    jobs = {s.name: (s.raw, str(out / "sites" / s.name)) for s in fleet.sites}
    workers = n_workers or min(usable_cpus(), len(jobs))
    rows: dict[str, dict[str, Any]] = {}
    done = dispatch(jobs, executor=executor, n_workers=workers, name=fleet.name)
    with closing(done):
        for name, future in done:
            try:
                rows[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker: the site failed
                rows[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return rows


def _record(
    metadata: dict[str, Any], fleet: Fleet, rows: dict[str, dict[str, Any]], out: Path
) -> None:
    """Each site's status, run id, hash and error in the fleet's metadata.

    A site without a row, or whose ``run.json`` does not say finished, did not finish.
    """
    import json

    for site in fleet.sites:
        row = rows.get(site.name)
        entry = metadata["sites"][site.name]
        if row is None:
            entry.update(status="missing", error="the site's run returned nothing")
            continue
        try:
            status = json.loads((out / "sites" / site.name / "run.json").read_text())["status"]
        except (OSError, ValueError, KeyError):
            status = "missing"
        if row.get("status") == "finished" and status != "finished":
            row = {**row, "status": "failed", "error": f"its run.json says {status!r}"}
        entry.update(
            status=row.get("status", "failed"),
            error=row.get("error"),
            run_id=row.get("run_id"),
            scenario_hash=row.get("scenario_hash"),
        )
        rows[site.name] = row
