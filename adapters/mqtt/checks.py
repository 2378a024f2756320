"""Run checks of the MQTT bridge: devices answered often enough, telemetry was delivered.

A hardware loop whose device answered too rarely ran mostly on the model; telemetry
the broker never acknowledged is lost to every consumer. Both complete every step, so
without these checks the run would say ``finished``. The MQTT component
(:mod:`adapters.mqtt.component`) declares them; they read the counters the MQTT
simulators leave in the run metadata (:func:`adapters.mqtt.stats.mqtt_stats`).
"""

from __future__ import annotations

from typing import Any

from adapters.mqtt.stats import mqtt_link_losses
from twin.checks import CheckFailure

__all__ = ["delivery_failures", "fallback_failures"]


def fallback_failures(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """Each device's share of steps that fell back to its model must not exceed ``max_fallback``."""
    if getattr(scenario, "mqtt", None) is None:
        return []
    found = metadata.get("mqtt", {}).get("devices", {})
    failures = []
    for device in scenario.mqtt.devices:
        stats = found.get(device.asset)
        if stats is None:
            failures.append(
                CheckFailure("mqtt_device_fallback", f"device {device.asset}: no counters recorded")
            )
            continue
        steps, fallback = int(stats["steps"]), int(stats["fallback_steps"])
        share = fallback / steps if steps else 1.0
        if share > device.max_fallback:
            counts = {**stats, **stats.get("rejected", {})}
            causes = ", ".join(
                f"{name} {counts[name]}"
                for name in ("gaps", "late", "off_clock", "too_large", "malformed", "implausible")
                if counts.get(name)
            )
            failures.append(
                CheckFailure(
                    "mqtt_device_fallback",
                    f"device {device.asset} fell back to its model on {fallback} of {steps} "
                    f"steps ({100 * share:.1f} %), more than max_fallback "
                    f"{100 * device.max_fallback:g} %" + (f" ({causes})" if causes else ""),
                )
            )
    return failures


def delivery_failures(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """Messages dropped or left unacknowledged must not exceed ``mqtt.max_dropped``.

    A message the broker refused (its ACL, reported under MQTT v5, see
    :mod:`adapters.mqtt.link`) fails the check whatever ``max_dropped`` says: it is a
    configuration error (a prefix or login the ACL does not allow), not a passing loss,
    and the message names the refused topics and the login.
    """
    if getattr(scenario, "mqtt", None) is None:
        return []
    found = metadata.get("mqtt", {})
    links = {"publisher": found.get("publisher") or {}}
    for asset, device in found.get("devices", {}).items():
        links[f"device {asset}"] = device.get("link") or {}
    lost = mqtt_link_losses(found)
    refusals = [_refusal(name, link) for name, link in links.items() if link.get("refused")]
    total = sum(lost.values())
    if total <= scenario.mqtt.max_dropped and not refusals:
        return []
    detail = ", ".join(f"{name} {n}" for name, n in lost.items() if n)
    message = (
        f"{total} MQTT message(s) dropped or never acknowledged by the broker ({detail}), "
        f"more than mqtt.max_dropped {scenario.mqtt.max_dropped}"
        if total > scenario.mqtt.max_dropped
        else f"{total} MQTT message(s) dropped ({detail})"
    )
    if refusals:
        message += (
            f"; {'; '.join(refusals)}: check the broker's ACL and mqtt.prefix "
            f"{scenario.mqtt.prefix!r} (the login may not write these topics)"
        )
    return [CheckFailure("mqtt_delivery", message)]


#: Refused topics named per link in a check message (the others are counted).
SHOW_TOPICS = 5


def _refusal(name: str, link: dict[str, Any]) -> str:
    """``the broker refused N message(s) of <link> on <topics> for user 'u'``."""
    topics = sorted(link.get("refused_topics", {}).items(), key=lambda item: -item[1])
    shown = ", ".join(f"{topic} ({n})" for topic, n in topics[:SHOW_TOPICS])
    if len(topics) > SHOW_TOPICS:
        shown += f" and {len(topics) - SHOW_TOPICS} more topic(s)"
    user = link.get("username")
    who = f"user {user!r}" if user else "an anonymous client"
    return f"the broker refused {link['refused']} message(s) of {name} on {shown} for {who}"
