import json

import pytest

from adapters.ingest.decode import SENML_RELATIVE_BELOW, decode

NOW = 1_466_481_700.0


def run(topic, payload, max_bytes=65536, max_records=100):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return decode(topic, payload, NOW, max_bytes=max_bytes, max_records=max_records)


def test_a_per_sensor_payload():
    out = run("field/bus_7/v", {"t": NOW - 1, "v": 231.5, "u": "V", "q": 1})
    assert out.records == [("field/bus_7/v", NOW - 1, 231.5, "V", 1)] and out.reason is None
    assert run("field/bus_7/v", {"t": NOW, "v": 3}).records == [
        ("field/bus_7/v", NOW, 3.0, None, 1)
    ]


def test_a_bare_number_has_no_time():
    assert run("field/bess/soc", b"55.5").records == [("field/bess/soc", None, 55.5, None, 1)]


def test_the_twins_device_payload():
    payload = {"ts": "2016-06-21T04:00:00Z", "value": 12.5, "unit": "kW", "quality": "fallback"}
    ((key, t, v, u, q),) = run("field/site/bess/p_kw", payload).records
    assert (t, v, u, q) == (1_466_481_600.0, 12.5, "kW", 0)


def test_a_gateway_json_array_keeps_good_records_and_counts_bad_ones():
    batch = [
        {"n": "bus_7/v", "t": NOW, "v": 230.0, "u": "V"},
        {"n": "line_5/p_from", "t": NOW, "v": -1200, "u": "W", "q": 0},
        {"n": "bus_8/v", "t": NOW, "v": True},  # a boolean is not a number
        {"n": "", "t": NOW, "v": 1.0},
        {"t": NOW, "v": 1.0},
        "text",
        {"n": "bus_9/v", "t": "yesterday", "v": 1.0},
    ]
    out = run("field/gw/g1", batch)
    assert out.records == [
        ("field/bus_7/v", NOW, 230.0, "V", 1),
        ("field/line_5/p_from", NOW, -1200.0, "W", 0),
    ]
    assert out.malformed == 5


def test_a_senml_pack_with_base_fields_and_relative_times():
    pack = [
        {"bn": "field/", "bt": NOW - 2, "bu": "V", "n": "bus_7/v", "v": 230.0},
        {"n": "bus_7/v", "t": 1, "v": 231.0},
        {"n": "pv_roof/p", "u": "W", "t": 2, "v": 5000, "q": 0},
        {"bn": "other/", "bt": 0, "n": "x", "t": -1.5, "v": 1},  # relative to receipt
        {"n": "y", "vs": "text"},  # not numeric: counted
    ]
    out = run("field/gw/g1/senml", pack)
    assert out.records == [
        ("field/bus_7/v", NOW - 2, 230.0, "V", 1),
        ("field/bus_7/v", NOW - 1, 231.0, "V", 1),
        ("field/pv_roof/p", NOW, 5000.0, "W", 0),
        ("other/x", NOW - 1.5, 1.0, "V", 1),
    ]
    assert out.malformed == 1
    assert NOW > SENML_RELATIVE_BELOW


def test_senml_base_value_adds_and_a_bad_base_spoils_the_rest():
    out = run("x/senml", [{"bn": "a/", "bt": NOW, "bv": 10, "n": "b", "v": 1.5}])
    assert out.records == [("a/b", NOW, 11.5, None, 1)]
    out = run(
        "x/senml", [{"bn": "a/", "bt": NOW, "n": "b", "v": 1}, {"bt": "soon", "n": "c", "v": 2}]
    )
    assert len(out.records) == 1 and out.malformed == 1 and out.reason == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        b"NaN",
        b'{"t": 1, "v": NaN}',
        b'{"t": 1, "v": Infinity}',
        b"{not json",
        b'"text"',
        b"\xff\xfe",
        b'{"t": 1}',
        b'{"t": 1, "v": 1e999}',
        b"[" * 5000 + b"]" * 5000,
        b'{"v": 1, "q": "maybe"}',
    ],
)
def test_payloads_that_are_not_finite_numbers_are_malformed(payload):
    out = run("field/bus_7/v", payload)
    assert out.records == [] and out.malformed == 1 and out.reason == "malformed"


def test_oversized_payloads_and_batches_are_rejected_unread():
    big = run("field/bus_7/v", b"1" * 70000)
    assert big.reason == "too_large" and big.records == [] and big.malformed == 0
    batch = [{"n": f"bus_{i}/v", "t": NOW, "v": 1.0} for i in range(101)]
    assert run("field/gw/g", batch).reason == "too_large"
    assert len(run("field/gw/g", batch[:100]).records) == 100
