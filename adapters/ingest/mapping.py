"""Sensor keys to (element, twin quantity, unit): patterns, a CSV table, a per-key cache.

A user describes their plant's topic tree without code:

- **patterns** (``ingest.mapping``): ``field/{asset}/{quantity}``; a placeholder matches
  within one topic level (no ``/``) and literal text may surround it
  (``field/{asset}/{quantity}-{n}``). Placeholders: ``asset`` (the twin element),
  ``quantity`` or ``channel`` (the field channel, looked up in the rule's
  ``quantities``, or the twin quantity itself when the rule has none), and ``n``,
  ``site``, ``gateway`` (matched, not used). A rule without ``{asset}`` names its
  ``asset``; without a channel placeholder its ``quantity``. Rules are tried in order;
  a rule whose match names an unknown element or channel lets the next rule try.
- **a CSV table** (``ingest.mapping_csv``): columns ``topic, asset, quantity, unit, scale``
  and optionally ``sigma, min, max, voltage``; exact sensor keys, tried before patterns.

Each value becomes ``(a * field + b) * scale`` in the twin quantity's unit
(:mod:`adapters.ingest.units`). The result is cached per sensor key (unknown keys too,
up to :data:`CACHE_UNKNOWN_MAX`), so a steady stream costs one dict lookup per value.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.ingest.units import UnitError, conversion
from twin.errors import TwinError

__all__ = [
    "PLACEHOLDERS",
    "Channel",
    "ElementInfo",
    "Mapper",
    "MappingError",
    "Rule",
    "Sensor",
    "compile_pattern",
    "read_mapping_csv",
]

#: Placeholders a pattern may use.
PLACEHOLDERS = ("asset", "quantity", "channel", "n", "site", "gateway")
#: Unknown sensor keys remembered (beyond it they are matched again every time).
CACHE_UNKNOWN_MAX = 100_000
CSV_COLUMNS = ("topic", "asset", "quantity", "unit", "scale")
CSV_OPTIONAL = ("sigma", "min", "max", "voltage")


class MappingError(TwinError, ValueError):
    """A mapping rule or CSV row that cannot be used; ``path`` names where it is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def compile_pattern(pattern: str, path: str = "pattern") -> re.Pattern[str]:
    """The regular expression of a mapping pattern (anchored at both ends).

    Raises
    ------
    MappingError
        For unbalanced braces, an unknown or repeated placeholder, an MQTT wildcard
        (``+``, ``#``: those belong in ``topics``) or an empty pattern.
    """
    if not pattern:
        raise MappingError(path, "empty pattern")
    if "+" in pattern or "#" in pattern:
        raise MappingError(
            path, f"{pattern!r}: no MQTT wildcards (+, #) in a pattern; use {{name}}"
        )
    regex, literal, seen = ["^"], [], []
    after_placeholder = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "}":
            raise MappingError(path, f"{pattern!r}: '}}' at {i} closes no '{{'")
        if char != "{":
            literal.append(char)
            i += 1
            continue
        end = pattern.find("}", i + 1)
        inner = pattern[i + 1 : end] if end >= 0 else pattern[i + 1 :]
        if end < 0 or "{" in inner:
            raise MappingError(path, f"{pattern!r}: '{{' at {i} is not closed")
        if inner not in PLACEHOLDERS:
            raise MappingError(
                path,
                f"{pattern!r}: unknown placeholder {{{inner}}}; expected one of "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
            )
        if inner in seen:
            raise MappingError(path, f"{pattern!r}: placeholder {{{inner}}} used twice")
        if after_placeholder and not literal:
            raise MappingError(path, f"{pattern!r}: two placeholders need literal text between")
        seen.append(inner)
        regex.append(re.escape("".join(literal)))
        literal = []
        regex.append(f"(?P<{inner}>[^/]+?)")
        after_placeholder = True
        i = end + 1
    regex.append(re.escape("".join(literal)) + "$")
    return re.compile("".join(regex))


