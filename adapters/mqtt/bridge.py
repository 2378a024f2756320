"""Real devices in place of simulated assets: hybrid mode and hardware in the loop.

One :class:`DeviceBridge` simulator stands between one asset's model and everything that
consumes its values (grid, controller, telemetry). Each step it

1. receives the model's simulated outputs (and, in ``hil`` mode, the controller's
   setpoints, which it publishes to the device);
2. takes the device's measured values from MQTT; with ``timeout_s`` > 0 it waits up to
   that many wall seconds for this step's values (lock-step, so a hardware loop closes
   within the step even when the twin runs faster than real time);
3. passes on the measured value where it is fresh (belonging to a step no more than
   ``stale_after_s`` simulated seconds ago) and the simulated one otherwise: a step the
   device missed falls back to the model, flagged by ``quality`` = 0 (1 = all measured
   values fresh). A miss does not disable the device: the next step waits again
   (:mod:`adapters.mqtt.health`, which also aggregates the warnings). The share of
   fallback steps is a run check (``max_fallback`` of the device, :mod:`adapters.mqtt.checks`);
4. computes residuals (measured - simulated) per quantity: RMSE, bias and max error over
   the run and a sliding window, published on ``<prefix>/<site>/<asset>/residual/<q>``
   and recorded as ``source=residual`` rows.

Values stamped ahead of the simulated time (a recording replayed faster than the twin
runs) are held until their step, so measured data can be fed in bulk.

**The device contract.** A device publishes each measured quantity on its own topic
(``field/<site>/<asset>/<quantity>``) as a bare number or ``{"value": x, "ts": ...,
"seq": ...}`` (:mod:`adapters.mqtt.topics`). Which step a value belongs to:

- in ``hil`` mode, a HIL device answers every setpoint (``{"ts", "value", "seq",
  "dt_s", "sent"}`` on its setpoint topic) and **echoes the setpoint's** ``seq``: the
  answer then belongs to step ``seq`` whatever its ``ts`` says, so a device may stamp
  answers with its own clock (its offset is recorded as ``clock_offset_s``);
- otherwise (no ``seq``, or ``hybrid`` mode, where ``seq`` is not read) the value
  belongs to the time in its ``ts``, which must agree with the twin's simulated clock
  within ``clock_tolerance_s`` (a value stamped within it of a step's time belongs to
  that step); without ``ts``, to the step during which it arrives. A HIL answer whose
  ``ts`` is off every step is not used, counted as ``off_clock`` and warned about once.

Every payload is judged (:mod:`adapters.mqtt.payloads`): too large, malformed or
outside the asset's plausible range, it is counted and logged per topic (the first
few), never applied and never fatal. The bridge records the measured values as
``source=real`` rows.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import queue
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import mosaik_api_v3
import numpy as np

from adapters.mqtt.auth import MqttAuth
from adapters.mqtt.health import DeviceHealth
from adapters.mqtt.link import MqttLink
from adapters.mqtt.payloads import MAX_PAYLOAD_BYTES, REASONS, Verdict, judge
from adapters.mqtt.residuals import ResidualStats
from adapters.mqtt.topics import Measurement, TopicScheme, format_ts
from models.base import Clock
from twin.realtime import Paced
from twin.results import ResultBuffer

__all__ = ["DeviceBridge", "LOG_MALFORMED_PER_TOPIC"]

log = logging.getLogger(__name__)

#: Malformed payloads logged per topic (all are counted).
LOG_MALFORMED_PER_TOPIC = 5
#: Values stamped ahead of the simulated time that are held back (a day of 1 s data).
MAX_AHEAD = 100_000


class DeviceBridge(Paced, mosaik_api_v3.Simulator):
    """mosaik simulator for one device that replaces (part of) one asset.

    ``init`` parameters: ``clock`` and ``config`` with ``broker``, ``auth``, ``client_id``,
    ``prefix``, ``site``, ``asset``, ``kind``, ``mode`` (``hybrid`` | ``hil``),
    ``measure`` (quantities taken from the device), ``setpoints`` (quantities sent to it),
    ``outputs`` (every output of the asset's model, passed through), ``units``,
    ``topic`` and ``setpoint_topic`` (templates with ``{site}``, ``{asset}``,
    ``{quantity}``), ``timeout_s``, ``stale_after_s``, ``clock_tolerance_s``,
    ``ranges`` (``{quantity: [low, high]}``), ``max_payload_bytes``, ``window_steps``,
    ``record``
    (``{"real": path, "residual": path, "tags": {...}}``) and ``stats_path``.
    """

    def __init__(self) -> None:
        super().__init__({"type": "time-based", "models": {}})
        self.link: MqttLink | None = None
        self.inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.latest: dict[str, tuple[float, float]] = {}  # quantity -> (value, t_s)
        self.ahead: list[tuple[float, str, float]] = []  # heap of (t_s, quantity, value)
        self.malformed: dict[str, int] = {}  # rejected payloads per topic
        self.counts = dict.fromkeys(
            (*REASONS, "accepted", "late", "off_clock", "out_of_order", "held_dropped"), 0
        )
        self.clock_offset_s: float | None = None
        self.steps_done = 0
        self.buffers: dict[str, ResultBuffer] = {}  # by source, while recording

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any], config: dict
    ) -> dict[str, Any]:
        """Declare the device entity, subscribe to the device's topics."""
        self.sid = sid
        self.clock = Clock.from_dict(clock)
        self.cfg = config
        self.asset = config["asset"]
        self.hil = config["mode"] == "hil"
        self.tolerance_s = float(config.get("clock_tolerance_s", 1.0))
        self.ranges = {
            q: (float(lo), float(hi)) for q, (lo, hi) in config.get("ranges", {}).items()
        }
        self.max_bytes = int(config.get("max_payload_bytes", MAX_PAYLOAD_BYTES))
        self.health = DeviceHealth(self.asset, float(config["timeout_s"]))
        self.measure: list[str] = list(config["measure"])
        self.setpoints: list[str] = list(config["setpoints"])
        attrs = [*config["outputs"], *self.setpoints, "quality"]
        attrs += [f"{q}_residual" for q in self.measure]
        self.meta["models"] = {"Device": {"public": True, "params": [], "attrs": attrs}}
        self.scheme = TopicScheme(config["prefix"], config["site"])
        names = {"site": config["site"], "asset": self.asset}
        self.topic_of = {q: config["topic"].format(**names, quantity=q) for q in self.measure}
        self.quantity_of = {topic: q for q, topic in self.topic_of.items()}
        self.setpoint_topic = {
            q: config["setpoint_topic"].format(**names, quantity=q) for q in self.setpoints
        }
        self.stats = {q: ResidualStats(int(config["window_steps"])) for q in self.measure}
        self.link = MqttLink(
            config["broker"],
            config["client_id"],
            buffer_max=int(config.get("buffer_max", 10000)),
            auth=MqttAuth.from_dict(config.get("auth")),
        )
        for topic in self.topic_of.values():
            self.link.subscribe(topic, self._on_message)
        self.link.open()
        #: Quantities that are states (``Port.state``): recorded at the instant they hold.
        self.state_quantities = set(config.get("states", []))
        record = config.get("record")
        if record:
            for source in ("real", "residual"):
                self.buffers[source] = ResultBuffer(
                    self.clock.times,
                    {**record["tags"], "source": source},
                    end=self.clock.time_at(self.clock.end_s),
                )
        return self.meta

    def _on_message(self, message: Any) -> None:
        """Network thread: hand the message to the simulation thread."""
        self.inbox.put((message.topic, message.payload))

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """The one device entity, named after the asset."""
        if num != 1:
            raise ValueError("create exactly one Device per bridge")
        return [{"eid": self.asset, "type": model, "rel": []}]

    # --- receiving ----------------------------------------------------------------------
    def _t_s(self, ts: datetime) -> float:
        return (ts - self.clock.start).total_seconds()

    def _take(self, topic: str, payload: bytes, now_s: int) -> None:
        quantity = self.quantity_of.get(topic)
        if quantity is None:
            verdict = Verdict(None, "malformed", "no quantity is expected on this topic")
        else:
            verdict = judge(
                payload,
                self.ranges.get(quantity),
                max_bytes=self.max_bytes,
                max_seq=self.clock.n_steps - 1 if self.hil else None,
            )
        if verdict.measurement is None or quantity is None:
            self._reject(topic, payload, verdict)
            return
        self.counts["accepted"] += 1
        t_s = self._step_time(verdict.measurement, now_s)
        if t_s is None:
            return
        value = verdict.measurement.value
        if t_s > now_s:  # stamped ahead (a replayed recording): hold it until its step
            if len(self.ahead) < MAX_AHEAD:
                heapq.heappush(self.ahead, (t_s, quantity, value))
            else:
                self.counts["held_dropped"] += 1
            return
        self.health.heard_from()
        previous = self.latest.get(quantity)
        if previous is None or t_s >= previous[1]:
            self.latest[quantity] = (value, t_s)
        else:
            self.counts["out_of_order"] += 1

    def _reject(self, topic: str, payload: bytes, verdict: Verdict) -> None:
        """Count (per topic and reason) and log the first few; the value is not used."""
        reason = verdict.reason or "malformed"
        self.counts[reason] += 1
        count = self.malformed[topic] = self.malformed.get(topic, 0) + 1
        if count <= LOG_MALFORMED_PER_TOPIC:
            more = (
                " (further ones are counted, not logged)"
                if count == LOG_MALFORMED_PER_TOPIC
                else ""
            )
            log.warning(
                "MQTT %s: %s payload #%d on %s ignored: %s (payload %r)%s",
                self.asset,
                reason.replace("_", " "),
                count,
                topic,
                verdict.detail,
                payload[:80],
                more,
            )

    def _step_time(self, measured: Measurement, now_s: int) -> float | None:
        """Simulated time a value belongs to (the device contract in the module docstring).

        None for a HIL answer that cannot be matched to a step (counted as ``off_clock``).
        """
        step_s = self.clock.step_s
        stamped = self._t_s(measured.ts) if measured.ts is not None else None
        seq = measured.extra.get("seq") if self.hil else None
        if seq is not None:  # a HIL answer: the setpoint's step, whatever the device's clock
            t_s = float(seq * step_s)
            if stamped is not None:
                self.clock_offset_s = stamped - t_s
            if t_s < now_s:
                self.counts["late"] += 1
            return t_s
        if stamped is None:
            return float(now_s)
        if abs(stamped - now_s) <= self.tolerance_s:
            return float(now_s)
        if self.hil:
            nearest = min(max(round(stamped / step_s), 0), now_s // step_s) * step_s
            if abs(stamped - nearest) > self.tolerance_s:
                self._off_clock(stamped - now_s)
                return None
            if nearest < now_s:
                self.counts["late"] += 1
        return stamped

    def _off_clock(self, offset_s: float) -> None:
        self.counts["off_clock"] += 1
        if self.counts["off_clock"] == 1:
            log.warning(
                "device %s stamps its answers %.0f s off the step they answer (its own "
                "clock?) and sends no 'seq': they cannot be matched to steps. A HIL device "
                "must echo the setpoint's 'seq' (or its 'ts' within %g s); counted as "
                "off_clock, not logged again",
                self.asset,
                offset_s,
                self.tolerance_s,
            )

    def _promote(self, now_s: int) -> None:
        """Values stamped ahead whose time has come become the latest ones."""
        while self.ahead and self.ahead[0][0] <= now_s:
            t_s, quantity, value = heapq.heappop(self.ahead)
            self.latest[quantity] = (value, t_s)

    def _drain(self, now_s: int, wait_s: float = 0.0) -> None:
        """Take every queued message; with ``wait_s`` block until this step is measured."""
        deadline = time.monotonic() + wait_s
        self._promote(now_s)
        while True:
            try:
                while True:
                    self._take(*self.inbox.get_nowait(), now_s)
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._measured_at(now_s):
                return
            try:
                self._take(*self.inbox.get(timeout=remaining), now_s)
            except queue.Empty:
                return

    def _measured_at(self, now_s: int) -> bool:
        return all(q in self.latest and self.latest[q][1] >= now_s for q in self.measure)

    # --- stepping -----------------------------------------------------------------------
    def step(self, time_s: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Publish setpoints, wait for the device, choose measured or simulated values."""
        assert self.link is not None
        self.step_started(time_s)
        k = time_s // self.clock.step_s
        ts = format_ts(self.clock.time_at(time_s))
        ts_end = format_ts(self.clock.time_at(time_s + self.clock.step_s))
        values = {
            attr: float(sum(sources.values()))
            for attr, sources in inputs.get(self.asset, {}).items()
        }
        for q in self.setpoints:
            payload = {
                "ts": ts,
                "value": values.get(q, 0.0),
                "seq": k,
                "dt_s": self.clock.step_s,
                "sent": time.time(),
            }
            self.link.publish(self.setpoint_topic[q], json.dumps(payload).encode(), qos=1)
        self._drain(time_s)  # what already came (a late answer restores the full wait)
        self._drain(time_s, self.health.wait_s())

        out = {attr: values.get(attr, math.nan) for attr in self.cfg["outputs"]}
        fresh_all = True
        for q in self.measure:
            simulated = values.get(q, math.nan)
            latest = self.latest.get(q)
            fresh = latest is not None and time_s - latest[1] <= self.cfg["stale_after_s"]
            measured = latest[0] if fresh else math.nan
            fresh_all &= fresh
            residual = measured - simulated
            self.stats[q].add(residual)
            out[q] = measured if fresh else simulated
            out[f"{q}_residual"] = residual
            self._record("real", q, k, measured)
            self._record("residual", q, k, residual)
            # a state's residual holds at the step's end (see adapters.stamping)
            stamp = ts_end if q in self.state_quantities else ts
            self._publish_residual(q, stamp, k, residual, measured, simulated)
        out["quality"] = 1.0 if fresh_all else 0.0
        self._record("real", "quality", k, out["quality"])
        self.health.note(fresh_all, ts)
        self.outputs = out
        self.steps_done = k + 1
        return time_s + self.clock.step_s

    def _record(self, source: str, quantity: str, k: int, value: float) -> None:
        buffer = self.buffers.get(source)
        if buffer is None:
            return
        if quantity in self.state_quantities:  # a state read after step k: at its end
            buffer.state_column(self.asset, self.cfg["kind"], quantity)[k + 1] = value
        else:
            buffer.column(self.asset, self.cfg["kind"], quantity)[k] = value

    def _publish_residual(
        self, q: str, ts: str, k: int, residual: float, measured: float, simulated: float
    ) -> None:
        assert self.link is not None
        window = self.stats[q].recent()

        def number(x: float) -> float | None:
            return None if math.isnan(x) else x

        payload = {
            "ts": ts,
            "seq": k,
            "value": number(residual),
            "measured": number(measured),
            "twin": number(simulated),
            "unit": self.cfg["units"].get(q, ""),
            "window_s": self.cfg["window_steps"] * self.clock.step_s,
            **{f"{name}_window": number(v) for name, v in window.items() if name != "n"},
        }
        self.link.publish(self.scheme.residual(self.asset, q), json.dumps(payload).encode())

    def get_data(self, outputs: dict[str, list[str]]) -> dict[str, Any]:
        """Serve the chosen values, the quality flag and the residuals."""
        return {eid: {a: self.outputs[a] for a in attrs} for eid, attrs in outputs.items()}

    @property
    def recording(self) -> bool:
        """Whether recorded rows wait to be saved (by the runner if the run fails)."""
        return bool(self.buffers)

    def save(self, n_steps: int | None = None) -> None:
        """Write the recorded rows and the statistics (also after a failed run)."""
        steps = self.steps_done if n_steps is None else min(n_steps, self.steps_done)
        record = self.cfg.get("record") or {}
        for source, buffer in self.buffers.items():
            buffer.write_parquet(record[source], n_steps=steps)
        self.buffers = {}
        stats = {
            "asset": self.asset,
            "mode": self.cfg["mode"],
            "residuals": {q: s.run() for q, s in self.stats.items()},
            **self.health.as_dict(),
            "steps": self.steps_done,
            "malformed": self.malformed,
            "malformed_total": int(np.sum(list(self.malformed.values()) or [0])),
            "rejected": {reason: self.counts[reason] for reason in REASONS},
            **{name: n for name, n in self.counts.items() if name not in REASONS},
            "held_unused": len(self.ahead),
            "clock_offset_s": self.clock_offset_s,
            "link": {**self.link.stats.as_dict(), "undelivered": self.link.pending}
            if self.link
            else {},
        }
        path = self.cfg.get("stats_path")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(stats, indent=2))

    def finalize(self) -> None:
        """Deliver what is queued, record, disconnect."""
        self.health.summary(self.steps_done)
        if self.link is not None:
            self.link.flush()
        self.save()
        if self.link is not None:
            self.link.close()
            self.link = None
