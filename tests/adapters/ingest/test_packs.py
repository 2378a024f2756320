"""A gateway's pack taken as arrays gives exactly what the per-value path gives."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.influx.transport import InfluxConfig
from adapters.ingest.store import RawStore
from tests.adapters.ingest.conftest import START, make_ingestor

#: (name, units it may come in): the day scenario's sensors and one nobody maps.
NAMES = {
    "bus_7/v": ["V", "V", "kV", "W"],
    "bus_8/v": ["V", "kV"],
    "pv_roof/p": ["W", "W", "kW"],
    "bess/soc": ["%"],
    "nothing/v": ["V"],
}
VALUES = {"V": [230.0, 231.5, 229, 1e6, 0.0, -0.0], "kV": [0.23, 0.2301], "W": [2e4, 15000, 1e12]}
VALUES["kW"] = [20.0, 17]
VALUES["%"] = [40, 55.5, 180.0]
#: Offsets of a record's time from plant time: on time, late, out of order, skewed, stale.
OFFSETS = [0.0, 0.0, -0.5, -1.25, 0.75, -3.0, 5.0, -90.0]


@st.composite
def record(draw):
    name = draw(st.sampled_from(sorted(NAMES)))
    unit = draw(st.sampled_from(NAMES[name]))
    value = draw(st.sampled_from(VALUES.get(unit, [1.0])))
    return name, unit, value, draw(st.sampled_from(OFFSETS)), draw(st.sampled_from([1, 1, 0]))


@st.composite
def message(draw):
    kind = draw(st.sampled_from(["senml", "senml", "array", "single", "repeat", "step"]))
    if kind == "step":
        return ("step", draw(st.sampled_from([0.5, 1.0, 1.0, 2.5])))
    if kind == "repeat":
        return ("repeat", draw(st.integers(0, 50)))
    records = draw(st.lists(record(), min_size=1, max_size=5))
    bt_offset = draw(st.sampled_from([0.0, -1.0, 0.5]))
    return (kind, records, bt_offset, draw(st.booleans()))


def payload(kind, records, bt_offset, names_unique, now_s):
    """The wire form of a drawn message (topic, bytes)."""
    if names_unique:  # the common form: each sensor once per pack
        seen, kept = set(), []
        for r in records:
            if r[0] not in seen:
                seen.add(r[0])
                kept.append(r)
        records = kept
    if kind == "single":
        name, unit, value, dt, q = records[0]
        body = {"t": START + now_s + dt, "v": value, "u": unit, "q": q}
        return f"field/{name}", json.dumps(body).encode()
    if kind == "array":
        rows = [
            {"n": n, "t": START + now_s + dt, "v": v, "u": u, "q": q} for n, u, v, dt, q in records
        ]
        return "field/gw/g1", json.dumps(rows).encode()
    bt = START + now_s + bt_offset
    rows = []
    for i, (n, u, v, dt, q) in enumerate(records):
        head = {"bn": "field/", "bt": bt} if i == 0 else {}
        rows.append({**head, "n": n, "u": u, "v": v, "t": now_s + dt - (now_s + bt_offset), "q": q})
    return "field/gw/g2/senml", json.dumps(rows).encode()


def ingestors(elements):
    """The ingestor as shipped and one whose pack path never takes a pack."""
    made = []
    for _ in range(2):
        store = RawStore(InfluxConfig("http://127.0.0.1:9"), "site", trace=True)  # not opened
        made.append(make_ingestor(elements, store=store, tolerance_s=2.0, max_delay_s=60.0))
    made[1].packs.take = lambda *args: False
    return made


def same_readings(a, b):
    assert a.keys() == b.keys()
    for key in ("ids", "t", "values", "quality", "flags"):
        np.testing.assert_array_equal(a[key], b[key])
    assert [w["t_s"] for w in a["windows"]] == [w["t_s"] for w in b["windows"]]
    for wa, wb in zip(a["windows"], b["windows"], strict=True):
        for key in ("ids", "t", "values", "quality", "flags"):
            np.testing.assert_array_equal(wa[key], wb[key])


@pytest.mark.filterwarnings("ignore::adapters.ingest.window.ClockSkewWarning")
@settings(max_examples=300, deadline=None)
@given(st.lists(message(), min_size=1, max_size=40))
def test_packs_as_arrays_equal_the_per_value_path(elements, messages):
    fast, slow = ingestors(elements)
    sent: list[tuple[str, bytes]] = []
    now_s = 10.0
    for ing in (fast, slow):
        ing.follow(now_s)
    for m in messages:
        if m[0] == "step":
            now_s += m[1]
            got = [ing.readings(now_s) for ing in (fast, slow) if ing.follow(now_s) is None]
            same_readings(*got)
            continue
        if m[0] == "repeat":
            if not sent:
                continue
            topic, body = sent[m[1] % len(sent)]
        else:
            topic, body = payload(*m, now_s)
            sent.append((topic, body))
        for ing in (fast, slow):
            ing.receive(topic, body, 7.0)
    now_s += 5.0
    final = [ing.readings(now_s) for ing in (fast, slow) if ing.follow(now_s) is None]
    same_readings(*final)
    assert fast.counts.as_dict() == slow.counts.as_dict()
    assert fast.store.pending_text() == slow.store.pending_text()
    assert fast.store._trace == slow.store._trace
    assert [s.key for s in fast.mapper.sensors] == [s.key for s in slow.mapper.sensors]
    assert fast.windows.remembered(START + now_s) == slow.windows.remembered(START + now_s)


def test_an_emulator_pack_is_taken_as_arrays_and_its_repeat_is_not(elements):
    fast, slow = ingestors(elements)
    pack = [
        {"bn": "field/", "bt": START + 9.5, "n": "bus_7/v", "u": "V", "v": 231.0, "t": 0.0, "q": 1},
        {"n": "pv_roof/p", "u": "W", "v": 20000, "t": 0.25, "q": 1},
        {"n": "bess/soc", "u": "%", "v": 180.0, "t": 0.0, "q": 1},  # implausible
    ]
    body = json.dumps(pack).encode()
    for ing in (fast, slow):
        ing.follow(10.0)
        ing.receive("field/gw/g2/senml", body, 7.0)
        ing.receive("field/gw/g2/senml", body, 7.0)  # a QoS 1 re-delivery
    assert fast.packs.stats() == {"packs_taken": 1, "layouts": 1, "layouts_not_plain": 0}
    counts = fast.counts.as_dict()
    assert counts == slow.counts.as_dict()
    assert (counts["accepted"], counts["duplicates"], counts["implausible"]) == (3, 3, 1)
    readings = fast.readings(10.0)  # closes window 9: [9 s, 10 s)
    flagged = [fast.mapper.sensors[i].key for i in readings["ids"][readings["flags"] == 1]]
    assert flagged == ["field/bess/soc"]
    assert fast.store.pending_text() == slow.store.pending_text()


def test_a_value_of_a_remembered_pack_is_a_duplicate_on_every_path(elements):
    """A pack remembered as (layout, t): the same sensor and time again is a duplicate,
    whether it comes alone, in another layout or in the same pack again."""
    fast, slow = ingestors(elements)
    t = START + 9.0

    def pack(*names):
        rows = [{"n": n, "u": "V", "v": 230.0, "t": 0.0, "q": 1} for n in names]
        rows[0] = {"bn": "field/", "bt": t, **rows[0]}
        return json.dumps(rows).encode()

    alone = json.dumps({"t": t, "v": 230.0, "u": "V"}).encode()
    for ing in (fast, slow):
        ing.follow(10.0)
        ing.receive("field/gw/a/senml", pack("bus_7/v", "bus_8/v"), 7.0)
        ing.receive("field/bus_7/v", alone, 7.0)  # alone
        ing.receive("field/gw/b/senml", pack("bus_8/v", "bus_9/v"), 7.0)  # overlapping
        ing.receive("field/gw/a/senml", pack("bus_7/v", "bus_8/v"), 7.0)  # again
    assert fast.packs.taken == 1
    counts = fast.counts.as_dict()
    assert counts == slow.counts.as_dict()
    assert (counts["accepted"], counts["duplicates"]) == (3, 4)
    assert fast.windows.remembered(10.0 + START) == slow.windows.remembered(10.0 + START)
