"""Diagnostics: train on one campaign, score on a held-out campaign and fault-free weeks.

Usage: python -m benchmarks.diagnostics [--work DIR] [--workers 2] [--subset N]

1. runs ``scenarios/campaigns/diagnostics_train.yaml`` (summer day, SimBench
   1-LV-rural1, every fault kind at three start times, two seeds) and trains the learned
   models on it (``twin diagnostics train``);
2. runs ``diagnostics_holdout.yaml`` (a winter day on SimBench 1-LV-semiurb4, other
   targets, start times, severities and seed), ``diagnostics_weeks.yaml`` (fault-free
   weeks, both seasons and grids) and ``diagnostics_fine.yaml`` (every kind in an hour
   at 1 s steps: the delay in seconds);
3. diagnoses every held-out run three ways, offline from its measured rows: the engine
   with the learned models, the engine with its physics rules only, and the static
   threshold baseline (an alert while a health index is below its threshold);
4. prints, per way, the event-level table per fault kind (events, recall, precision,
   F1, median/p90 delay, diagnosis accuracy; the kinds the sensors could not reveal are
   listed with the reason), the false alarms per site-week on the fault-free weeks, and
   the engine's share of a run's wall time (offline engine per step against the run's
   own loop per step from ``run.json``), against the issue's goals. The held-out runs
   are diagnosed in ``--workers`` processes;
5. shows what the learned anomaly model alone would catch (an asset scoring above 0.5
   for two steps in a row) per fault kind, and its episodes on the fault-free weeks.

Campaign directories resume: a second call reuses the finished runs. ``--subset N``
keeps N faulted points of each campaign (and their references): a quick check that the
benchmark works, not its figures. Results: ``<work>/diagnostics_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.run_year import machine
from twin.campaign import Campaign, execute, load_campaign
from twin.diagnostics.engine import Settings
from twin.diagnostics.report import HEADER, score_rows, summary_line
from twin.diagnostics.run import diagnose_run
from twin.diagnostics.score import GRACE_STEPS, aggregate_scores, score_dir
from twin.diagnostics.train import campaign_runs, train_campaign

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "scenarios" / "campaigns"
#: The three ways of diagnosing: (learned model?, engine settings).
WAYS = {
    "engine + learned": (True, None),
    "engine, rules only": (False, None),
    "static thresholds": (False, Settings(mode="threshold")),
}
GOALS = (
    "goals: macro F1 >= 0.9 over revealable kinds; median delay <= 2 steps (15 min); "
    "false alarms <= 1 per site-week; diagnosis >= 85 %; engine <= 10 % of a run's wall time"
)


def subset(campaign: Campaign, n: int | None) -> Campaign:
    """The campaign with only its first ``n`` faulted points (and their references)."""
    if n is None:
        return campaign
    faulted = [r for r in campaign.runs if r.reference is not None]
    faulted = faulted[:: max(1, len(faulted) // n)][:n]  # spread over the fault kinds
    keep = {r.point_id for r in faulted} | {r.reference for r in faulted}
    if not faulted:  # fault-free only (the weeks): keep n of them
        keep = {r.point_id for r in campaign.runs[:n]}
    campaign.runs = [r for r in campaign.runs if r.point_id in keep]
    return campaign


def run_campaign(name: str, work: Path, workers: int, n: int | None) -> Path:
    out = work / name
    campaign = subset(load_campaign(CAMPAIGNS / f"{name}.yaml"), n)
    started = time.perf_counter()
    summary = execute(campaign, out, n_workers=workers, progress=False)
    failed = summary[summary["status"] != "finished"]
    print(
        f"{name}: {len(summary)} runs ({len(failed)} failed) in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return out


def _diagnose_one(run_dir: Path, model: Path | None, settings: Any) -> tuple[Any, ...]:
    found = diagnose_run(run_dir, model=model, settings=settings, write=False, features=False)
    meta = json.loads((run_dir / "run.json").read_text())
    return (
        score_dir(run_dir, found.alerts, write=False),
        found.engine_s,
        float(meta.get("loop_s") or 0.0),
        float(meta.get("wall_s") or 0.0),
        found.steps,
    )


def diagnose_all(
    directory: Path, model: Path | None, settings: Any, workers: int
) -> dict[str, Any]:
    """Pooled scores of every finished run, and the engine's cost per step."""
    runs = campaign_runs(directory)
    # spawned, not forked: this process has threads (dask's client, Arrow's pool)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        done = list(pool.map(_diagnose_one, runs, [model] * len(runs), [settings] * len(runs)))
    return aggregate_scores([d[0] for d in done])


