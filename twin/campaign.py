"""Campaigns: many runs of one base scenario, in parallel on dask.distributed or threads.

A campaign file names a base scenario and axes to sweep::

    name: fault_sweep
    base: ../microgrid_day.yaml         # relative to the campaign file
    mode: grid                          # every combination; or `random` with `samples`
    axes:
      controller: [rule, none]          # any scenario field by path (as with --set)
      fault:                            # a run gets one fault (the list's entries)...
        - {kind: pv_shading, target: pv_roof, duration: 3h, severity: 0.5}
      fault.start: [6h, 10h, 14h, 18h]  # ...with these fault fields swept too
      seed: [1, 2]

Each point of the campaign has a stable ``point_id`` (a hash of its axis values) and a
directory of its own, ``runs/<point_id>``; each execution of a point is a run with a
unique ``run_id`` (:mod:`twin.identity`). A point's row in ``summary.parquet`` /
``summary.csv`` holds its axes, ``run_id``, ``scenario_hash``, status, KPIs and the KPI
deltas against its **reference**: the same point without the fault (added to the
campaign automatically). A run that raises or fails a run check is a ``failed`` row with
its reason and the campaign goes on (``twin campaign`` then exits non-zero).

Resume: executing a campaign again skips a point only if its earlier run finished, its
``kpis.json`` and ``results.parquet`` are there and readable (the Parquet footer is
read) *and* it ran the same inputs: the scenario hash covers the base scenario, the axis
values and the contents of every file the scenario reads (weather, grid JSON, profile
and price CSVs, policy). Any other point is run again and its row says why
(``rerun_reason``, e.g. ``inputs changed: assets.battery[0].e_kwh: 60.0 -> 120.0`` or
``the earlier run's results.parquet is missing``). In random mode numeric axes may be
ranges (``{min: 0.1, max: 0.9}``) and ``samples`` runs are drawn with ``seed``.

Runs execute on dask (worker processes of a ``LocalCluster``, or a cluster's) or, with
``executor="threads"``, in threads of this process: a run keeps all its state in objects
of its own (:mod:`twin.runstate`), so runs in threads give the results they give alone.
Threads share one interpreter lock: they suit runs that wait (real time, MQTT, a
notebook's few runs) more than many CPU-bound ones, which processes run in parallel.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import Problem, ResultsError, ScenarioError, TwinError
from twin.inputs import read_yaml
from twin.limits import name_problems

__all__ = [
    "EXECUTORS",
    "LOCAL_WORKER_CONFIG",
    "RESILIENCE_KPIS",
    "Campaign",
    "RunSpec",
    "dispatch",
    "execute",
    "load_campaign",
    "local_cluster",
    "run_one",
    "summarise",
    "usable_cpus",
]

#: KPIs whose change against the fault-free reference measures resilience.
RESILIENCE_KPIS = (
    "cost_scored_eur",
    "unserved_kwh",
    "curtailed_kwh",
    "voltage_violations",
    "thermal_trip_steps",
    "peak_import_kw",
    "e_import_kwh",
)
#: Where a campaign's runs execute: dask workers, or threads of this process.
EXECUTORS = ("dask", "threads")

#: dask settings for the workers of a local cluster the campaign starts. A worker's
#: statistical profiler samples every thread's stack every 10 ms on the worker's event
#: loop; each sample takes the GIL from the run in the worker's task thread.
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def usable_cpus() -> int:
    """CPUs this process may run on (its CPU affinity; at least 1).

    The default number of local workers: one single-threaded run per CPU.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Keys of a campaign file.
CAMPAIGN_KEYS = ("name", "base", "mode", "samples", "seed", "axes")
#: Most runs one campaign file may expand to.
MAX_RUNS = 10_000
#: Longest campaign name: its runs are named ``<campaign>-r<10 hex digits>``.
CAMPAIGN_NAME_MAX = 64
#: Recovered once the battery SoC is within this of the reference...
RECOVERY_SOC = 0.01
#: ... and the exchange at the point of connection within this many kW.
RECOVERY_KW = 1.0


@dataclass(frozen=True)
class RunSpec:
    """One point of a campaign: its axis values, stable id and reference."""

    point_id: str
    axes: dict[str, Any]
    reference: str | None  # point id of the fault-free twin (None: this is one)

    @property
    def fault(self) -> dict[str, Any] | None:
        """The run's fault, if any."""
        return self.axes.get("fault")


