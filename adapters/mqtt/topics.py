"""The topic scheme and JSON payloads of twin on MQTT.

Topics (``prefix`` defaults to ``twin``; ``site`` is the scenario name)::

    <prefix>/<site>/status                     retained {"state": "online", "run_id": ...};
                                               the last will (and a clean end) set "offline"
    <prefix>/<site>/<asset>/meta               retained birth message: run_id, kind, bus, units
    <prefix>/<site>/<asset>/<quantity>         one value per step (telemetry and setpoints)
    <prefix>/<site>/<asset>/residual/<quantity> measured - simulated, with window statistics
    <prefix>/<site>/bundle/<kind>              all values of one kind and step (bundled mode)

A value payload is a JSON object::

    {"ts": "2016-06-21T04:00:00Z", "value": 12.5, "unit": "kW", "quality": "good",
     "seq": 16, "sent": 1795554867.25}

``ts`` is the simulated time the value belongs to (UTC, ISO 8601), ``seq`` the step
index (per topic, so a consumer can detect gaps), ``sent`` the wall clock (Unix seconds)
at publication, for latency measurements. ``quality`` is ``good`` for a simulated or a
fresh measured value and ``fallback`` when a measured asset fell back to its model.

Devices answer on their own topics (``field/<site>/<asset>/<quantity>`` by default)
with ``{"ts": ..., "value": ...}``, or with a bare number; ``ts`` is optional.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Measurement",
    "MalformedPayload",
    "TopicScheme",
    "decode_measurement",
    "encode_value",
    "format_ts",
    "parse_ts",
    "status_payload",
]


class MalformedPayload(ValueError):
    """A payload that is not a number or a JSON object with a numeric ``value``."""


@dataclass(frozen=True)
class TopicScheme:
    """Topic names of one site under one prefix."""

    prefix: str
    site: str

    def status(self) -> str:
        """Retained online/offline status of the twin."""
        return f"{self.prefix}/{self.site}/status"

    def meta(self, asset: str) -> str:
        """Retained birth message of an asset."""
        return f"{self.prefix}/{self.site}/{asset}/meta"

    def value(self, asset: str, quantity: str) -> str:
        """One quantity of one asset (or element: bus, line, controller setpoint)."""
        return f"{self.prefix}/{self.site}/{asset}/{quantity}"

    def residual(self, asset: str, quantity: str) -> str:
        """Measured minus simulated value of a quantity."""
        return f"{self.prefix}/{self.site}/{asset}/residual/{quantity}"

    def bundle(self, kind: str) -> str:
        """All values of one kind at one step."""
        return f"{self.prefix}/{self.site}/bundle/{kind}"


def format_ts(ts: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` suffix."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> datetime:
    """A tz-aware timestamp from ISO 8601 (``Z`` or an offset); naive is refused."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return ts


def status_payload(state: str, run_id: str) -> bytes:
    """The retained status of a run: ``{"state": "online" | "offline", "run_id": ...}``."""
    return json.dumps({"state": state, "run_id": run_id}, separators=(",", ":")).encode()


def encode_value(
    ts: str, value: float, unit: str, seq: int, sent: float, quality: str = "good"
) -> bytes:
    """The JSON payload of one value (NaN becomes ``null``)."""
    number = None if math.isnan(value) else value
    return json.dumps(
        {"ts": ts, "value": number, "unit": unit, "quality": quality, "seq": seq, "sent": sent},
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Measurement:
    """A value received from a device."""

    value: float
    ts: datetime | None
    extra: dict[str, Any]


def decode_measurement(payload: bytes) -> Measurement:
    """Parse a device payload: a bare number or ``{"value": number, "ts": iso, ...}``.

    Raises
    ------
    MalformedPayload
        With what was wrong, for the log line that names the topic.
    """
    try:
        data = json.loads(payload)
    except RecursionError:
        raise MalformedPayload("JSON nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, a number of too many digits
        raise MalformedPayload(f"not JSON or a number ({str(exc)[:80]})") from None
    ts = None
    extra: dict[str, Any] = {}
    if isinstance(data, dict):
        if "value" not in data:
            raise MalformedPayload("JSON object without a 'value' key")
        extra = data
        value = data["value"]
        if data.get("ts") is not None:
            if not isinstance(data["ts"], str):
                raise MalformedPayload("'ts' must be an ISO 8601 string")
            try:
                ts = parse_ts(data["ts"])
            except ValueError as exc:
                raise MalformedPayload(f"bad 'ts': {exc}") from None
    else:
        value = data
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedPayload(f"value {str(value)[:40]!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise MalformedPayload("value is too large for a float") from None
    if not math.isfinite(number):
        raise MalformedPayload(f"value {value!r} is not finite")
    return Measurement(number, ts, extra)
