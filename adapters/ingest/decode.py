"""Payloads to records ``(sensor key, t, value, unit, quality)``: bounded before anything else.

Accepted payloads (the wire formats of the live twin, ``/work/notes/live15.md``):

- **per sensor**: ``{"t": <epoch s>, "v": <number>, "u": "<unit>", "q": <0|1>}`` (``u``,
  ``q`` optional) or a bare number (no time: the receipt time is used, ``untimed``);
  the sensor key is the topic;
- **the twin's device payload** (:mod:`adapters.mqtt.topics`): ``{"value": x, "ts":
  "<ISO 8601>" | <epoch s>, "unit": ..., "quality": "good" | "fallback" | 0 | 1}``;
- **a gateway JSON array** on ``<prefix>/gw/<gateway>``: ``[{"n": "<element>/<channel>",
  "t", "v", "u", "q"}, ...]``; the sensor key is ``<prefix>/<n>``;
- **a SenML pack** (RFC 8428; a topic ending in ``/senml``, or a first record with base
  fields): base name ``bn``, time ``bt``, unit ``bu`` and value ``bv`` apply to the
  records that follow; the sensor key is ``bn + n``; a resolved time below 2**28 is
  relative to the receipt time (RFC 8428 section 4.5.3). ``q`` is read as an extension.

Bounds come first: a payload larger than ``max_bytes`` is rejected unread
(``too_large``), as is an array of more than ``max_records`` records; JSON must parse
(no ``NaN``/``Infinity`` tokens), values and times must be finite numbers (not
booleans), quality an integer. A bad record is counted (``malformed``) and the others
of its batch are kept. Decoding never raises on any bytes.
"""

from __future__ import annotations

import math
from datetime import datetime
from operator import itemgetter

import orjson

__all__ = ["SENML_RELATIVE_BELOW", "Decoded", "batch_base", "decode", "decode_data", "is_senml"]

#: A SenML resolved time below this is relative to the receipt (RFC 8428 4.5.3).
SENML_RELATIVE_BELOW = 2**28
_BASE_FIELDS = ("bn", "bt", "bu", "bv", "bver", "bs")
_QUALITY_WORDS = {"good": 1, "fallback": 0, "bad": 0}
_BASE_SET = frozenset(_BASE_FIELDS)
#: A record with every plain field (and nothing else).
_FULL = frozenset("nvtuq")
_full = itemgetter("n", "v", "t", "u", "q")
_NONE = object()

#: One record: (sensor key, time or None, value, unit or None, quality).
Record = tuple[str, float | None, float, str | None, int]


class Decoded:
    """What one payload held: its records, bad records, and a rejection if any."""

    __slots__ = ("malformed", "reason", "records")

    def __init__(self, records: list[Record], malformed: int = 0, reason: str | None = None):
        self.records = records
        self.malformed = malformed
        self.reason = reason


def _number(value: object) -> float | None:
    """A finite float, or None (booleans, text, null, non-finite are not numbers)."""
    if value.__class__ is float:
        return value if math.isfinite(value) else None  # type: ignore[arg-type]
    if value.__class__ is int:
        return float(value)  # type: ignore[arg-type]
    return None


def _quality(value: object) -> int | None:
    if value is None:
        return 1
    if value.__class__ is int:
        return 1 if value else 0
    if isinstance(value, str):
        return _QUALITY_WORDS.get(value)
    return None


def _time(value: object) -> float | None | bool:
    """Epoch seconds from a number or an ISO 8601 text with a zone; False if invalid."""
    if value is None:
        return None
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return ts.timestamp() if ts.tzinfo is not None else False
    return False


def _unit(value: object) -> str | None | bool:
    if value is None or isinstance(value, str):
        return value
    return False


def _single(key: str, data: dict) -> Decoded:
    if "v" in data:
        value, t, unit, quality = data["v"], data.get("t"), data.get("u"), data.get("q")
    elif "value" in data:
        value, t = data["value"], data.get("ts", data.get("t"))
        unit, quality = data.get("unit"), data.get("quality")
    else:
        return Decoded([], 1, "malformed")
    v, when, u, q = _number(value), _time(t), _unit(unit), _quality(quality)
    if v is None or when is False or u is False or q is None:
        return Decoded([], 1, "malformed")
    return Decoded([(key, when, v, u, q)])  # type: ignore[list-item]


def batch_base(topic: str) -> str:
    """``<prefix>`` of ``<prefix>/gw/<gateway>`` (else the topic's parent level)."""
    head, sep, _ = topic.rpartition("/gw/")
    return head if sep else topic.rpartition("/")[0]