@dataclass(frozen=True)
class Channel:
    """What one field channel is: twin quantity, field unit, scale, sigma and limits."""

    quantity: str
    unit: str | None = None
    voltage: str | None = None
    scale: float | None = None
    sigma: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Rule:
    """One compiled pattern rule (see the module docstring)."""

    regex: re.Pattern[str]
    path: str
    asset: str | None = None
    quantity: str | None = None
    unit: str | None = None
    voltage: str = "line"
    scale: float = 1.0
    quantities: Mapping[str, Channel] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: Any, path: str) -> Rule:
        """From a schema rule (attributes ``pattern``, ``asset``, ``quantities``...).

        Raises
        ------
        MappingError
            For a bad pattern, or one that names no element (no ``{asset}``, no
            ``asset``) or no quantity (no channel placeholder, no ``quantity``).
        """
        regex = compile_pattern(spec.pattern, f"{path}.pattern")
        groups = set(regex.groupindex)
        if "asset" not in groups and not spec.asset:
            raise MappingError(f"{path}.pattern", "no {asset} in the pattern and no asset given")
        if "asset" in groups and spec.asset:
            raise MappingError(f"{path}.asset", "the pattern has {asset} already")
        has_channel = bool(groups & {"quantity", "channel"})
        if not has_channel and not spec.quantity:
            raise MappingError(
                f"{path}.pattern", "no {quantity} or {channel} in the pattern and no quantity"
            )
        if {"quantity", "channel"} <= groups:
            raise MappingError(f"{path}.pattern", "use {quantity} or {channel}, not both")
        channels = {
            name: Channel(**(c if isinstance(c, dict) else c.model_dump()))
            for name, c in (spec.quantities or {}).items()
        }
        return cls(
            regex=regex,
            path=path,
            asset=spec.asset,
            quantity=spec.quantity,
            unit=spec.unit,
            voltage=spec.voltage or "line",
            scale=1.0 if spec.scale is None else float(spec.scale),
            quantities=channels,
        )

    def channel(self, key: str) -> tuple[str, Channel] | None:
        """(element, channel) for a sensor key this rule matches, else None."""
        found = self.regex.match(key)
        if found is None:
            return None
        groups = found.groupdict()
        element = groups.get("asset") or self.asset
        name = groups.get("quantity") or groups.get("channel")
        if self.quantities:
            chosen = self.quantities.get(name) if name is not None else None
            if chosen is None:
                return None
        else:
            chosen = Channel(quantity=self.quantity or name or "")
        return element or "", Channel(
            quantity=chosen.quantity,
            unit=chosen.unit if chosen.unit is not None else self.unit,
            voltage=chosen.voltage or self.voltage,
            scale=(chosen.scale if chosen.scale is not None else 1.0) * self.scale,
            sigma=chosen.sigma,
            min=chosen.min,
            max=chosen.max,
        )


