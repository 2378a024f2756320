"""The twin's telemetry on MQTT: a mosaik sink publishing every connected value.

One entity, ``publisher``, accepts any attribute from any source. The world connects the
selected model outputs (``mqtt.publish`` patterns), the controller's setpoints and the
device bridges' outputs to it. Each step publishes one QoS 1 message per value (topic
``<prefix>/<site>/<asset>/<quantity>``, see :mod:`adapters.mqtt.topics`) or, in bundled
mode, one message per kind holding every value of that kind. At start it publishes a
retained birth message per asset and a retained ``online`` status (its last will is a
retained ``offline``); both carry the run id, so a consumer can tell which run a value
belongs to (see :func:`adapters.mqtt.topics.status_payload`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mosaik_api_v3

from adapters.mqtt.auth import MqttAuth
from adapters.mqtt.link import MqttLink
from adapters.mqtt.topics import TopicScheme, encode_value, format_ts, status_payload
from adapters.stamping import StateStamper
from models.base import Clock
from twin.realtime import Paced

__all__ = ["MqttPublisher"]

ENTITY = "publisher"
#: The input through which other simulators hand finished messages: a list of
#: ``[topic under <prefix>/<site>/, JSON text, retain]``.
MESSAGES_ATTR = "messages"


class MqttPublisher(Paced, mosaik_api_v3.Simulator):
    """mosaik sink that publishes its inputs.

    ``init`` parameters: ``clock`` (a :class:`models.base.Clock` dict) and ``config``
    with ``broker``, ``auth`` (:meth:`adapters.mqtt.auth.MqttAuth.as_dict`), ``prefix``,
    ``site``, ``qos``, ``bundle`` (bool), ``client_id``, ``buffer_max``, ``run_id``,
    ``assets`` (``{asset: {"kind", "bus", "units": {quantity: unit}}}``), ``kinds``
    (``{source full id: kind}``, to bundle by kind), ``states`` (``[source full id,
    attribute]`` pairs that are states, stamped with their instant: see
    :mod:`adapters.stamping`), ``initial_states`` (``{source full id: {attribute:
    value}}`` at the start) and ``stats_path`` (JSON file written at the end with the
    link counters).
    """

    def __init__(self) -> None:
        super().__init__(
            {
                "type": "time-based",
                "models": {
                    "Publisher": {"public": True, "params": [], "attrs": [], "any_inputs": True}
                },
            }
        )
        self.link: MqttLink | None = None
        self._topics: dict[tuple[str, str], tuple[str, str]] = {}  # -> (topic, unit)

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any], config: dict
    ) -> dict[str, Any]:
        """Connect to the broker (raises a clear error if it is unreachable)."""
        self.sid = sid
        self.clock = Clock.from_dict(clock)
        self.config = config
        self.topics = TopicScheme(config["prefix"], config["site"])
        self.assets: dict[str, dict[str, Any]] = config["assets"]
        self.kinds: dict[str, str] = config["kinds"]
        self.qos = int(config["qos"])
        self.bundle = bool(config["bundle"])
        self.run_id = str(config.get("run_id", ""))
        self.stamper = StateStamper(config.get("states", []), config.get("initial_states"))
        status = self.topics.status()
        self.link = MqttLink(
            config["broker"],
            config["client_id"],
            will=(status, status_payload("offline", self.run_id)),
            buffer_max=int(config["buffer_max"]),
            auth=MqttAuth.from_dict(config.get("auth")),
        ).open()
        # retained state an earlier run left (diagnostics' open alerts) is this run's no more
        try:
            self.cleared = [
                topic
                for suffix in config.get("clear_retained", [])
                for topic in self.link.clear_retained(
                    f"{self.topics.prefix}/{self.topics.site}/{suffix}",
                    f"{self.topics.prefix}/{self.topics.site}/_probe/{config['client_id']}",
                )
            ]
        except BaseException:  # mosaik never finalizes a simulator whose init failed
            self.link.close(final=(status, status_payload("offline", self.run_id)), timeout_s=5)
            raise
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """The one publisher entity; publishes the retained birth messages."""
        if num != 1:
            raise ValueError("create exactly one Publisher")
        assert self.link is not None
        for asset, meta in self.assets.items():
            payload = json.dumps({"asset": asset, "run_id": self.run_id, **meta}).encode()
            self.link.publish(self.topics.meta(asset), payload, qos=1, retain=True)
        online = status_payload("online", self.run_id)
        self.link.publish(self.topics.status(), online, qos=1, retain=True)
        return [{"eid": ENTITY, "type": model, "rel": []}]

    def _asset_of(self, source: str) -> str:
        return source.split(".", 1)[1]

    def step(self, time_s: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Publish every input value of this step, then the messages handed to it.

        An input ``messages`` (from any source) is published as it is, under the site's
        topics: how a component publishes its own topics (diagnostics' health and
        retained alerts) through the run's one link.
        """
        assert self.link is not None
        self.step_started(time_s)
        received = dict(inputs.get(ENTITY, {}))
        messages = received.pop(MESSAGES_ATTR, {})
        values = self.stamper.restamp(received)
        self._publish(values, time_s)
        for batch in messages.values():
            for suffix, payload, retain in batch or ():
                topic = f"{self.topics.prefix}/{self.topics.site}/{suffix}"
                # a retained state (an alert, its deletion) must not be lost with QoS 0
                qos = max(1, self.qos) if retain else self.qos
                self.link.publish(topic, payload.encode(), qos=qos, retain=bool(retain))
        return time_s + self.clock.step_s

    def _publish(self, values: dict[str, dict[str, float]], time_s: int) -> None:
        """Publish the values that belong to time stamp ``time_s``."""
        assert self.link is not None
        k = time_s // self.clock.step_s
        ts = format_ts(self.clock.time_at(time_s))
        sent = time.time()
        quality: dict[str, str] = {}
        for source, flag in values.get("quality", {}).items():
            quality[self._asset_of(source)] = "good" if flag >= 0.5 else "fallback"
        if self.bundle:
            self._publish_bundles(values, ts, k, sent, quality)
            return
        for quantity, by_source in values.items():
            for source, value in by_source.items():
                asset = self._asset_of(source)
                cached = self._topics.get((asset, quantity))
                if cached is None:
                    unit = self.assets.get(asset, {}).get("units", {}).get(quantity, "")
                    cached = (self.topics.value(asset, quantity), unit)
                    self._topics[(asset, quantity)] = cached
                topic, unit = cached
                payload = encode_value(ts, float(value), unit, k, sent, quality.get(asset, "good"))
                self.link.publish(topic, payload, qos=self.qos)

    def _publish_bundles(
        self,
        values: dict[str, dict[str, float]],
        ts: str,
        k: int,
        sent: float,
        quality: dict[str, str],
    ) -> None:
        """One message per kind: ``{"ts", "seq", "sent", "values": {asset: {q: v}}}``."""
        assert self.link is not None
        by_kind: dict[str, dict[str, dict[str, float | None]]] = {}
        for quantity, by_source in values.items():
            for source, value in by_source.items():
                asset = self._asset_of(source)
                kind = self.kinds.get(source, "other")
                number = float(value)
                by_kind.setdefault(kind, {}).setdefault(asset, {})[quantity] = (
                    None if number != number else number
                )
        for kind, assets in by_kind.items():
            bundle = {"ts": ts, "seq": k, "sent": sent, "values": assets}
            flags = {a: quality[a] for a in assets if a in quality}
            if flags:
                bundle["quality"] = flags
            payload = json.dumps(bundle, separators=(",", ":")).encode()
            self.link.publish(self.topics.bundle(kind), payload, qos=self.qos)

    def finalize(self) -> None:
        """Mark the twin offline, deliver what is queued, record the counters."""
        if self.link is None:
            return
        end_states = self.stamper.flush()
        if end_states:  # the states at the end of the run, stamped with the end time
            self._publish(end_states, self.clock.end_s)
        offline = status_payload("offline", self.run_id)
        self.link.close(final=(self.topics.status(), offline), timeout_s=60.0)
        stats = {"client_id": self.config["client_id"], **self.link.stats.as_dict()}
        stats["undelivered"] = self.link.pending
        stats["retained_cleared"] = len(getattr(self, "cleared", []))
        path = self.config.get("stats_path")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(stats, indent=2))
        self.link = None
