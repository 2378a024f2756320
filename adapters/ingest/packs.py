"""Whole gateway packs in one go: the same result as value by value, as arrays.

A field gateway sends the same sensors, in the same order and units, every interval. The
first pack of a *layout* (the names' base, the records' names and units) resolves each
record's sensor, unit conversion, plausible range and line-protocol head once; every
later pack of that layout is converted, checked, deduplicated, placed in its window and
written as line protocol column by column.

Only the plain form takes this path: a SenML pack whose first record may carry ``bn``
and ``bt`` and whose records otherwise hold exactly ``n``, ``v``, ``t``, ``u`` and ``q``
(numbers, texts and integers), or a gateway JSON array of such records. Anything else in
a pack (another field, a non-number, an unmapped sensor, a unit the quantity cannot
take, a value that overflows when converted, a duplicate, a time skewed, stale or far
from the epoch) sends the whole pack, untouched, down the per-value path of
:class:`~adapters.ingest.pipeline.Ingestor`, which decides as before. Both paths give
the same counters, windows and stored lines (tested with hypothesis).
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from adapters.ingest.decode import SENML_RELATIVE_BELOW, batch_base, is_senml
from adapters.ingest.store import pack_template

if TYPE_CHECKING:
    from adapters.ingest.mapping import Mapper, Sensor
    from adapters.ingest.stats import IngestCounts
    from adapters.ingest.store import RawStore
    from adapters.ingest.window import Windows

__all__ = ["MAX_LAYOUTS", "Layout", "PackPath"]

#: Layouts remembered (beyond: packs of new layouts take the per-value path).
MAX_LAYOUTS = 10_000
#: Plant times (epoch s) at or beyond this are left to the per-value path: their
#: microseconds no longer fit a float's exact integers.
_FAR_S = 2.0**52 / 1e6
_FIELDS = itemgetter("n", "v", "t", "u", "q")
_NUMBERS = frozenset((float, int))
_TEXT = frozenset((str,))
_INT = frozenset((int,))


class Layout:
    """The resolved sensors of one pack layout (arrays in record order)."""

    __slots__ = (
        "a",
        "b",
        "heads",
        "high",
        "id_list",
        "ids",
        "keys",
        "lid",
        "low",
        "ones",
        "sensors",
        "template",
        "zeros",
    )

    def __init__(self, sensors: list[Sensor], factors: list[tuple[float, float]]) -> None:
        self.sensors = sensors
        self.id_list = [s.id for s in sensors]
        self.ids = np.array(self.id_list, dtype=np.int64)
        self.keys = [s.key for s in sensors]
        self.a = np.array([f[0] for f in factors], dtype=float)
        self.b = np.array([f[1] for f in factors], dtype=float)
        self.low = np.array([s.low for s in sensors], dtype=float)
        self.high = np.array([s.high for s in sensors], dtype=float)
        self.heads: list[str] | None = None
        self.lid = -1  # its number in the windows' memory of packs (Windows.add_layout)
        self.template: bytes | None = None  # the heads' line template (store.pack_template)
        self.ones = np.ones(len(sensors), dtype=np.int64)  # read only: shared by packs
        self.zeros = np.zeros(len(sensors), dtype=np.int64)


def plain_columns(topic: str, data: list) -> tuple[str, float, float, tuple, ...] | None:
    """``(base, bt, bv, names, values, times, units, qualities)`` of a plain pack, or None.

    Values, times and qualities are checked here; names and units (the layout) by
    :meth:`PackPath.layout`.

    ``bv`` is 0.0 for a SenML pack (the general path adds it to every value) and None
    for a gateway array (values taken as sent).
    """
    first = data[0]
    if first.__class__ is not dict:
        return None
    if is_senml(topic, first):
        base = first.get("bn", "")
        bt = first.get("bt", 0.0)
        if len(first) != 5 + ("bn" in first) + ("bt" in first):
            return None
        if base.__class__ is not str or bt.__class__ not in _NUMBERS or bt - bt != 0:
            return None
        bt, bv = float(bt), 0.0
    else:
        base, bt, bv = batch_base(topic) + "/", 0.0, None
        if len(first) != 5:
            return None
    try:
        rows = list(map(_FIELDS, data))
    except (KeyError, TypeError):  # a record without a field, or not a mapping
        return None
    if set(map(len, data[1:])) - {5}:  # a field beyond the five (a base field too)
        return None
    names, values, times, units, qualities = zip(*rows, strict=True)
    if (
        set(map(type, values)) - _NUMBERS
        or set(map(type, times)) - _NUMBERS
        or set(map(type, qualities)) - _INT
    ):
        return None  # names and units: checked when their layout is first seen
    return base, bt, bv, names, values, times, units, qualities  # type: ignore[return-value]


class PackPath:
    """The array path of :class:`~adapters.ingest.pipeline.Ingestor` (see the module doc).

    Parameters
    ----------
    mapper, windows, store, counts
        The ingestor's own: sensors, admission and placement, raw storage, counters.
    """

    def __init__(
        self, mapper: Mapper, windows: Windows, store: RawStore | None, counts: IngestCounts
    ) -> None:
        self.mapper = mapper
        self.windows = windows
        self.store = store
        self.counts = counts
        self.layouts: dict[tuple, Layout | None] = {}
        self.taken = 0  # packs taken as arrays

    def layout(self, base: str, names: tuple, units: tuple) -> Layout | None:
        """The layout of these records, resolved on first sight (None: not plain).

        A layout is only made of texts, so a known one needs no type checks.
        """
        key = (base, names, units)
        try:
            found = self.layouts.get(key, False)
        except TypeError:  # an unhashable name or unit
            return None
        if found is not False:
            return found  # type: ignore[return-value]
        layout: Layout | None = None
        if not (set(map(type, names)) - _TEXT or set(map(type, units)) - _TEXT):
            layout = self._resolve(base, names, units)
        if len(self.layouts) < MAX_LAYOUTS:
            self.layouts[key] = layout
        return layout

    def _resolve(self, base: str, names: tuple, units: tuple) -> Layout | None:
        sensors, factors = [], []
        lookup = self.mapper.lookup
        for name, unit in zip(names, units, strict=True):
            sensor = lookup(base + name)
            if sensor is None or (f := sensor.factors(unit)) is None:
                return None
            sensors.append(sensor)
            factors.append(f)
        if len({s.id for s in sensors}) != len(sensors):
            return None
        layout = Layout(sensors, factors)
        layout.lid = self.windows.add_layout(layout.id_list)
        if self.store is not None:
            layout.heads = [self.store.head_of(s) for s in sensors]
            layout.template = pack_template(layout.heads)
        return layout

    def take(self, topic: str, data: list, now: float, wall: float) -> bool:
        """Take a pack received at ``wall`` (plant time ``now``); False: not taken, untouched."""
        columns = plain_columns(topic, data)
        if columns is None:
            return False
        base, bt, bv, names, values, times, units, qualities = columns
        layout = self.layout(base, names, units)
        if layout is None:
            return False
        windows = self.windows
        v = np.array(values, dtype=float)
        t = np.array(times, dtype=float)
        if bv is not None:  # SenML: times relative to bt, values to bv (RFC 8428)
            v = bv + v
            t = bt + t
        t_list = t.tolist()
        t_min, t_max = min(t_list), max(t_list)
        if t_min < SENML_RELATIVE_BELOW and bv is not None:
            t = np.where(t < SENML_RELATIVE_BELOW, t + now, t)
            t_list = t.tolist()
            t_min, t_max = min(t_list), max(t_list)
        x = layout.a * v + layout.b
        # times are finite numbers or +-inf (JSON has no NaN): these bounds catch inf
        if not (
            t_max - now <= windows.tolerance_s
            and now - t_min <= windows.oldest_s
            and -_FAR_S < t_min
            and t_max < _FAR_S
            and math.isfinite(x.sum())  # no value overflowed (or a sum did: per value)
        ):
            return False
        if t_min == t_max:  # one time: remembered as (layout, t)
            fresh = windows.new_pack(layout.lid, t_min)
        else:
            fresh = windows.new_pairs(list(zip(layout.id_list, t_list, strict=True)))
        if not fresh:
            return False  # a duplicate: the per-value path counts which
        # from here on the pack is taken: nothing can send it back
        c = self.counts
        n = len(t_list)
        c.values += n
        c.accepted += n
        flags = (x < layout.low) | (x > layout.high)
        good = 0 not in qualities
        if flags.any():
            quality = (np.array(qualities, dtype=np.int64) != 0) & ~flags
            c.implausible += int(flags.sum())
            flagged = c.implausible_sensors
            for i in np.flatnonzero(flags).tolist():
                key = layout.keys[i]
                flagged[key] = flagged.get(key, 0) + 1
            q, f, good = quality.astype(np.int64), flags.astype(np.int64), False
        elif good:
            q, f = layout.ones, layout.zeros
        else:
            q, f = (np.array(qualities, dtype=np.int64) != 0).astype(np.int64), layout.zeros
        c.late += windows.place_many(layout.ids, t, x, q, f, (t_min, t_max))
        windows.forget(now)
        if self.store is not None:
            assert layout.heads is not None
            if good and t_min == t_max and layout.template is not None:
                self.store.add_good(layout.template, layout.id_list, t_list, x.tolist(), wall)
            else:
                stamp = t_list[0] if t_min == t_max else None
                self.store.add_columns(layout.heads, layout.id_list, t, t_list, x, q, wall, stamp)
            c.submitted += n
        self.taken += 1
        return True

    def stats(self) -> dict[str, Any]:
        """Packs taken as arrays, layouts known (and how many of them are not plain)."""
        return {
            "packs_taken": self.taken,
            "layouts": sum(v is not None for v in self.layouts.values()),
            "layouts_not_plain": sum(v is None for v in self.layouts.values()),
        }