def cost(directory: Path, model: Path | None, settings: Any, n: int = 5) -> dict[str, float]:
    """Engine and run loop per step over ``n`` runs diagnosed one by one in this process.

    Apart from :func:`diagnose_all`: timings taken beside another process are not the
    engine's own.
    """
    done = [_diagnose_one(run, model, settings) for run in campaign_runs(directory)[:n]]
    steps = max(sum(d[4] for d in done), 1)
    engine, loop = sum(d[1] for d in done) / steps, sum(d[2] for d in done) / steps
    return {
        "engine_ms_per_step": 1e3 * engine,
        "loop_ms_per_step": 1e3 * loop,
        "wall_ms_per_step": 1e3 * sum(d[3] for d in done) / steps,
        "share": engine / max(loop, 1e-12),
    }


#: The anomaly model alone: an asset is flagged after this many steps in a row above 0.5.
PERSIST = 2


def _episodes(scores: Any) -> list[int]:
    """Steps at which runs of :data:`PERSIST` steps above 0.5 complete."""
    out, run = [], 0
    for k, value in enumerate(scores):
        run = run + 1 if value > 0.5 else 0
        if run == PERSIST:
            out.append(k)
    return out


def _anomaly_one(run_dir: Path, model_dir: Path) -> dict[str, Any]:
    """Per asset, the steps where the anomaly model alone would raise an episode."""
    import numpy as np
    import pandas as pd

    from twin.diagnostics.learned import LearnedAnomalyScorer, load

    scorer = LearnedAnomalyScorer(load(model_dir))
    features = diagnose_run(run_dir, write=False).features
    flagged: dict[str, list[str]] = {}
    for (asset, kind), rows in features.groupby(["asset", "asset_kind"], sort=False):
        names = scorer.model.features.get(kind)
        if names is None:
            continue
        rows = rows.sort_values("time")
        scores = scorer.scores(kind, rows[names].to_numpy(float), names)
        times = pd.to_datetime(rows["time"], utc=True).to_numpy()
        flagged[f"{kind}/{asset}"] = [str(times[k]) for k in _episodes(np.nan_to_num(scores))]
    labels = run_dir / "labels.json"
    scores = score_dir(run_dir, [], write=False)
    record = scores["records"][-1] if labels.is_file() else None
    return {
        "flagged": flagged,
        "record": record,
        "days": scores["days"],
        "step_s": scores["step_s"],
    }


