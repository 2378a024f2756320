"""The per-value fast paths give exactly what the general paths give."""

import math
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.influx.transport import InfluxConfig
from adapters.ingest.decode import _array
from adapters.ingest.store import RawStore, float_reprs
from adapters.ingest.window import OK, Windows

NOW = 1_466_481_700.0

finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(
    finite,
    st.integers(-(2**53), 2**53),
    st.sampled_from([0.0, -0.0, 1e-5, 1e16, 230.0, NOW, 12.5]),
)
odd = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.sampled_from([math.nan, math.inf, -math.inf, "good", "bad", "2016-06-21T04:00:00Z"]),
    st.lists(st.integers(), max_size=1),
)
field_value = st.one_of(numbers, numbers, numbers, odd)
names = st.one_of(st.sampled_from(["bus_1/v", "line_2/p_from", "pv/p", ""]), st.text(max_size=4))
fields = st.fixed_dictionaries(
    {},
    optional={
        "n": st.one_of(names, names, names, odd),
        "v": field_value,
        "t": field_value,
        "u": st.one_of(st.sampled_from(["V", "kW", "W"]), odd),
        "q": st.one_of(st.sampled_from([0, 1, 2]), odd),
        "value": field_value,
        "x": st.integers(),
    },
)
plain = st.fixed_dictionaries(
    {"n": st.sampled_from(["bus_1/v", "bus_2/v", "pv/p"]), "v": numbers},
    optional={
        "t": st.one_of(numbers, st.floats(-5, 5)),
        "u": st.sampled_from(["V", "W"]),
        "q": st.sampled_from([0, 1]),
    },
)
record = st.one_of(plain, plain, plain, fields)
base = st.fixed_dictionaries(
    {},
    optional={
        "bn": st.one_of(st.just("field/"), st.just(""), odd),
        "bt": st.one_of(st.just(NOW - 3.0), st.just(0.0), numbers, odd),
        "bu": st.one_of(st.just("V"), odd),
        "bv": st.one_of(st.just(0.0), numbers, odd),
        "bver": st.just(10),
    },
)


def same(a, b):
    """Decoded results equal, NaN-free records compared exactly (-0.0 kept apart)."""
    assert (a.malformed, a.reason) == (b.malformed, b.reason)
    assert [tuple(map(repr, r)) for r in a.records] == [tuple(map(repr, r)) for r in b.records]


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.tuples(base, record).map(lambda p: {**p[0], **p[1]}), record, st.integers()),
    st.lists(st.one_of(plain, plain, plain, record, base, st.integers()), max_size=8),
)
def test_senml_fast_path_equals_the_general_loop(first, rest):
    data = [first, *rest]
    same(_array("field/gw/g/senml", data, NOW), _array("field/gw/g/senml", data, NOW, plain=False))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(plain, plain, plain, record, st.integers()), max_size=8))
def test_gateway_array_fast_path_equals_the_general_loop(data):
    same(_array("field/gw/g", data, NOW), _array("field/gw/g", data, NOW, plain=False))


def test_an_emulator_pack_takes_the_fast_path():
    data = [
        {"bn": "field/", "bt": NOW, "n": "bus_1/v", "u": "V", "v": 230.1, "t": 0.0, "q": 1},
        {"n": "bus_2/v", "u": "V", "v": 229, "t": 0.25, "q": 0},
        {"n": "bus_3/v", "v": -0.0},
    ]
    out = _array("field/gw/g/senml", data, NOW)
    assert out.records == [
        ("field/bus_1/v", NOW, 230.1, "V", 1),
        ("field/bus_2/v", NOW + 0.25, 229.0, "V", 0),
        ("field/bus_3/v", NOW, 0.0, None, 1),
    ]
    assert repr(out.records[2][2]) == "0.0"  # bv + v, as the general loop


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, max_size=60))
def test_float_reprs_are_repr(values):
    assert float_reprs(values) == [repr(v) for v in values]


def test_float_reprs_at_the_exponent_boundaries():
    values = [1e-4, 9.99e-5, 1e-5, 1e15, 1e16, 1.5e16, -1e-7, 0.0, -0.0, 5e-324, 1.79e308]
    assert float_reprs(values) == [repr(v) for v in values]
    assert float_reprs([0.1, 2.5, 1e15]) == ["0.1", "2.5", "1000000000000000.0"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.floats(-40.0, 10.0).map(lambda x: round(x, 1))),
        max_size=30,
    ),
    st.lists(st.floats(0.0, 3.0), min_size=1, max_size=4),
)
def test_checking_a_batch_then_forgetting_equals_admitting_each(values, steps):
    """``check`` per value and ``forget`` once per message: admit()'s verdicts and memory."""
    one, batched = (Windows(NOW, 1.0, 2.0, 10.0, 0.0) for _ in range(2))
    now = NOW
    per = max(1, len(values) // len(steps))
    for k, step in enumerate(steps):
        now += step
        batch = values[k * per : (k + 1) * per] if k < len(steps) - 1 else values[k * per :]
        expected = [one.admit(sid, now + dt, now) for sid, dt in batch]
        got = [batched.check(sid, now + dt, now) for sid, dt in batch]
        if OK in got:
            batched.forget(now)
        assert got == expected
        assert batched._seen == one._seen and list(batched._order) == list(one._order)
        assert batched.skew_offsets == one.skew_offsets


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.floats(-1e10, 2e9), finite, st.sampled_from([0, 1])),
        min_size=1,
        max_size=20,
    )
)
def test_a_messages_lines_are_the_per_value_lines(points):
    store = RawStore(InfluxConfig("http://127.0.0.1:9"), "site", trace=True)  # not opened
    sensors = [
        SimpleNamespace(id=i, kind="bus", element=f"bus {i}", key=f"field/bus_{i}/v", head="")
        for i in range(3)
    ]
    for s in sensors:
        s.quantity = "v_pu"
    store.add_many([(sensors[i], t, v, q) for i, t, v, q in points], 7.0)
    assert store.pending_text() == "".join(
        f"{store.head(sensors[i])}{v!r},quality={q}.0 {round(t * 1e6)}000\n"
        for i, t, v, q in points
    )
    assert store._trace == [(i, t, 7.0) for i, t, _, _ in points]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6),
    st.lists(finite, min_size=6, max_size=6),
    st.floats(1e9, 2e9),
)
def test_a_good_packs_template_lines_are_the_per_value_lines(keys, values, t):
    """Heads with ``%`` (or a NUL: no template) give the lines add_columns gives."""
    import numpy as np

    from adapters.ingest.store import pack_template

    store = RawStore(InfluxConfig("http://127.0.0.1:9"), "site")  # not opened
    heads = [f"bus,sensor={k} v=" for k in keys]
    values = values[: len(heads)]
    ids = list(range(len(heads)))
    times = [t] * len(heads)
    template = pack_template(heads)
    assert (template is None) == any("\x00" in h for h in heads)
    ones = np.ones(len(heads), dtype=np.int64)
    store.add_columns(heads, ids, np.array(times), times, np.array(values), ones, 0.0, t)
    expected = store.pending_text()
    if template is not None:
        store._text, store._pending = [], 0
        store.add_good(template, ids, times, values, 0.0)
        assert store.pending_text() == expected