@dataclass
class Campaign:
    """A parsed campaign file."""

    name: str
    base_path: Path
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    mode: str = "grid"
    samples: int = 10
    seed: int = 0
    runs: list[RunSpec] = field(default_factory=list)


def _point_id(axes: dict[str, Any]) -> str:
    text = json.dumps(axes, sort_keys=True, default=str)
    return "r" + hashlib.sha256(text.encode()).hexdigest()[:10]


def load_campaign(path: str | Path) -> Campaign:
    """Read a campaign file and expand it into runs (with their references).

    Raises
    ------
    ScenarioError
        With the field of the campaign file that is wrong.
    """
    path = Path(path)
    raw = read_yaml(path, "campaign")
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of fields, got {type(raw).__name__}")], str(path)
        )
    problems: list[Problem] = []
    unknown = set(map(str, raw)) - {*CAMPAIGN_KEYS, "description"}
    problems += [
        Problem(key, "unknown key; expected name, base, mode, samples, seed, axes")
        for key in sorted(unknown)
    ]
    name = raw.get("name", path.stem)
    problems += [Problem("name", message) for message in name_problems(name, CAMPAIGN_NAME_MAX)]
    base = raw.get("base")
    base_path = path
    if not isinstance(base, str) or not base or "\x00" in base:
        problems.append(Problem("base", f"expected the path of a scenario file, got {base!r}"))
    else:
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            problems.append(
                Problem("base", f"scenario {base!r} not found (relative to {path.parent})")
            )
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict) or not axes:
        problems.append(Problem("axes", "expected a mapping of field path -> list of values"))
    mode = raw.get("mode", "grid")
    if mode not in ("grid", "random"):
        problems.append(Problem("mode", f"expected grid or random, got {mode!r}"))
    samples = _whole(raw, "samples", 10, 1, MAX_RUNS, problems)
    seed = _whole(raw, "seed", 0, 0, 2**32 - 1, problems)
    for axis, values in axes.items() if isinstance(axes, dict) else []:
        ranged = isinstance(values, dict) and set(values) == {"min", "max"}
        if not (isinstance(values, list) and values) and not (ranged and mode == "random"):
            problems.append(
                Problem(f"axes.{axis}", "expected a non-empty list (or {min, max} in random mode)")
            )
        elif ranged and not all(_finite(values[k]) for k in ("min", "max")):
            problems.append(Problem(f"axes.{axis}", f"expected finite numbers, got {values}"))
        elif ranged and values["min"] > values["max"]:
            problems.append(Problem(f"axes.{axis}", f"expected min <= max, got {values}"))
    if problems:
        raise ScenarioError(problems, str(path))
    base_raw = read_yaml(base_path, "scenario")
    if not isinstance(base_raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of fields, got {type(base_raw).__name__}")],
            str(base_path),
        )
    campaign = Campaign(
        name=str(name),
        base_path=base_path,
        base=base_raw,
        axes=axes,
        mode=mode,
        samples=samples,
        seed=seed,
    )
    if mode == "grid":
        count = math.prod(len(values) for values in axes.values())
        if count > MAX_RUNS:
            raise ScenarioError(
                [Problem("axes", f"{count:,} combinations; expected at most {MAX_RUNS:,} runs")],
                str(path),
            )
    campaign.runs = expand(campaign)
    _validate_runs(campaign)
    return campaign


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(
    raw: dict[str, Any], key: str, default: int, low: int, high: int, problems: list[Problem]
) -> int:
    """An integer field of the campaign file within ``[low, high]`` (else a problem)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(Problem(key, f"expected a whole number in {low}..{high}, got {value!r}"))
        return default
    return value


def _combinations(campaign: Campaign) -> list[dict[str, Any]]:
    names = list(campaign.axes)
    if campaign.mode == "grid":
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*campaign.axes.values())
        ]
    rng = np.random.default_rng(campaign.seed)
    out = []
    for _ in range(campaign.samples):
        combo = {}
        for name, values in campaign.axes.items():
            if isinstance(values, dict):
                combo[name] = float(rng.uniform(values["min"], values["max"]))
            else:
                combo[name] = values[int(rng.integers(len(values)))]
        out.append(combo)
    return out


def expand(campaign: Campaign) -> list[RunSpec]:
    """Every run of the campaign and, for runs with a fault, its fault-free reference."""
    runs: dict[str, RunSpec] = {}
    for combo in _combinations(campaign):
        fault_fields = {k.split(".", 1)[1]: v for k, v in combo.items() if k.startswith("fault.")}
        axes = {k: v for k, v in combo.items() if not k.startswith("fault.")}
        if "fault" in axes:
            axes["fault"] = {**axes["fault"], **fault_fields}
        reference = None
        if axes.get("fault") is not None:
            ref_axes = {k: v for k, v in axes.items() if k != "fault"}
            reference = _point_id(ref_axes)
            runs.setdefault(reference, RunSpec(reference, ref_axes, None))
        point_id = _point_id(axes)
        runs[point_id] = RunSpec(point_id, axes, reference)
    return list(runs.values())


def scenario_of(campaign: Campaign, run: RunSpec) -> dict[str, Any]:
    """The raw scenario of one run: the base with the run's axis values applied."""
    from twin.scenario import apply_overrides

    raw = copy.deepcopy(campaign.base)
    raw["name"] = f"{campaign.name}-{run.point_id}"
    overrides = []
    for name, value in run.axes.items():
        if name == "fault":
            raw["faults"] = [*raw.get("faults", []), value] if value else raw.get("faults", [])
        else:
            overrides.append(f"{name}={json.dumps(value)}")
    return apply_overrides(raw, overrides)


