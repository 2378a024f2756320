"""Judging device payloads: every payload gets a verdict, none raises, none is applied blindly."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mqtt.payloads import MAX_PAYLOAD_BYTES, REASONS, judge, plausible_ranges

PV = plausible_ranges("pv", {"p_dc_kw": 45.0})
BATTERY = plausible_ranges("battery", {"p_max_kw": 20.0, "e_kwh": 60.0})


def _check(verdict, valid=None) -> None:
    """The invariant: accepted with a finite value in range, or rejected with a reason."""
    if verdict.accepted:
        assert verdict.reason is None
        value = verdict.measurement.value
        assert math.isfinite(value)
        if valid is not None:
            assert valid[0] <= value <= valid[1]
    else:
        assert verdict.reason in REASONS and verdict.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 1000 + b"]" * 1000, "malformed"),  # RecursionError in json on today's code
        (b'{"value": ' + b"[" * 3000 + b"]" * 3000 + b"}", "too_large"),
        (b"1e308", "implausible"),
        (b'{"value": 45000}', "implausible"),  # 1,000 times the rating
        (b'{"value": 60}', "implausible"),  # 60 kW from a 45 kWp plant
        (b"1" * 4000, "malformed"),  # more digits than int() takes
        (b'{"value": ' + b"9" * 400 + b"}", "malformed"),  # too large for a float
        (b'{"value": 1, "seq": -1}', "malformed"),
        (b'{"value": 1, "seq": 1.5}', "malformed"),
        (b'{"value": 1, "seq": 96}', "malformed"),  # beyond the last step
        (b'{"value": 1, "ts": "2016-99-99T00:00:00Z"}', "malformed"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "too_large"),
    ],
)
def test_poisonous_payloads_are_rejected_with_a_reason(payload, reason):
    verdict = judge(payload, PV["p_kw"], max_seq=95)
    assert verdict.reason == reason, verdict.detail
    _check(verdict)


def test_plausible_values_pass():
    assert judge(b'{"value": 44.0, "seq": 95}', PV["p_kw"], max_seq=95).measurement.value == 44.0
    assert judge(b"-0.5", PV["p_kw"]).accepted  # inverter standby at night
    assert not judge(b"1.01", BATTERY["soc"]).accepted
    assert not judge(b"-25", BATTERY["p_kw"]).accepted and judge(b"-24", BATTERY["p_kw"]).accepted
    assert not judge(b"80", BATTERY["e_kwh"]).accepted


def _nested(depth: int, leaf: object) -> bytes:
    """``{"value": {"value": ... leaf}}``, built as text (json.dumps would recurse)."""
    return b'{"value":' * depth + json.dumps(leaf).encode() + b"}" * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["value", "ts", "seq", "x"]), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=6000))
def test_random_bytes_get_a_verdict(payload):
    _check(judge(payload, PV["p_kw"], max_seq=95), PV["p_kw"])


@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=3000))
def test_random_json_and_nesting_get_a_verdict(value, depth):
    payload = _nested(depth, value)
    _check(judge(payload, BATTERY["p_kw"], max_seq=95), BATTERY["p_kw"])
    deep = b"[" * depth + json.dumps(value).encode() + b"]" * depth
    _check(judge(deep, BATTERY["p_kw"], max_bytes=10**6))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**500), max_value=10**500),
    ),
    st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=30)),
)
def test_random_numbers_get_a_verdict(number, seq):
    for payload in (
        repr(number).encode(),
        json.dumps({"value": number, "seq": seq}).encode(),
    ):
        _check(judge(payload, PV["p_kw"], max_seq=95, max_bytes=10**6), PV["p_kw"])