def _plain_senml(data: list, start: int, now: float, base: tuple) -> list[Record] | None:
    """Records of ``data[start:]`` when all are plain SenML records, else None.

    Plain: a dict without base fields whose ``n`` is text, ``v`` a finite float or an
    int (not a bool), ``t`` absent or the same, ``u`` absent or text, ``q`` absent or an
    int. The result equals the general loop's on the same records (tested); anything
    else returns None and the general loop decides.
    """
    bn, bt, bu, bv = base
    records: list[Record] = []
    append = records.append
    disjoint = _BASE_SET.isdisjoint
    for i in range(start, len(data)):
        item = data[i]
        if item.__class__ is not dict:
            return None
        if item.keys() == _FULL:  # the field emulator's records
            name, v, t, u, q = _full(item)
        elif disjoint(item):
            name = item.get("n", "")
            v = item.get("v")
            t = item.get("t", 0.0)
            u = item.get("u", bu)
            q = item.get("q")
        else:
            return None
        if name.__class__ is not str or not (key := bn + name):
            return None
        if v.__class__ is float:
            if v - v != 0.0:  # nan or inf
                return None
        elif v.__class__ is int:
            v = float(v)
        else:
            return None
        if t.__class__ is float:
            if t - t != 0.0:
                return None
        elif t.__class__ is int:
            t = float(t)
        else:
            return None
        if u is not None and u.__class__ is not str:
            return None
        if q is None:
            q = 1
        elif q.__class__ is int:
            q = 1 if q else 0
        else:
            return None
        when = bt + t
        if when < SENML_RELATIVE_BELOW:
            when += now
        append((key, when, bv + v, u, q))
    return records


def _plain_batch(data: list, base: str) -> list[Record] | None:
    """Records of a gateway array when all are plain, else None (see :func:`_plain_senml`).

    Plain: a dict with a non-empty text ``n`` and ``v`` (a finite float or an int, not
    a bool), ``t`` absent, null or the same, ``u`` absent, null or text, ``q`` absent,
    null or an int, and no ``value`` key read instead.
    """
    records: list[Record] = []
    append = records.append
    for item in data:
        if item.__class__ is not dict:
            return None
        name = item.get("n")
        v = item.get("v", _NONE)
        t = item.get("t")
        u = item.get("u")
        q = item.get("q")
        if name.__class__ is not str or not name:
            return None
        if v.__class__ is float:
            if v - v != 0.0:
                return None
        elif v.__class__ is int:
            v = float(v)
        else:
            return None
        if t is not None:
            if t.__class__ is float:
                if t - t != 0.0:
                    return None
            elif t.__class__ is int:
                t = float(t)
            else:
                return None
        if u is not None and u.__class__ is not str:
            return None
        if q is None:
            q = 1
        elif q.__class__ is int:
            q = 1 if q else 0
        else:
            return None
        append((base + name, t, v, u, q))
    return records


def is_senml(topic: str, first: object) -> bool:
    """Whether an array is a SenML pack (topic ``.../senml`` or a base field first)."""
    return topic.endswith("/senml") or (
        isinstance(first, dict) and any(k in first for k in _BASE_FIELDS)
    )


def _array(topic: str, data: list, now: float, *, plain: bool = True) -> Decoded:
    """The records of an array; ``plain``: try the plain fast paths first (same result)."""
    records: list[Record] = []
    bad = 0
    first = data[0] if data else None
    senml = is_senml(topic, first)
    base = "" if senml else batch_base(topic) + "/"
    if plain and not senml:
        fast = _plain_batch(data, base)
        if fast is not None:
            return Decoded(fast)
    bn, bt, bu, bv = "", 0.0, None, 0.0
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            bad += 1
            continue
        if senml:
            if i == 1 and plain:  # past the base record: the rest in one go if all plain
                fast = _plain_senml(data, 1, now, (bn, bt, bu, bv))
                if fast is not None:
                    records += fast
                    break
            if "bn" in item:
                bn = item["bn"] if isinstance(item["bn"], str) else None
            if "bt" in item:
                bt = _number(item["bt"])
            if "bu" in item:
                bu = _unit(item["bu"])
            if "bv" in item:
                bv = _number(item["bv"])
            if bn is None or bt is None or bu is False or bv is None:
                # a bad base field spoils every record after it
                return Decoded(records, len(data) - len(records), "malformed")
            name = item.get("n", "")
            v = _number(item.get("v"))
            t = _number(item.get("t", 0.0))
            u = _unit(item.get("u", bu))
            if not isinstance(name, str) or not bn + name or v is None or t is None or u is False:
                bad += 1
                continue
            when = bt + t
            if when < SENML_RELATIVE_BELOW:
                when += now
            q = _quality(item.get("q"))
            if q is None:
                bad += 1
                continue
            records.append((bn + name, when, bv + v, u, q))  # type: ignore[arg-type]
        else:
            name = item.get("n")
            if not isinstance(name, str) or not name:
                bad += 1
                continue
            one = _single(base + name, item)
            if one.records:
                records.append(one.records[0])
            else:
                bad += 1
    return Decoded(records, bad)


def decode(topic: str, payload: bytes, now: float, *, max_bytes: int, max_records: int) -> Decoded:
    """The records of one payload (see the module docstring); never raises.

    ``now`` is the plant time at receipt (epoch s), for SenML relative times.
    """
    if len(payload) > max_bytes:
        return Decoded([], 0, "too_large")
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Decoded([], 1, "malformed")
    return decode_data(topic, data, now, max_records=max_records)


def decode_data(topic: str, data: object, now: float, *, max_records: int) -> Decoded:
    """The records of a parsed payload (:func:`decode` after the size bound and JSON)."""
    cls = data.__class__
    if cls is dict:
        return _single(topic, data)  # type: ignore[arg-type]
    if cls is list:
        if len(data) > max_records:  # type: ignore[arg-type]
            return Decoded([], 0, "too_large")
        return _array(topic, data, now)  # type: ignore[arg-type]
    value = _number(data)
    if value is None:
        return Decoded([], 1, "malformed")
    return Decoded([(topic, None, value, None, 1)])
