"""What a field run did: each sample's fate and the run's summary (``field.json``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.field.plan import gateways
from adapters.field.schedule import Outcome

#: A prepared plant (:class:`adapters.field.emulator.Prepared`; not imported: it uses us).
Prepared = Any

__all__ = ["settle", "summarize"]


def _message_of_sample(prepared: Prepared) -> np.ndarray:
    """Index of the message carrying each sample (-1: none), shape (steps, sensors)."""
    messages, shape = prepared.messages, prepared.samples.truth_twin.shape
    m = np.arange(len(messages.step))
    if not prepared.batched:
        out = np.full(shape, -1, dtype=np.int64)
        out[messages.step, messages.unit] = m
        return out
    gw = gateways(prepared.sensors)
    per_gw = np.full((shape[0], len(gw)), -1, dtype=np.int64)
    per_gw[messages.step, messages.unit] = m
    out = per_gw[:, gw.index]
    return np.where(messages.sent, out, -1)


def settle(prepared: Prepared, outcome: Outcome) -> None:
    """Fill the samples' ``published``, ``copies`` and ``publish_wall`` from the outcome."""
    of = _message_of_sample(prepared)
    has = of >= 0
    safe = np.where(has, of, 0)
    copies = np.where(has, outcome.accepted[safe], 0).astype(np.int8)
    prepared.samples.copies = copies
    prepared.samples.published = copies > 0
    prepared.samples.publish_wall = np.where(has, outcome.handed_wall[safe], np.nan)


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {"p50_s": None, "p99_s": None, "max_s": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50_s": float(p50), "p99_s": float(p99), "max_s": float(values.max())}


def summarize(
    prepared: Prepared, outcome: Outcome, due: np.ndarray, link: Any, flushed: bool
) -> dict[str, Any]:
    """``field.json``: options, counts, rates, lateness, link statistics and status."""
    s, msg = prepared.samples, prepared.messages
    present = np.isfinite(s.truth_twin)
    values_handed = int(s.copies.astype(np.int64).sum())
    handed = np.isfinite(outcome.handed_wall)
    wall_s = max(outcome.ended_wall - outcome.started_wall, 1e-9)
    first = float(np.nanmin(outcome.handed_wall)) if handed.any() else outcome.started_wall
    busy_s = max(outcome.ended_wall - first, 1e-9)
    stats = link.stats.as_dict()
    problems = []
    if stats["dropped"] or stats["refused"]:
        problems.append(
            f"the link dropped {stats['dropped']} message(s) ({stats['refused']} refused by "
            "the broker): see link.refused_topics"
        )
    if not flushed:
        problems.append(f"{link.pending} message(s) not acknowledged by the broker in time")
    if outcome.stopped:
        problems.append(f"stopped early: {int((~handed).sum())} message(s) not published")
    lateness = _percentiles(outcome.handed_wall - due)
    limit = prepared.options.max_lateness_s
    if lateness["p99_s"] is not None and lateness["p99_s"] > limit:
        problems.append(
            f"published late: lateness p99 {lateness['p99_s']:.3f} s > --max-lateness-s "
            f"{limit:g} s (the machine or the link could not keep up with the plant clock)"
        )
    names = gateways(prepared.sensors).names
    truth = prepared.truth
    return {
        "status": "failed" if problems else "ok",
        "problems": problems,
        "scenario": prepared.scenario.name,
        "plant_run_dir": str(truth.run_dir),
        "plant_run_id": truth.run_id,
        "start": truth.times[0].isoformat(),
        "step_s": truth.step_s,
        "steps": len(truth.times),
        "wall_start": prepared.wall_start,
        "speed": prepared.options.speed,
        "seed": prepared.seed,
        "options": prepared.options.public(),
        "counts": {
            "sensors": len(prepared.sensors),
            "gateways": len(names),
            "samples": int(present.size),
            "no_truth": int((~present).sum()),
            "dropouts": int((present & ~msg.sent).sum()),
            "values_planned": int(msg.sent.sum()),
            "values_published": int(s.published.sum()),
            "value_copies_accepted": values_handed,
            "messages_planned": len(msg.step),
            "messages_handed": int(handed.sum()),
            "message_copies_accepted": int(outcome.accepted.sum()),
            "duplicated_messages": int((msg.copies == 2).sum()),
            "reordered_messages": int(msg.reordered.sum()),
            "biased_samples": int((s.bias_twin != 0).sum()),
            "bad_quality_samples": int((msg.sent & (msg.quality == 0)).sum()),
        },
        "skew_s": {str(g): float(v) for g, v in zip(names, msg.skew_s, strict=True)},
        "rates": {
            "messages_per_s": float(outcome.accepted.sum() / busy_s),
            "values_per_s": float(values_handed / busy_s),
            "publish_wall_s": busy_s,
            "wall_s": wall_s,
        },
        "lateness": lateness,
        "link": stats,
        "flushed": flushed,
    }