def anomaly_alone(holdout: Path, weeks: Path, model_dir: Path, workers: int) -> dict[str, Any]:
    """Recall of the anomaly model alone per fault kind, and its episodes on quiet weeks.

    Not what the engine does (it does not consult the anomaly model yet): what the
    model would add, matched like the alerts (the label's asset, an episode completing
    in the label's window plus the grace).
    """
    import pandas as pd

    runs = campaign_runs(holdout) + campaign_runs(weeks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        done = list(pool.map(_anomaly_one, runs, [model_dir] * len(runs)))
    recall: dict[str, list[int]] = {}
    quiet_days, quiet_episodes = 0.0, 0
    for run_dir, found in zip(runs, done, strict=True):
        record = found["record"]
        if record is None:
            if run_dir.parent.parent == weeks:
                quiet_days += found["days"]
                quiet_episodes += sum(len(v) for v in found["flagged"].values())
            continue
        if not record["revealable"]:
            continue
        t0 = pd.Timestamp(record["start"])
        t1 = pd.Timestamp(record["end"]) + pd.Timedelta(seconds=GRACE_STEPS * found["step_s"])
        hit = any(
            t0 <= pd.Timestamp(t, tz="UTC") <= t1
            for key, stamps in found["flagged"].items()
            if key.split("/", 1)[1] == record["asset"]
            for t in stamps
        )
        recall.setdefault(record["kind"], []).append(int(hit))
    return {
        "recall": {k: sum(v) / len(v) for k, v in sorted(recall.items())},
        "events": {k: len(v) for k, v in sorted(recall.items())},
        "quiet_episodes_per_site_week": 7 * quiet_episodes / max(quiet_days, 1e-9),
    }


def markdown(scores: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in score_rows(scores)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Campaign directories.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subset", type=int, default=None, help="Faulted points per campaign.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-diagnostics-"))
    print(machine(), flush=True)
    train = run_campaign("diagnostics_train", work, args.workers, args.subset)
    started = time.perf_counter()
    model_dir = work / "model"
    model = train_campaign(train, model_dir)
    print(
        f"trained on {model.meta['training']['runs']} runs, "
        f"{model.meta['training']['rows']:,} asset-steps in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    holdout = run_campaign("diagnostics_holdout", work, args.workers, args.subset)
    weeks = run_campaign("diagnostics_weeks", work, args.workers, args.subset)
    fine = run_campaign("diagnostics_fine", work, args.workers, args.subset)
    report: dict[str, Any] = {}
    for way, (learned, settings) in WAYS.items():
        use = model_dir if learned else None
        faults = diagnose_all(holdout, use, settings, args.workers)
        quiet = diagnose_all(weeks, use, settings, args.workers)
        timing = cost(holdout, use, settings)
        delays = [
            e["delay_median_steps"]
            for e in faults["kinds"].values()
            if e["events"] and e["delay_median_steps"] is not None
        ]
        report[way] = {
            "holdout": faults,
            "weeks": quiet,
            "false_alarms_per_site_week": 7 * (quiet["false_alarms_per_day"] or 0.0),
            "cost": timing,
            "median_delay_steps": statistics.median(delays) if delays else None,
        }
        print(f"\n## {way} (held-out faults)\n\n{markdown(faults)}\n")
        print(summary_line(faults))
        for kind, reason in faults["not_revealable"].items():
            print(f"  not revealable {kind}: {reason}")
        print(
            f"fault-free weeks: {quiet['false_alarms']} false alarms in {quiet['days']:.0f} "
            f"site-days = {report[way]['false_alarms_per_site_week']:.2f} per site-week; "
            f"engine {timing['engine_ms_per_step']:.3f} ms/step = {timing['share']:.1%} of "
            f"the run's loop ({timing['loop_ms_per_step']:.2f} ms/step; whole run "
            f"{timing['wall_ms_per_step']:.2f} ms/step)",
            flush=True,
        )
        if learned:  # a model refuses runs of another step than its training runs'
            print(f"\n### {way} at 1 s steps: not applicable (trained on 15-minute runs)")
            continue
        at_1s = diagnose_all(fine, use, settings, args.workers)
        delays_s = [
            e["delay_median_s"]
            for e in at_1s["kinds"].values()
            if e["events"] and e["delay_median_s"] is not None
        ]
        report[way]["fine"] = at_1s
        report[way]["median_delay_s_at_1s"] = statistics.median(delays_s) if delays_s else None
        print(f"\n### {way} at 1 s steps (diagnostics_fine)\n\n{markdown(at_1s)}\n")
        print(summary_line(at_1s))
        print(f"median of the kinds' median delays: {report[way]['median_delay_s_at_1s']} s")
    alone = anomaly_alone(holdout, weeks, model_dir, args.workers)
    report["anomaly model alone"] = alone
    print(f"\n## anomaly model alone (an asset {PERSIST} steps above 0.5; not in the engine)\n")
    for kind, share in alone["recall"].items():
        print(f"  {kind:24s} {share:.2f} of {alone['events'][kind]} revealable event(s)")
    print(f"  fault-free weeks: {alone['quiet_episodes_per_site_week']:.2f} episodes per site-week")
    print("\n" + GOALS)
    (work / "diagnostics_benchmark.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"results: {work / 'diagnostics_benchmark.json'}")


if __name__ == "__main__":
    main()
