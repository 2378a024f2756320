import time

import pytest

from adapters.mqtt.link import MqttLink, parse_broker_url
from adapters.server import free_port


@pytest.mark.parametrize(
    ("url", "expected"),
    [("mqtt://example:1884", ("example", 1884)), ("localhost", ("localhost", 1883))],
)
def test_broker_url(url, expected):
    assert parse_broker_url(url) == expected


def test_bad_broker_url_is_named():
    with pytest.raises(ValueError, match="'http://x': expected mqtt://host:port"):
        parse_broker_url("http://x")


def test_unreachable_broker_gives_a_clear_error():
    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"MQTT broker {url} unreachable"):
        MqttLink(url, "t-unreachable").open()


def test_buffer_is_bounded_and_counted_while_the_broker_is_down(own_broker, subscriber_factory):
    sub = subscriber_factory(own_broker, "buf/#", "buf-sub")
    link = MqttLink(own_broker.url, "buf-pub", buffer_max=50, reconnect_max_s=2).open()
    own_broker.stop()
    deadline = time.monotonic() + 5
    while link.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not link.connected
    accepted = [link.publish(f"buf/{i % 3}", str(i).encode()) for i in range(80)]
    assert accepted.count(True) == 50 and link.stats.dropped == 30
    own_broker.start()
    assert link.flush(15.0), "buffered messages were not delivered after the reconnect"
    sub.wait_for(50, "buf/", 15.0)
    link.close()
    got = [int(p) for t, p in sub.messages if t.startswith("buf/")]
    assert got == list(range(50))  # in order, none lost, the overflow refused up front
    assert link.stats.connects == 2


def test_a_persistent_session_keeps_what_came_while_away(own_broker):
    """MQTT v5: ``clean_session=False`` is clean_start False plus a Session Expiry
    Interval; without the interval the broker would end the session at the disconnect."""
    got: list[bytes] = []
    sub = MqttLink(own_broker.url, "t-persist", clean_session=False)
    sub.subscribe("persist/#", lambda m: got.append(m.payload))
    sub.open().close()
    pub = MqttLink(own_broker.url, "t-persist-pub").open()
    for i in range(5):
        pub.publish("persist/x", str(i).encode())
    assert pub.flush(10.0)
    pub.close()
    again = MqttLink(own_broker.url, "t-persist", clean_session=False)
    again.subscribe("persist/#", lambda m: got.append(m.payload))
    again.open()
    deadline = time.monotonic() + 10
    while len(got) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    again.close()
    assert got == [b"0", b"1", b"2", b"3", b"4"]


def test_a_queue_of_packets_small_and_larger_than_a_block_arrives_whole_and_in_order(own_broker):
    """Read in blocks: many packets per block, packets across blocks, one per select."""
    from adapters.mqtt.link import READ_BLOCK

    sizes = [1, 7, 127, 128, 16_383, 16_384, 3 * READ_BLOCK + 5, 0, 300, 2 * READ_BLOCK]
    payloads = [bytes([i % 251]) * sizes[i % len(sizes)] for i in range(400)]
    got: list[bytes] = []
    sub = MqttLink(own_broker.url, "t-blocks", clean_session=False)
    sub.subscribe("blocks/#", lambda m: got.append(m.payload))
    sub.open().close()
    pub = MqttLink(own_broker.url, "t-blocks-pub").open()
    for i, payload in enumerate(payloads):
        pub.publish(f"blocks/{i % 3}", payload)
    assert pub.flush(30.0)
    pub.close()
    again = MqttLink(own_broker.url, "t-blocks", clean_session=False)
    again.subscribe("blocks/#", lambda m: got.append(m.payload))
    again.open()  # the whole queue arrives at once: blocks hold many packets
    deadline = time.monotonic() + 30
    while len(got) < len(payloads) and time.monotonic() < deadline:
        time.sleep(0.02)
    again.close()
    assert got == payloads
    # every message was acknowledged: the session gets none of them again
    again = MqttLink(own_broker.url, "t-blocks", clean_session=False)
    again.subscribe("blocks/#", lambda m: got.append(m.payload))
    again.open()
    time.sleep(1.0)
    again.close()
    assert len(got) == len(payloads)


def test_a_message_with_properties_and_one_at_qos_0_arrive_as_paho_decodes_them(own_broker):
    """The PUBLISH fast path takes v5 messages without properties; others go to paho."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got: list = []
    sub = MqttLink(own_broker.url, "t-props")
    sub.subscribe("props/#", lambda m: got.append(m), qos=1)
    sub.open()
    raw = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="t-props-pub", protocol=mqtt.MQTTv5
    )
    raw.connect("127.0.0.1", own_broker.port)
    raw.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("unit", "kW")
    props.ContentType = "application/json"
    for info in (
        raw.publish("props/with", b"1.5", qos=1, properties=props),
        raw.publish("props/plain", b"2.5", qos=1),
        raw.publish("props/q0", b"", qos=0),
        raw.publish("props/\u00e9t\u00e9", b"x" * 70_000, qos=1, retain=False),
    ):
        info.wait_for_publish(10)
    deadline = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    raw.loop_stop()
    raw.disconnect()
    sub.close()
    by_topic = {m.topic: m for m in got}
    assert sorted(by_topic) == ["props/plain", "props/q0", "props/with", "props/\u00e9t\u00e9"]
    with_props = by_topic["props/with"]
    assert with_props.payload == b"1.5" and with_props.qos == 1
    assert with_props.properties.UserProperty == [("unit", "kW")]
    assert with_props.properties.ContentType == "application/json"
    assert by_topic["props/plain"].payload == b"2.5" and by_topic["props/plain"].qos == 1
    assert by_topic["props/q0"].payload == b"" and by_topic["props/q0"].qos == 0
    assert by_topic["props/\u00e9t\u00e9"].payload == b"x" * 70_000
    assert not any(m.dup or m.retain for m in got)