def _validate_runs(campaign: Campaign) -> None:
    """Validate each distinct run scenario now: a bad axis value fails before any run."""
    from twin.scenario import validate_scenario

    problems = []
    for run in campaign.runs:
        try:
            validate_scenario(scenario_of(campaign, run), f"run {run.point_id}")
        except ScenarioError as exc:
            axes = json.dumps(run.axes, default=str)
            problems += [Problem(f"axes ({axes}): {p.path}", p.message) for p in exc.problems]
    if problems:
        raise ScenarioError(problems[:20], f"campaign {campaign.name}")


def run_one(raw: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Run one scenario (on a worker); never raises: failures come back as a row.

    A run that fails a run check (:class:`twin.run.RunCheckError`) is a failed row whose
    error lists the checks; its KPIs stay in its directory, not in the row.
    """
    from twin.run import RunCheckError, run_scenario
    from twin.rundir import RunDirLockedError
    from twin.scenario import validate_scenario

    started, started_cpu = time.perf_counter(), time.thread_time()
    row: dict[str, Any] = {"status": "finished", "error": None}
    metadata: dict[str, Any] = {}
    try:
        result = run_scenario(validate_scenario(raw), out_dir, compare_uncontrolled=False)
        row["kpis"], metadata = result.kpis, result.metadata
    except RunCheckError as exc:
        failures = "; ".join(str(failure) for failure in exc.failures)
        row.update(status="failed", error=f"failed run checks: {failures}", kpis={})
        metadata = exc.result.metadata
    except Exception as exc:  # noqa: BLE001 - a failed run is a result of the campaign
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}", kpis={})
        if isinstance(exc, TwinError) and not isinstance(exc, RunDirLockedError):
            metadata = _read_json(Path(out_dir) / "run.json") or {}  # written by this run
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "error.txt").write_text(traceback.format_exc())
    row["run_id"] = metadata.get("run_id")
    row["scenario_hash"] = metadata.get("scenario_hash")
    row["wall_s"] = time.perf_counter() - started
    row["cpu_s"] = time.thread_time() - started_cpu  # this run's thread: not the worker's others
    return row


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _results_problem(path: Path) -> str | None:
    """Why ``results.parquet`` cannot be used (missing, or its footer unreadable), or None.

    A cheap check: only the Parquet footer (schema and row groups) is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with pq.ParquetFile(path) as parquet:
            parquet.metadata  # noqa: B018 - reading the footer is the check
    except (OSError, ValueError, pa.ArrowException) as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"{path.name} is corrupt ({detail})"
    return None


def _resumable(
    campaign: Campaign, run: RunSpec, run_dir: Path
) -> tuple[dict[str, Any] | None, str | None]:
    """The row of a point that finished earlier with the same inputs, or why it runs again.

    Returns ``(row, None)`` to resume, ``(None, reason)`` to run again (``reason`` is
    None for a point that never ran).
    """
    from twin.identity import input_changes, input_digests
    from twin.scenario import validate_scenario

    meta = _read_json(run_dir / "run.json")
    if meta is None:
        return None, None
    if meta.get("status") != "finished":
        return None, f"the earlier run is {meta.get('status')!r}"
    kpis = _read_json(run_dir / "kpis.json")
    if kpis is None:
        return None, "the earlier run's kpis.json is missing or unreadable"
    damaged = _results_problem(run_dir / "results.parquet")
    if damaged is not None:
        return None, f"the earlier run's {damaged}"
    scenario = validate_scenario(scenario_of(campaign, run), f"run {run.point_id}")
    changes = input_changes(meta, scenario, input_digests(scenario))
    if changes:
        return None, "inputs changed: " + "; ".join(changes)
    row = {
        "status": "finished",
        "error": None,
        "kpis": kpis,
        "wall_s": meta.get("wall_s"),
        "run_id": meta.get("run_id"),
        "scenario_hash": meta.get("scenario_hash"),
        "resumed": True,
    }
    return row, None


def execute(
    campaign: Campaign,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    client: Any = None,
    executor: str = "dask",
    after: Callable[[Path, pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Run every point not finished yet (or whose inputs changed); write the summary.

    The campaign directory is locked while it runs (a second campaign into it gets
    :class:`twin.rundir.RunDirLockedError`).

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://host:port`` of a running dask scheduler; default: a ``LocalCluster`` of
        ``n_workers`` single-threaded worker processes.
    n_workers : int, optional
        Worker processes of the local cluster, or threads with ``executor="threads"``;
        default: one per usable CPU (:func:`usable_cpus`).
    client : dask.distributed.Client, optional
        Use this client (and its cluster) as it is; it is not closed.
    executor : {"dask", "threads"}
        Where the runs execute: on dask, or in ``n_workers`` threads of this process
        (no ``scheduler`` or ``client`` then).
    after : callable, optional
        ``(campaign dir, summary) -> summary``, called once every point is done and the
        summary written: a feature adds its columns (``twin campaign --diagnose``) and
        the summary is written again with them.

    Raises
    ------
    TwinError
        If the campaign has no runs (no summary is written), or the executor is unknown
        or given a dask scheduler or client.
    RunDirLockedError
        If another campaign is executing into ``out_dir``.
    """
    from twin.rundir import lock_dir

    if executor not in EXECUTORS:
        raise TwinError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "threads" and (scheduler is not None or client is not None):
        raise TwinError("executor 'threads' runs in this process: give no scheduler or client")
    if not campaign.runs:
        raise TwinError(f"campaign {campaign.name}: no runs to execute (nothing written)")
    out = Path(out_dir).resolve()  # workers may run elsewhere: give them absolute paths
    n_workers = usable_cpus() if n_workers is None else n_workers
    with lock_dir(out):
        summary = _execute(campaign, out, scheduler, n_workers, progress, client, executor)
        if after is not None:
            summary = after(out, summary)
            _write_summary(summary, out)
        return summary


def local_cluster(n_workers: int) -> Any:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes for runs.

    The scheduler's HTTP server listens on a free port (two clusters at once never
    collide); the workers start with :data:`LOCAL_WORKER_CONFIG` (a remote cluster keeps
    its own configuration).

    Parameters
    ----------
    n_workers : int
        Worker processes.

    Returns
    -------
    dask.distributed.LocalCluster
    """
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set(LOCAL_WORKER_CONFIG):
        return LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )


def dispatch(
    jobs: dict[str, tuple[dict[str, Any], str]],
    *,
    executor: str = "dask",
    n_workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    name: str = "runs",
) -> Iterator[tuple[str, Any]]:
    """Run ``{key: (raw scenario, run dir)}`` with :func:`run_one`; yield ``(key, future)``.

    As each run is done, on dask (a ``LocalCluster`` of ``n_workers``, or ``scheduler``
    or ``client``, as :func:`execute`) or in ``n_workers`` threads; a future's
    ``result()`` is the run's row (it raises only if the worker was lost). Close the
    generator (``contextlib.closing``) to stop a local cluster early.
    """
    if executor not in EXECUTORS:
        raise TwinError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    n_workers = usable_cpus() if n_workers is None else n_workers
    if executor == "threads":
        return _in_threads(jobs, n_workers)
    return _on_dask(jobs, scheduler, n_workers, client, name)


def _on_dask(
    jobs: dict[str, tuple[dict[str, Any], str]],
    scheduler: str | None,
    n_workers: int,
    client: Any,
    name: str,
) -> Iterator[tuple[str, Any]]:
    """Submit ``{key: (raw scenario, run dir)}`` to dask; yield ``(key, future)`` as done."""
    from dask.distributed import Client, as_completed

    cluster = None
    own_client = client is None
    if own_client and scheduler is None:
        cluster = local_cluster(n_workers)
    if own_client:
        client = Client(scheduler or cluster)
    try:
        futures = {
            client.submit(
                run_one,
                raw,
                run_dir,
                # unique: two campaigns on one scheduler must not share a task
                key=f"{name}-{key}-{secrets.token_hex(4)}",
                pure=False,
            ): key
            for key, (raw, run_dir) in jobs.items()
        }
        for future in as_completed(futures):
            yield futures[future], future
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _in_threads(
    jobs: dict[str, tuple[dict[str, Any], str]], n_workers: int
) -> Iterator[tuple[str, Any]]:
    """Run ``{key: (raw scenario, run dir)}`` in threads; yield ``(key, future)`` as done."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="twin-run") as pool:
        futures = {pool.submit(run_one, raw, run_dir): key for key, (raw, run_dir) in jobs.items()}
        for future in as_completed(futures):
            yield futures[future], future


def _execute(
    campaign: Campaign,
    out: Path,
    scheduler: str | None,
    n_workers: int,
    progress: bool,
    client: Any,
    executor: str,
) -> pd.DataFrame:
    """The body of :func:`execute`, in a locked campaign directory."""
    from rich.progress import Progress

    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    reasons: dict[str, str] = {}
    todo = []
    for run in campaign.runs:
        done, reason = _resumable(campaign, run, out / "runs" / run.point_id)
        if done is not None:
            rows[run.point_id] = done
        else:
            todo.append(run)
            if reason is not None:
                reasons[run.point_id] = reason
    if todo:
        jobs = {
            run.point_id: (scenario_of(campaign, run), str(out / "runs" / run.point_id))
            for run in todo
        }
        done = dispatch(
            jobs,
            executor=executor,
            n_workers=n_workers,
            scheduler=scheduler,
            client=client,
            name=campaign.name,
        )
        with closing(done), Progress(disable=not progress) as bar:
            task = bar.add_task(f"{campaign.name}: {len(todo)} runs", total=len(todo))
            for point_id, future in done:
                try:
                    rows[point_id] = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker, say
                    rows[point_id] = {
                        "status": "failed",
                        "error": f"{type(exc).__name__}: {exc}",
                        "kpis": {},
                    }
                bar.advance(task)
    for point_id, reason in reasons.items():
        rows[point_id]["rerun_reason"] = reason
    summary = summarise(campaign, rows, out)
    _write_summary(summary, out)
    return summary


def _write_summary(summary: pd.DataFrame, out: Path) -> None:
    summary.to_parquet(out / "summary.parquet", index=False)
    summary.to_csv(out / "summary.csv", index=False)


def _recovery_h(run_dir: Path, ref_dir: Path, fault_end: pd.Timestamp) -> float:
    """Hours after the fault's end until SoC and exchange are back with the reference."""
    from twin.errors import ResultsError
    from twin.results import open_results, wide

    try:  # lazy: only the two quantities compared are read
        ours, ref = open_results(run_dir), open_results(ref_dir)
    except (OSError, ResultsError):
        return math.nan
    poc = (
        wide(ours, "grid", "p_kw")["poc"] - wide(ref, "grid", "p_kw")["poc"]
    ).abs() <= RECOVERY_KW
    soc_ours, soc_ref = wide(ours, "battery", "soc"), wide(ref, "battery", "soc")
    back = poc
    if not soc_ours.empty:
        back &= ((soc_ours - soc_ref).abs() <= RECOVERY_SOC).all(axis=1)
    after = back[back.index >= fault_end]
    if after.empty:
        return math.nan
    bad = np.flatnonzero(~after.to_numpy())
    if bad.size == 0:
        return 0.0
    if bad[-1] == len(after) - 1:
        return math.nan  # not back by the end of the run
    return float((after.index[bad[-1] + 1] - fault_end).total_seconds() / 3600.0)


def summarise(campaign: Campaign, rows: dict[str, dict[str, Any]], out: Path) -> pd.DataFrame:
    """One row per point: axes, run, status, KPIs, deltas against the reference, recovery."""
    records = []
    for run in campaign.runs:
        row = rows.get(run.point_id, {"status": "missing", "kpis": {}})
        record: dict[str, Any] = {
            "point_id": run.point_id,
            "reference": run.reference,
            "run_id": row.get("run_id"),
            "scenario_hash": row.get("scenario_hash"),
            "status": row["status"],
            "error": row.get("error"),
            "resumed": bool(row.get("resumed", False)),
            "rerun_reason": row.get("rerun_reason"),
            "wall_s": row.get("wall_s"),
            "cpu_s": row.get("cpu_s"),
        }
        for name, value in run.axes.items():
            if name == "fault":
                for key in ("kind", "target", "start", "duration", "severity"):
                    record[f"fault.{key}"] = (value or {}).get(key)
            else:
                record[name] = value if not isinstance(value, list | dict) else json.dumps(value)
        kpis = row.get("kpis") or {}
        record.update({k: v for k, v in kpis.items() if isinstance(v, int | float)})
        ref = rows.get(run.reference or "", {}).get("kpis") or {}
        for key in RESILIENCE_KPIS:
            if run.reference is not None:
                record[f"delta_{key}"] = kpis.get(key, math.nan) - ref.get(key, math.nan)
        if run.reference is not None and row["status"] == "finished":
            labels_path = out / "runs" / run.point_id / "labels.json"
            end = (
                json.loads(labels_path.read_text())["faults"][-1]["end"]
                if labels_path.exists()
                else None
            )
            record["recovery_h"] = (
                _recovery_h(
                    out / "runs" / run.point_id, out / "runs" / run.reference, pd.Timestamp(end)
                )
                if end
                else math.nan
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


def _start_key(start: Any) -> float:
    """Order fault starts by time ('2h' before '12h'; timestamps as they are)."""
    from twin.units import parse_duration_s

    try:
        return float(parse_duration_s(str(start)))
    except ValueError:
        return float(pd.Timestamp(str(start)).timestamp())


def _sizing_axes(summary: pd.DataFrame) -> tuple[str, str] | None:
    """The two numeric axes a what-if campaign varies, when it priced its points.

    Axes are the summary's scenario paths (``assets.battery[0].e_kwh``); the chart needs
    money or carbon figures (``npv_eur``, ``co2_avoided_year_kg``) and exactly two numeric
    paths with more than one value among the fault-free points (``summary`` holds only
    those: :func:`_fault_free`).
    """
    if not {"npv_eur", "co2_avoided_year_kg"} & set(summary.columns):
        return None
    varying = [
        c
        for c in summary.columns
        if isinstance(c, str)
        and ("." in c or "[" in c)
        and pd.api.types.is_numeric_dtype(summary[c])
        and summary[c].nunique() > 1
    ]
    return (varying[0], varying[1]) if len(varying) == 2 else None


def _fault_free(summary: pd.DataFrame) -> pd.DataFrame:
    """The points of a campaign without a fault (no fault-free ``reference`` of their own)."""
    return summary[summary["reference"].isna()]


def report(out_dir: str | Path, top: int = 10) -> tuple[Path, pd.DataFrame]:
    """Heat maps of KPI deltas by fault kind and start time; the worst cases.

    One self-contained interactive page (the components of ``twin report``:
    :mod:`twin.reporting.page`): a heat map per delta, the worst runs by extra cost, the
    runs that failed. Returns the HTML page and the table of the worst runs.
    """
    import plotly.graph_objects as go

    from twin.reporting.labels import kpi_spec
    from twin.reporting.page import Absent, Content, Section, render_page

    out = Path(out_dir)
    try:
        summary = pd.read_parquet(out / "summary.parquet")
        summary[["run_id", "reference", "status", "error"]]
    except (OSError, ValueError, KeyError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).split("\n")[0]
        path = out / "summary.parquet"
        raise ResultsError(f"{path} is not a campaign summary: {detail}") from None
    faulted = summary[summary["reference"].notna() & (summary["status"] == "finished")]
    fault_free = _fault_free(summary)
    sizing = _sizing_axes(fault_free)
    if faulted.empty and sizing is None:
        raise TwinError(
            f"{out}: nothing to report: no finished runs with a fault, and no economics or "
            "carbon figures over two numeric axes"
        )
    metrics = [
        m
        for m in (
            "delta_cost_scored_eur",
            "delta_unserved_kwh",
            "delta_voltage_violations",
            "recovery_h",
        )
        if m in faulted and not faulted.empty
    ]
    figures = []
    for metric in metrics:
        table = faulted.pivot_table(
            index="fault.kind", columns="fault.start", values=metric, aggfunc="mean"
        )
        table = table[sorted(table.columns, key=_start_key)]
        what = (
            "recovery time (h)"
            if metric == "recovery_h"
            else f"change of {kpi_spec(metric.removeprefix('delta_')).label}"
        )
        fig = go.Figure(
            go.Heatmap(
                z=table.to_numpy(dtype=float),
                x=[str(c) for c in table.columns],
                y=[str(i) for i in table.index],
                colorscale="Magma",
                reversescale=True,
                colorbar={"title": {"text": metric}},
                hovertemplate="%{y} at %{x}: %{z:,.3f}<extra></extra>",
            )
        )
        fig.update_layout(
            title={"text": f"{what}, mean over the other axes", "x": 0.0},
            height=int(40 * len(table) + 200),
            template="plotly_white",
            xaxis={"title": {"text": "fault start (after the scenario start)"}, "type": "category"},
            yaxis={"title": {"text": "fault kind"}, "type": "category"},
        )
        figures.append(fig)
    columns = ["point_id", "run_id", "fault.kind", "fault.target", "fault.start", "fault.severity"]
    columns += [c for c in faulted.columns if c in ("controller", "seed")]
    columns += metrics
    columns = [c for c in columns if c in faulted.columns]
    extra = "delta_cost_scored_eur"
    ranked = faulted.sort_values(extra, ascending=False) if extra in metrics else faulted
    worst = ranked[columns].head(top)
    failed = summary[summary["status"] != "finished"][["point_id", "status", "error"]]

    def heat_maps(runs: object) -> Content | Absent:
        return Content(figures=tuple(figures), linked=False) if figures else Absent("no faults")

    def worst_cases(runs: object) -> Content | Absent:
        if worst.empty:
            return Absent("no runs with a fault")
        table = worst.to_html(index=False, float_format=lambda v: f"{v:,.3f}")
        return Content(html=table, linked=False)

    def what_to_build(runs: object) -> Content | Absent:
        if sizing is None:
            return Absent("no economics or carbon figures over two numeric axes")
        from twin.reporting.what_to_build import what_to_build_figure
        from twin.whatif.campaign_chart import WHAT_TO_BUILD_KPIS

        x, y = sizing
        kpis = tuple(k for k in WHAT_TO_BUILD_KPIS if k in fault_free.columns)
        try:
            figure = what_to_build_figure(fault_free, x, y, kpis)
        except Exception as exc:  # noqa: BLE001 - one chart that cannot be drawn, not the page
            return Absent(f"the chart could not be drawn: {type(exc).__name__}: {exc}")
        return Content(figures=(figure,), linked=False)

    def failures(runs: object) -> Content | Absent:
        if failed.empty:
            return Absent("every run finished")
        return Content(html=failed.to_html(index=False), linked=False)

    sections = [
        Section("build", "What should I build: NPV and avoided emissions", what_to_build),
        Section("heatmaps", "KPI changes by fault kind and start", heat_maps),
        Section("worst", "Worst cases (extra cost against the fault-free twin)", worst_cases),
        Section("failed", "Failed runs", failures),
    ]
    title = f"Campaign {out.name}: {len(summary)} runs, {len(failed)} failed"
    subtitle = f"{out}: faulted runs against their fault-free reference"
    page = out / "report.html"
    page.write_text(render_page([], title, subtitle, sections), encoding="utf-8")
    return page, worst