def read_mapping_csv(path: str | Path, where: str = "ingest.mapping_csv") -> dict[str, tuple]:
    """Rows of a mapping CSV by topic: ``(asset, Channel)``.

    Raises
    ------
    MappingError
        For an unreadable file, missing columns, a bad number or a repeated topic
        (naming the row).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise MappingError(where, f"cannot read {path}: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing:
        raise MappingError(where, f"{path}: missing column(s) {', '.join(missing)}")
    unknown = [c for c in columns if c not in CSV_COLUMNS + CSV_OPTIONAL]
    if unknown:
        raise MappingError(where, f"{path}: unknown column(s) {', '.join(unknown)}")
    rows: dict[str, tuple] = {}
    for n, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        here = f"{where} ({path} line {n})"
        if not row["topic"] or not row["asset"] or not row["quantity"]:
            raise MappingError(here, "topic, asset and quantity must not be empty")
        if row["topic"] in rows:
            raise MappingError(here, f"topic {row['topic']!r} appears twice")
        numbers = {}
        for name in ("scale", "sigma", "min", "max"):
            value = row.get(name) or ""
            if not value:
                continue
            try:
                numbers[name] = float(value)
            except ValueError:
                raise MappingError(here, f"{name} {value!r} is not a number") from None
            if not math.isfinite(numbers[name]):
                raise MappingError(here, f"{name} {value!r} is not finite")
        voltage = row.get("voltage") or None
        if voltage not in (None, "line", "phase"):
            raise MappingError(here, f"voltage {voltage!r}: expected line or phase")
        rows[row["topic"]] = (
            row["asset"],
            Channel(
                quantity=row["quantity"],
                unit=row["unit"] or None,
                voltage=voltage,
                scale=numbers.get("scale"),
                sigma=numbers.get("sigma"),
                min=numbers.get("min"),
                max=numbers.get("max"),
            ),
        )
    return rows


@dataclass(frozen=True)
class ElementInfo:
    """What ingestion knows of a twin element: kind, nominal voltage, quantities, ranges."""

    kind: str
    quantities: frozenset[str]
    vn_kv: float | None = None
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


class Sensor:
    """One mapped sensor stream (index ``id`` in the ``sensors`` output)."""

    __slots__ = (
        "a",
        "b",
        "element",
        "head",
        "high",
        "id",
        "key",
        "kind",
        "low",
        "quantity",
        "scale",
        "sigma",
        "unit",
        "units",
        "vn_kv",
        "voltage",
    )

    def __init__(
        self,
        sid: int,
        key: str,
        element: str,
        info: ElementInfo,
        channel: Channel,
        limits: tuple[float, float],
    ) -> None:
        self.id = sid
        self.key = key
        self.element = element
        self.kind = info.kind
        self.quantity = channel.quantity
        self.unit = channel.unit
        self.voltage = channel.voltage or "line"
        self.vn_kv = info.vn_kv
        self.scale = 1.0 if channel.scale is None else channel.scale
        self.sigma = channel.sigma
        self.low = channel.min if channel.min is not None else limits[0]
        self.high = channel.max if channel.max is not None else limits[1]
        a, b = conversion(channel.unit, channel.quantity, vn_kv=self.vn_kv, voltage=self.voltage)
        self.a, self.b = a * self.scale, b * self.scale
        self.units: dict[str, tuple[float, float] | None] = {}
        self.head = ""  # the line-protocol head, set by the store

    def factors(self, unit: str | None) -> tuple[float, float] | None:
        """``(a, b)`` for a value sent in ``unit`` (None: the mapping's unit).

        None when the unit cannot be converted to the quantity (cached per unit).
        """
        if unit is None or unit == self.unit:
            return self.a, self.b
        known = self.units.get(unit, False)
        if known is False:
            try:
                a, b = conversion(unit, self.quantity, vn_kv=self.vn_kv, voltage=self.voltage)
                known = (a * self.scale, b * self.scale)
            except UnitError:
                known = None
            if len(self.units) < 16:
                self.units[unit] = known
        return known  # type: ignore[return-value]


_MISSING = object()


#: Sensors an ingest admits by default (``ingest.max_sensors``).
MAX_SENSORS = 100_000


class Mapper:
    """Sensor key -> :class:`Sensor` (or None: unknown), cached per key.

    Parameters
    ----------
    rules : iterable of Rule
        Pattern rules, tried in order.
    table : mapping
        Exact keys (the CSV), tried first: ``key -> (asset, Channel)``.
    elements : mapping
        ``element name -> ElementInfo`` of the scenario.
    limits : callable
        ``(info, quantity) -> (low, high)``: the plausible range of a quantity.
    max_sensors : int
        Sensors it admits at most: a key beyond them is unknown (counted), so a field
        that invents keys (a counter in a topic level) cannot grow the sensor table,
        the series in InfluxDB and the estimator without bound.
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        table: Mapping[str, tuple[str, Channel]],
        elements: Mapping[str, ElementInfo],
        limits: Callable[[ElementInfo, str], tuple[float, float]],
        max_sensors: int = MAX_SENSORS,
    ) -> None:
        self.max_sensors = max_sensors
        self.rules = list(rules)
        self.table = dict(table)
        self.elements = dict(elements)
        self.limits = limits
        self.sensors: list[Sensor] = []
        self._cache: dict[str, Sensor | None] = {}
        self._unknown_cached = 0
        #: ``cached(key, default)``: the cached answer of :meth:`lookup` (the hot path).
        self.cached = self._cache.get

    def lookup(self, key: str) -> Sensor | None:
        """The sensor of ``key``, or None when no rule maps it to a known element."""
        found = self._cache.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        sensor = self._resolve(key)
        if sensor is not None:
            self._cache[key] = sensor
        elif self._unknown_cached < CACHE_UNKNOWN_MAX:
            self._cache[key] = None
            self._unknown_cached += 1
        return sensor

    def candidates(self, key: str) -> Iterable[tuple[str, Channel]]:
        """(element, channel) pairs that rules and the table give for ``key``, in order."""
        row = self.table.get(key)
        if row is not None:
            yield row
        for rule in self.rules:
            matched = rule.channel(key)
            if matched is not None:
                yield matched

    def _resolve(self, key: str) -> Sensor | None:
        if len(self.sensors) >= self.max_sensors:
            return None
        for element, channel in self.candidates(key):
            info = self.elements.get(element)
            if info is None or channel.quantity not in info.quantities:
                continue
            try:
                sensor = Sensor(
                    len(self.sensors),
                    key,
                    element,
                    info,
                    channel,
                    self.limits(info, channel.quantity),
                )
            except UnitError:
                continue
            self.sensors.append(sensor)
            return sensor
        return None
