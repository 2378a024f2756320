"""Subscribing with proof of read access: refused subscriptions are named errors.

A broker may refuse a subscription in its SUBACK (MQTT v5 reason 0x87 Not authorized),
or grant it and silently deliver nothing its ACL denies (Mosquitto 2.0 with an
``acl_file`` does so). :func:`subscribe` catches both before the run starts: it checks
the SUBACKs, then publishes one probe message inside each ``#`` filter and waits for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from adapters.ingest.pipeline import PROBE_MARKER
from adapters.mqtt.link import MqttLink
from twin.errors import TwinError

__all__ = ["SUBACK_TIMEOUT_S", "SubscriptionRefused", "probe_topic", "subscribe"]

#: Wall seconds to wait for the broker's answer to the subscriptions (and the probe).
SUBACK_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class SubscriptionRefused(TwinError, ConnectionError):
    """The broker refused a subscription (its ACL gives the login no read access)."""


def probe_topic(topic_filter: str, client_id: str) -> str | None:
    """A topic inside ``topic_filter`` to probe read access on (None without a ``#``)."""
    if not topic_filter.endswith("#"):
        return None
    return topic_filter[:-1].replace("+", "_") + f"{PROBE_MARKER}{client_id}"


def subscribe(
    link: MqttLink, topics: list[str], callback: Any, qos: int, *, probe: bool = True
) -> dict[str, Any]:
    """Open ``link`` subscribed to ``topics``; raise if the login may not read them.

    A broker may refuse a subscription in its SUBACK (MQTT v5 reason 0x87), or grant it
    and silently deliver nothing its ACL denies (Mosquitto 2.0 with an ``acl_file``).
    So, with ``probe``, one message is published to a topic inside each ``#`` filter
    (``<filter>/_ingest_probe/<client id>``, ignored by ingestion) and must come back.
    A probe the broker refuses to take (the login may not write there) leaves read
    access unverified (``probe: unverified`` in the counters, a warning).

    Raises
    ------
    SubscriptionRefused
        Naming the topics, the user and the broker's reason (never the password).
    """
    state: dict[str, Any] = {"acks": 0, "refused": 0, "reasons": [], "probe": "off"}
    answered, probed = threading.Event(), threading.Event()
    client_id = link.client._client_id.decode()
    probes = {t: probe_topic(t, client_id) for t in topics} if probe else {}
    probes = {t: p for t, p in probes.items() if p is not None}

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        state["acks"] += 1
        failures = [str(rc) for rc in reason_codes if rc.is_failure]
        if failures:
            state["refused"] += 1
            state["reasons"] += failures
        if state["acks"] >= len(topics):
            answered.set()

    link.client.on_subscribe = on_subscribe
    for topic in topics:
        link.subscribe(topic, callback, qos=qos)
    for topic in probes.values():
        link.client.message_callback_add(topic, lambda c, u, m: probed.set())
    link.open()
    if answered.wait(SUBACK_TIMEOUT_S) and not state["refused"]:
        if not probes:
            return state
        for topic in probes.values():
            link.publish(topic, b"probe", qos=1)
        link.flush(SUBACK_TIMEOUT_S)
        if link.stats.refused:
            state["probe"] = "unverified"
            log.warning(
                "ingest: %s may not publish the read-access probe on %s; whether it may "
                "read %s is not verified (an ACL without read access delivers nothing)",
                link.auth.username or "the anonymous client",
                ", ".join(probes.values()),
                ", ".join(topics),
            )
            return state
        if probed.wait(SUBACK_TIMEOUT_S):
            state["probe"] = "ok"
            for topic in probes.values():  # one filter less to match per message
                link.client.message_callback_remove(topic)
            return state
        state["reasons"].append("granted, but the probe never came back: no read access")
    link.close(timeout_s=0.0)
    user = link.auth.username
    who = f"user {user!r}" if user else "an anonymous client"
    reason = ", ".join(state["reasons"]) or f"no answer within {SUBACK_TIMEOUT_S:g} s"
    raise SubscriptionRefused(
        f"MQTT broker {link.url} refused the subscription to {', '.join(topics)} for {who} "
        f"({reason}): the broker's ACL must give this login read access (ingest.topics)"
    )
