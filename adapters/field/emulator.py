"""The field emulator end to end: true plant, readings, impairments, publishing, truth.

:func:`prepare` runs the scenario and lays out every sample and message (no network);
:func:`run_field` publishes them on the plant clock through one
:class:`adapters.mqtt.link.MqttLink` (QoS 1, bounded outbox) and writes ``truth.parquet``,
``sensors.parquet``, ``mapping.csv`` and ``field.json`` into the output directory (the
true plant's own run directory is ``<out>/plant``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.field.errors import FieldError, FieldLinkError
from adapters.field.impair import Impairments, Messages, plan_messages
from adapters.field.noise import Bias, measure
from adapters.field.plan import PlanOptions, Plant, gateways, sensor_plan
from adapters.field.records import Samples, write_mapping_csv, write_sensors, write_truth
from adapters.field.schedule import publish_on_schedule
from adapters.field.summary import settle, summarize
from adapters.field.truth import Truth, run_truth, truth_matrix
from adapters.field.wire import json_batch, senml_pack, topic_payload
from adapters.mqtt.auth import MqttAuth

__all__ = ["FieldOptions", "FieldResult", "Prepared", "default_wall_start", "prepare", "run_field"]

#: Outbox of the link: 20 s of 5,000 messages/s (a broker restart of ~5 s is ridden out).
BUFFER_MAX = 100_000
#: A run whose publish lateness p99 exceeds this (wall s) failed (``--max-lateness-s``).
MAX_LATENESS_S = 2.0


def default_wall_start(now: float | None = None) -> float:
    """Now rounded up to the next whole second, plus one second (the clock rule)."""
    return float(math.ceil(time.time() if now is None else now) + 1)


@dataclass(frozen=True)
class FieldOptions:
    """Everything ``twin field`` takes besides the scenario (see the command's help)."""

    plan: PlanOptions = field(default_factory=PlanOptions)
    impair: Impairments = field(default_factory=Impairments)
    speed: float = 1.0
    wall_start: float | None = None
    seed: int | None = None
    biases: tuple[Bias, ...] = ()
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: str = "twin-field"
    auth: MqttAuth | None = None
    buffer_max: int = BUFFER_MAX
    flush_timeout_s: float = 30.0
    max_lateness_s: float = MAX_LATENESS_S

    def check(self) -> None:
        """Raise :class:`FieldError` naming a bad option."""
        self.plan.check()
        self.impair.check()
        if not 1e-3 <= self.speed <= 1e6:
            raise FieldError(f"--speed: expected 0.001..1e6, got {self.speed}")
        if self.wall_start is not None and not 0 < self.wall_start < 1e11:
            raise FieldError(f"--wall-start: expected epoch seconds, got {self.wall_start}")
        if not 0.0 <= self.max_lateness_s <= 86400.0:
            raise FieldError(
                f"--max-lateness-s: expected 0..86400 wall seconds, got {self.max_lateness_s}"
            )
        if self.buffer_max < 1:
            raise FieldError(f"--buffer: expected >= 1, got {self.buffer_max}")

    def public(self) -> dict[str, Any]:
        """The options as plain data (no password)."""
        out = {
            "plan": asdict(self.plan),
            "impair": asdict(self.impair),
            "speed": self.speed,
            "wall_start": self.wall_start,
            "seed": self.seed,
            "biases": [asdict(b) for b in self.biases],
            "broker": self.broker,
            "client_id": self.client_id,
            "buffer_max": self.buffer_max,
            "flush_timeout_s": self.flush_timeout_s,
            "max_lateness_s": self.max_lateness_s,
        }
        out["auth"] = self.auth.public() if self.auth is not None else None
        return out


@dataclass
class Prepared:
    """A plant's samples and messages, ready to publish."""

    scenario: Any
    options: FieldOptions
    sensors: pd.DataFrame
    truth: Truth
    samples: Samples
    messages: Messages
    seed: int
    wall_start: float | None = None

    @property
    def batched(self) -> bool:
        """Gateway batches (JSON array, SenML) rather than per-sensor messages."""
        return self.options.plan.fmt != "topic"

    def check_not_late(self, now: float) -> None:
        """Refuse a wall start more than one step (in wall seconds) before ``now``.

        Raises
        ------
        FieldError
            Naming ``--wall-start``, how far in the past it is and what is accepted.
        """
        step_wall = self.truth.step_s / self.options.speed
        late = now - float(self.wall_start)
        if late > step_wall:
            raise FieldError(
                f"--wall-start: {self.wall_start:.3f} is {late:.3f} s in the past when "
                f"publishing starts; expected at most one step ({step_wall:g} wall s) ago, "
                "or omit it (now + 1 s): messages would all go out at once, late"
            )

    def due_wall(self, wall_start: float) -> np.ndarray:
        """Epoch seconds each message is due on the plant clock."""
        offsets = (self.truth.times - self.truth.times[0]).total_seconds().to_numpy()
        plant_s = offsets[self.messages.step] + self.messages.delay_s
        return wall_start + plant_s / self.options.speed


def prepare(scenario: Any, options: FieldOptions, out_dir: Path) -> Prepared:
    """Run the true plant into ``out_dir/plant`` and lay out samples and messages.

    Raises
    ------
    FieldError
        For bad options, a failed plant run or a bias on an unknown sensor.
    """
    options.check()
    plant = Plant.from_scenario(scenario)
    sensors = sensor_plan(plant, options.plan)
    branches = list(dict.fromkeys(sensors.loc[sensors["kind"].isin(["line", "trafo"]), "element"]))
    truth = run_truth(scenario, out_dir / "plant", net=plant.net, branches=branches)
    truth_twin = truth_matrix(truth, sensors)
    seed = scenario.seed if options.seed is None else options.seed
    offsets = (truth.times - truth.times[0]).total_seconds().to_numpy()
    value, sigma, bias = measure(truth_twin, sensors, seed, offsets, options.biases)
    gw = gateways(sensors)
    messages = plan_messages(
        options.impair, np.isfinite(truth_twin), gw, truth.step_s, options.plan.fmt != "topic"
    )
    t_true = truth.times.as_unit("ns").asi8 / 1e9
    samples = Samples(
        t_true=t_true,
        t=t_true[:, None] + messages.skew_s[gw.index][None, :],
        value_twin=value,
        truth_twin=truth_twin,
        sigma_twin=sigma,
        bias_twin=bias,
        published=np.zeros(truth_twin.shape, dtype=bool),
        copies=np.zeros(truth_twin.shape, dtype=np.int8),
        publish_wall=np.full(truth_twin.shape, np.nan),
        quality=messages.quality,
    )
    return Prepared(scenario, options, sensors, truth, samples, messages, seed)


def renderer(prepared: Prepared) -> Callable[[int], tuple[str, bytes]]:
    """``message index -> (topic, payload)`` for the prepared format."""
    sensors, samples, messages = prepared.sensors, prepared.samples, prepared.messages
    fmt, prefix = prepared.options.plan.fmt, prepared.options.plan.prefix
    topics = sensors["topic"].tolist()
    units = sensors["unit"].tolist()
    field_values = samples.value_twin * sensors["factor"].to_numpy(float)
    quality = messages.quality
    if fmt == "topic":

        def one(m: int) -> tuple[str, bytes]:
            k, s = int(messages.step[m]), int(messages.unit[m])
            return topics[s], topic_payload(
                float(samples.t[k, s]), float(field_values[k, s]), units[s], int(quality[k, s])
            )

        return one
    names = (sensors["element"] + "/" + sensors["channel"]).tolist()
    starts = gateways(sensors).starts.tolist()
    shuffle = prepared.options.impair.reorder > 0
    seed = prepared.options.impair.seed

    def batch(m: int) -> tuple[str, bytes]:
        k, g = int(messages.step[m]), int(messages.unit[m])
        idx = np.arange(starts[g], starts[g + 1])
        idx = idx[messages.sent[k, idx]]
        if shuffle:
            idx = np.random.default_rng([seed, 1516, k, g]).permutation(idx)
        s = idx.tolist()
        row_t, row_v = samples.t[k], field_values[k]
        t = row_t[idx].tolist()
        v = row_v[idx].tolist()
        n = [names[i] for i in s]
        u = [units[i] for i in s]
        q = quality[k, idx].tolist()
        if fmt == "json":
            return topics[starts[g]], json_batch(n, t, v, u, q)
        return topics[starts[g]], senml_pack(prefix, t[0], n, t, v, u, q)

    return batch


@dataclass
class FieldResult:
    """What a field run did (``summary`` is ``field.json``)."""

    out_dir: Path
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether every planned message was accepted and acknowledged."""
        return self.summary["status"] == "ok"


def run_field(
    scenario: Any,
    options: FieldOptions,
    out_dir: Path,
    *,
    progress: bool = False,
    stop: threading.Event | None = None,
    on_ready: Callable[[Prepared], None] | None = None,
) -> FieldResult:
    """Run the true plant, publish its sensors on schedule, write the ground truth.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (the true plant).
    options : FieldOptions
        Plan, impairments, clock, broker and login.
    out_dir : Path
        Where ``truth.parquet``, ``sensors.parquet``, ``mapping.csv``, ``field.json``
        and the plant's run (``plant/``) go.
    progress : bool
        Show a progress bar.
    stop : threading.Event, optional
        Set to end publishing early (the truth says what was published).
    on_ready : callable, optional
        Called once connected, before the first message is due.

    Raises
    ------
    FieldLinkError
        If the broker is unreachable or refuses the login or TLS handshake.
    FieldError
        For bad options, a failed plant run or a wall start more than one step in the
        past when publishing starts.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from adapters.mqtt.link import MqttLink

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options.check()
    link = MqttLink(
        options.broker, options.client_id, auth=options.auth, buffer_max=options.buffer_max
    )
    try:  # first: a refused login fails before the plant runs
        link.open()
    except ConnectionError as exc:
        raise FieldLinkError(str(exc)) from None
    try:
        prepared = prepare(scenario, options, out_dir)
        prepared.wall_start = (
            default_wall_start() if options.wall_start is None else options.wall_start
        )
        prepared.check_not_late(time.time())
        due = prepared.due_wall(prepared.wall_start)
        if on_ready is not None:
            on_ready(prepared)
        render = renderer(prepared)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task(f"{scenario.name}: messages", total=len(due))
            outcome = publish_on_schedule(
                due,
                prepared.messages.copies,
                render,
                link.publish,
                stop=stop,
                advance=lambda n: bar.advance(task, n),
            )
        flushed = link.flush(options.flush_timeout_s)
    finally:
        link.close(timeout_s=0.0)
    settle(prepared, outcome)
    summary = summarize(prepared, outcome, due, link, flushed)
    write_truth(out_dir / "truth.parquet", prepared.sensors, prepared.samples)
    write_sensors(out_dir / "sensors.parquet", prepared.sensors, prepared.messages.skew_s)
    write_mapping_csv(out_dir / "mapping.csv", prepared.sensors)
    (out_dir / "field.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return FieldResult(out_dir, summary)
