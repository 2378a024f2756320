import json
import math
from datetime import UTC, datetime

import pytest

from adapters.mqtt.topics import (
    MalformedPayload,
    TopicScheme,
    decode_measurement,
    encode_value,
    format_ts,
)


def test_topic_scheme():
    scheme = TopicScheme("twin", "site_a")
    assert scheme.value("bess", "soc") == "twin/site_a/bess/soc"
    assert scheme.meta("bess") == "twin/site_a/bess/meta"
    assert scheme.status() == "twin/site_a/status"
    assert scheme.residual("bess", "p_kw") == "twin/site_a/bess/residual/p_kw"
    assert scheme.bundle("bus") == "twin/site_a/bundle/bus"


def test_value_payload_round_trip():
    ts = format_ts(datetime(2016, 6, 21, 4, tzinfo=UTC))
    payload = json.loads(encode_value(ts, 12.5, "kW", 16, 1.5e9))
    assert payload == {
        "ts": "2016-06-21T04:00:00Z",
        "value": 12.5,
        "unit": "kW",
        "quality": "good",
        "seq": 16,
        "sent": 1.5e9,
    }
    measured = decode_measurement(encode_value(ts, 12.5, "kW", 16, 0.0))
    assert measured.value == 12.5
    assert measured.ts == datetime(2016, 6, 21, 4, tzinfo=UTC)


def test_nan_is_published_as_null():
    assert json.loads(encode_value("t", math.nan, "kW", 0, 0.0))["value"] is None


@pytest.mark.parametrize(
    ("payload", "value"),
    [(b"3.5", 3.5), (b"-2", -2.0), (b'{"value": 1}', 1.0), (b'{"value": 2.5, "ts": null}', 2.5)],
)
def test_accepted_device_payloads(payload, value):
    assert decode_measurement(payload).value == value


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"v": 1}', "without a 'value'"),
        (b'{"value": "high"}', "not a number"),
        (b'{"value": true}', "not a number"),
        (b"NaN", "not finite"),
        (b'{"value": 1, "ts": "2016-06-21T04:00:00"}', "no time zone"),
        (b'{"value": 1, "ts": 5}', "ISO 8601"),
        (b"[1, 2]", "not a number"),
    ],
)
def test_malformed_device_payloads(payload, reason):
    with pytest.raises(MalformedPayload, match=reason):
        decode_measurement(payload)
