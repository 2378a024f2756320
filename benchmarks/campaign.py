"""Campaign throughput: one-day runs one after another vs a dask LocalCluster.

Usage: python -m benchmarks.campaign [--runs 100] [--workers 2]

The runs are the demo day with ``--runs`` different seeds and a PV-shading fault at
varying start times (distinct, real runs). "sequential" runs them one by one in this
process (``twin.campaign.run_one``, as a worker would); "cluster" is ``twin campaign``'s
executor on a ``LocalCluster`` of ``--workers`` single-threaded processes, cluster
start-up included ("cold"), and the same on a cluster already up with the twin imported
("warm", what a long campaign sees). The table gives runs per minute and the speed-up.

Then what a worker costs and why a run is slower inside one: the campaign cluster's
start-up (the cluster up, then every worker having imported the twin), each worker's peak
RSS after its runs, the BLAS/OpenMP threads a worker's numpy would use
(``threadpoolctl``), and each run's wall and CPU time (its own thread's, from
:func:`twin.campaign.run_one`'s row) sequentially and in the warm workers: a run that
takes as much CPU but more wall inside a worker waits for a core (its worker's event
loop, the nanny, the scheduler and the client share the 2 cores with the runs); a run
that takes more CPU does more work (oversubscribed threads would show here).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from dask.distributed import Client, LocalCluster

from benchmarks.run_year import machine
from twin.campaign import Campaign, execute, expand, local_cluster, run_one, scenario_of

ROOT = Path(__file__).resolve().parents[1]


def make_campaign(runs: int) -> Campaign:
    base_path = ROOT / "scenarios" / "microgrid_day.yaml"
    starts = [f"{h}h" for h in range(1, 21)]
    campaign = Campaign(
        name="bench",
        base_path=base_path,
        base=yaml.safe_load(base_path.read_text()),
        axes={
            "seed": list(range(runs // len(starts) + 1)),
            "fault": [
                {"kind": "pv_shading", "target": "pv_roof", "duration": "3h", "severity": 0.5}
            ],
            "fault.start": starts,
        },
    )
    campaign.runs = [r for r in expand(campaign) if r.reference is not None][:runs]
    return campaign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    campaign = make_campaign(args.runs)
    work = Path(tempfile.mkdtemp(prefix="bench-campaign-"))

    started = time.perf_counter()
    per_run: dict[str, list[tuple[float, float]]] = {"sequential": []}
    for run in campaign.runs:
        row = run_one(scenario_of(campaign, run), str(work / "seq" / run.point_id))
        assert row["status"] == "finished", row["error"]
        per_run["sequential"].append((row["wall_s"], row["cpu_s"]))
    sequential = time.perf_counter() - started

    started = time.perf_counter()
    summary = execute(campaign, work / "cluster", n_workers=args.workers, progress=False)
    cluster = time.perf_counter() - started
    assert (summary["status"] == "finished").all()

    # The same runs on a cluster that is up and has imported the twin (a long campaign):
    # dask's default workers (statistical profiler on) and the campaign's own.
    workers: dict[str, Any] = {}

    def warm_run(make: Any, label: str) -> float:
        began = time.perf_counter()
        local = make()
        with local, Client(local) as client:
            client.wait_for_workers(args.workers)
            up = time.perf_counter() - began
            client.run(lambda: __import__("twin.run"))
            workers["start-up"] = (up, time.perf_counter() - began)
            started = time.perf_counter()
            summary = execute(campaign, work / label, progress=False, client=client)
            elapsed = time.perf_counter() - started
            workers["peak RSS MB"] = client.run(_peak_rss_mb)
            workers["BLAS threads"] = client.run(_blas_threads)
        assert (summary["status"] == "finished").all()
        per_run[label] = list(zip(summary["wall_s"], summary["cpu_s"], strict=True))
        return elapsed

    default = warm_run(
        lambda: LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ),
        "warm-default",
    )
    warm = warm_run(lambda: local_cluster(args.workers), "warm")

    n = len(campaign.runs)
    print(f"machine: {machine()}; {os.cpu_count()} CPUs; {n} one-day runs (96 steps each)")
    print(f"{'mode':<34}{'wall s':>9}{'runs/min':>10}{'speed-up':>10}")
    rate = n / sequential * 60
    print(f"{'sequential (one process)':<34}{sequential:>9.1f}{rate:>10.1f}{1.0:>10.2f}")
    label = f"LocalCluster, {args.workers} workers, cold"
    print(f"{label:<34}{cluster:>9.1f}{n / cluster * 60:>10.1f}{sequential / cluster:>10.2f}")
    label = f"dask defaults, {args.workers} workers, warm"
    print(f"{label:<34}{default:>9.1f}{n / default * 60:>10.1f}{sequential / default:>10.2f}")
    label = f"LocalCluster, {args.workers} workers, warm"
    print(f"{label:<34}{warm:>9.1f}{n / warm * 60:>10.1f}{sequential / warm:>10.2f}")
    print(
        "cold: cluster start-up and the workers' imports included; warm: a running cluster; "
        "dask defaults: its workers' statistical profiler on"
    )
    up, imported = workers["start-up"]
    print(
        f"\nthe campaign's cluster: workers up in {up:.2f} s, "
        f"the twin imported in all at {imported:.2f} s"
    )
    for address, rss in sorted(workers["peak RSS MB"].items()):
        threads = workers["BLAS threads"][address]
        print(f"worker {address}: peak RSS {rss:.0f} MB, BLAS/OpenMP threads {threads}")
    print(f"\n{'per run':<34}{'wall s (median)':>16}{'CPU s (median)':>16}{'wall/CPU':>10}")
    for label in ("sequential", "warm-default", "warm"):
        walls, cpus = (np.array(column) for column in zip(*per_run[label], strict=True))
        wall, cpu = float(np.median(walls)), float(np.median(cpus))
        print(f"{label:<34}{wall:>16.3f}{cpu:>16.3f}{wall / cpu:>10.2f}")
    print("CPU: the run's own thread (time.thread_time in twin.campaign.run_one)")


def _peak_rss_mb() -> float:
    """This process's peak resident set (MB): run on each worker."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _blas_threads() -> str:
    """The thread pools numpy's BLAS/OpenMP would use in this process: run on each worker."""
    from threadpoolctl import threadpool_info

    return ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()) or "none"


if __name__ == "__main__":
    main()
