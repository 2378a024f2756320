"""What the MQTT simulators of a run counted: run metadata and KPIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["mqtt_kpis", "mqtt_link_losses", "mqtt_stats"]


def mqtt_stats(parts_dir: Path) -> dict[str, Any]:
    """The counters the MQTT simulators left in ``parts_dir`` (``run.json``'s ``mqtt``)."""
    found: dict[str, Any] = {}
    publisher = parts_dir / "mqtt-publisher.json"
    devices = sorted(parts_dir.glob("mqtt-device-*.json"))
    if not publisher.exists() and not devices:
        return found
    out: dict[str, Any] = {}
    if publisher.exists():
        out["publisher"] = json.loads(publisher.read_text())
    out["devices"] = {d["asset"]: d for d in (json.loads(p.read_text()) for p in devices)}
    found["mqtt"] = out
    return found


def mqtt_kpis(metadata: dict[str, Any]) -> dict[str, float]:
    """Residual KPIs per device quantity, malformed payloads and fallback steps."""
    kpis: dict[str, float] = {}
    mqtt = metadata.get("mqtt")
    if not mqtt:
        return kpis
    for asset, device in mqtt.get("devices", {}).items():
        for quantity, stats in device["residuals"].items():
            for name in ("rmse", "bias", "max_abs"):
                kpis[f"residual_{name}_{asset}_{quantity}"] = float(stats[name])
        kpis[f"device_fallback_steps_{asset}"] = float(device["fallback_steps"])
        steps = device.get("steps") or 0
        kpis[f"device_fallback_share_{asset}"] = (
            device["fallback_steps"] / steps if steps else float("nan")
        )
        kpis[f"mqtt_malformed_{asset}"] = float(device["malformed_total"])
    publisher = mqtt.get("publisher")
    if publisher:
        kpis["mqtt_published"] = float(publisher["published"])
    # every link (publisher and device bridges): dropped and never acknowledged
    kpis["mqtt_dropped"] = float(sum(mqtt_link_losses(mqtt).values()))
    return kpis


def mqtt_link_losses(mqtt: dict[str, Any]) -> dict[str, int]:
    """Messages lost per MQTT link of a run: dropped plus never acknowledged.

    ``mqtt`` is the run metadata's ``mqtt`` section; keys are ``publisher`` and
    ``device <asset>``. The ``mqtt_dropped`` KPI and the ``mqtt_delivery`` check both
    count with it.
    """
    links = {"publisher": mqtt.get("publisher") or {}}
    for asset, device in mqtt.get("devices", {}).items():
        links[f"device {asset}"] = device.get("link") or {}
    return {
        name: int(link.get("dropped", 0)) + int(link.get("undelivered", 0))
        for name, link in links.items()
    }
