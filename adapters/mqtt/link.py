"""One MQTT connection with the guarantees twin needs (paho-mqtt 2.x).

- QoS 1 by default; paho re-sends unacknowledged messages, in order, after a reconnect.
- Automatic reconnect with exponential backoff (``reconnect_min_s`` .. ``reconnect_max_s``).
- While the broker is away, publications wait in our own **bounded** outbox
  (``buffer_max`` messages); beyond it a publication is dropped and counted, never
  blocking the run (paho's own queue would grow without bound, PITFALLS.md). While
  connected, publishing waits when ``max_pending`` messages are unacknowledged. After a
  reconnect the outbox goes out only once paho has re-sent what was in flight, so each
  topic keeps its order (publishing straight into paho races with its re-send).
- A last will (retained) marks the publisher offline when it dies.
- ``TCP_NODELAY`` on the socket: a hardware loop's setpoint/answer round trip is a few
  small packets, which Nagle's algorithm would hold back by tens of milliseconds.
- MQTT v5, so the broker says when it refuses a publication: Mosquitto acknowledges a
  message its ACL refused like any other under MQTT 3.1.1, but under v5 its PUBACK carries
  reason code 0x87 (Not authorized). Such a message is counted as ``refused`` (and
  ``dropped``), per topic in ``refused_topics``, and logged once per topic with the user
  (never the password): a twin publishing under a prefix its login may not write cannot
  report its telemetry as delivered.
- Persistent sessions for subscribers (``clean_session=False``: under v5 ``clean_start``
  False with a Session Expiry Interval, PITFALLS.md), so a broker restart with persistence
  does not drop what was queued for them. With ``clean_session=True`` every connect starts
  a new session that ends with the connection, as under 3.1.1; either way paho re-sends
  unacknowledged QoS 1 messages after a reconnect.
- Username/password and TLS (``mqtts://``, CA and client certificates) from
  :class:`adapters.mqtt.auth.MqttAuth`; a refused login or TLS handshake fails
  :meth:`MqttLink.open` at once with the broker's URL (never the password) and the reason.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from adapters.mqtt.auth import MqttAuth, parse_broker

__all__ = [
    "LOG_REFUSED_TOPICS",
    "RESUME_AFTER_S",
    "SESSION_NEVER_EXPIRES",
    "LinkStats",
    "MqttLink",
    "parse_broker_url",
]

#: After a reconnect, the outbox waits for the first acknowledgement of a re-sent message,
#: or this many seconds.
RESUME_AFTER_S = 3.0
#: Session Expiry Interval of a persistent session (``clean_session=False``): never expires,
#: as a 3.1.1 session without ``clean_session``.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
#: Topics whose first refusal is logged, per link (refusals on all are counted).
LOG_REFUSED_TOPICS = 10

log = logging.getLogger(__name__)


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt[s]://host:port`` (or ``host:port``) → (host, port); 1883 (8883 for mqtts)."""
    address = parse_broker(url)
    return address.host, address.port


@dataclass
class LinkStats:
    """Counters of one connection (all since it was opened).

    ``published`` counts the messages accepted by :meth:`MqttLink.publish`; of them the
    broker acknowledged ``acked`` and refused ``refused`` (an ACL, per topic in
    ``refused_topics``); ``dropped`` counts the messages lost: not accepted (outbox full,
    QoS 0 while disconnected) or refused. ``username`` is the login they were sent under.
    """

    published: int = 0
    acked: int = 0
    refused: int = 0
    dropped: int = 0
    buffered_peak: int = 0
    backpressure_s: float = 0.0
    received: int = 0
    connects: int = 0
    disconnects: int = 0
    refused_topics: dict[str, int] = field(default_factory=dict)
    username: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counters, refusals per topic and username (without the error texts)."""
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if isinstance(v, int | float)}
        out["refused_topics"] = dict(self.refused_topics)
        out["username"] = self.username
        return out


#: Bytes read from the socket at once (paho reads a packet's bytes one call each).
READ_BLOCK = 65_536


class _Client(mqtt.Client):
    """paho's client, reading in blocks and telling on a QoS 2 message the broker refused.

    paho 2.x reads every packet with several ``recv`` calls (its type byte, each length
    byte, the rest) and one packet per ``select``: at thousands of messages per second
    the system calls cost more than the messages. Here the socket is read in blocks of
    :data:`READ_BLOCK` bytes that paho's reads are served from, and :meth:`loop_read`
    goes on while a block holds bytes (the socket's ``select`` no longer sees them). A
    block belongs to its socket: a reconnect starts afresh.

    Under MQTT v5 a broker refuses a QoS 2 message with a failure reason code in its
    PUBREC, which paho 2.x ignores (``_handle_pubrec``): it sends PUBREL anyway, Mosquitto
    answers with a successful PUBCOMP, and ``on_publish`` would report success.
    """

    on_pubrec_failure: Callable[[int, ReasonCode], None] | None = None
    _block: bytes = b""
    _block_at: int = 0
    _block_sock: object = None
    #: The properties of this client's received v5 messages that carry none (read only).
    _no_properties: Properties | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        at, block = self._block_at, self._block
        if at < len(block) and self._block_sock is self._sock:
            self._block_at = at + bufsize
            return block[at : at + bufsize]
        data = super()._sock_recv(max(bufsize, READ_BLOCK))
        if len(data) <= bufsize:
            self._block, self._block_at = b"", 0
            return data
        self._block, self._block_at, self._block_sock = data, bufsize, self._sock
        return data[:bufsize]

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        """paho's, without its per-message costs for an MQTT v5 PUBLISH without properties.

        paho decodes every PUBLISH with ``struct`` formats that differ per payload length
        (compiled anew each time) and builds a ``Properties`` object; most messages carry
        no properties. Such a QoS 0/1 message is decoded here (topic, packet identifier,
        payload; ``properties`` an empty ``Properties`` this client's such messages
        share: read only) and handled as paho would (callbacks, then PUBACK). Anything else: paho.
        """
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != mqtt.MQTTv5 or qos == 2 or len(packet) < 3:
            return super()._handle_publish()
        at = 2 + int.from_bytes(packet[:2], "big")
        topic = bytes(packet[2:at])
        mid = 0
        if qos:
            mid = int.from_bytes(packet[at : at + 2], "big")
            at += 2
        if at >= len(packet) or packet[at] != 0:
            return super()._handle_publish()  # properties (or a short packet): paho decides
        message = mqtt.MQTTMessage(mid=mid, topic=topic)
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        if self._no_properties is None:
            self._no_properties = Properties(PacketTypes.PUBLISH)
        message.properties = self._no_properties
        message.payload = bytes(packet[at + 1 :])
        message.timestamp = mqtt.time_func()
        if self.on_log is not None or self._logger is not None:
            self._easy_log(
                mqtt.MQTT_LOG_DEBUG,
                "Received PUBLISH (d%d, q%d, r%d, m%d), %r, ...  (%d bytes)",
                message.dup,
                qos,
                message.retain,
                mid,
                topic,
                len(message.payload),
            )
        self._handle_on_message(message)
        if qos == 0 or self._manual_ack:
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(mid)

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> mqtt.MQTTErrorCode:
        """paho's, but the PUBACKs the network thread queues while it reads go out together.

        paho wakes its own ``select`` through a socket pair for every queued packet and
        writes each PUBACK with a system call of its own. A PUBACK queued by the network
        thread needs no wake-up (the loop writes before it waits again) and joins the
        PUBACKs queued before it that are not written yet: one write for a block's
        messages. Everything else: paho.
        """
        if command != mqtt.PUBACK or threading.current_thread() is not self._thread:
            return super()._packet_queue(command, packet, mid, qos, info)
        out = self._out_packet
        last = out[-1] if out else None
        if last is not None and last.get("acks") and last["pos"] == 0:
            last["packet"] += packet  # type: ignore[operator]
            last["to_process"] += len(packet)
        else:
            out.append(
                {  # type: ignore[typeddict-unknown-key]
                    "command": command,
                    "mid": mid,
                    "qos": qos,
                    "pos": 0,
                    "to_process": len(packet),
                    "packet": bytearray(packet),
                    "info": info,
                    "acks": True,
                }
            )
        self._call_socket_register_write()
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def buffered(self) -> bool:
        """Whether bytes read from the socket wait in the block."""
        return self._block_at < len(self._block) and self._block_sock is self._sock

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """The parent's ``loop_read``, again while the block holds bytes (see the class)."""
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None:
            if not self.buffered():
                break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_pubrec(self) -> mqtt.MQTTErrorCode:
        packet = self._in_packet["packet"]
        # PUBREC (v5): packet identifier, then a reason code (absent: 0, success)
        if self._protocol == mqtt.MQTTv5 and len(packet) > 2 and packet[2] >= 0x80:
            (mid,) = struct.unpack("!H", packet[:2])
            if self.on_pubrec_failure is not None:
                self.on_pubrec_failure(mid, ReasonCode(PacketTypes.PUBREC, identifier=packet[2]))
        return super()._handle_pubrec()


def _close_sockets(exc: BaseException) -> None:
    """Close the sockets left in the frames of a failed connect."""
    tb = exc.__traceback__
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, socket.socket):
                value.close()
        tb = tb.tb_next


class MqttLink:
    """A paho client running its network loop in a background thread.

    Parameters
    ----------
    url : str
        ``mqtt[s]://[user[:password]@]host:port`` of the broker.
    client_id : str
        Unique per broker; a subscriber's session is kept under it.
    will : tuple of (topic, payload), optional
        Retained last-will message.
    clean_session : bool
        False keeps the subscriptions and queued messages across reconnects (MQTT v5:
        ``clean_start`` False and a Session Expiry Interval that never ends).
    buffer_max : int
        Messages kept while the broker is unreachable; more are dropped (and counted).
    max_pending : int
        While connected, publishing waits when this many messages are unacknowledged
        (back-pressure: a twin running faster than the broker goes at the broker's pace
        instead of piling up messages in memory).
    connect_timeout_s : float
        How long :meth:`open` waits for the first connection before it raises.
    auth : MqttAuth, optional
        Credentials and TLS files (completed by the URL's scheme and credentials).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        clean_session: bool = True,
        buffer_max: int = 100_000,
        max_inflight: int = 1000,
        max_pending: int = 20_000,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 30,
        connect_timeout_s: float = 10.0,
        auth: MqttAuth | None = None,
    ) -> None:
        address = parse_broker(url)
        self.url = address.url  # shown in messages: without the password
        self.host, self.port = address.host, address.port
        self.auth = (auth or MqttAuth()).for_url(address)
        self.stats = LinkStats(username=self.auth.username)
        self._refused = threading.Event()
        self.connect_timeout_s = connect_timeout_s
        self._connected = threading.Event()
        self._subscriptions: dict[str, int] = {}
        self._closing = False
        self._lock = threading.Lock()
        self._outbox: deque[tuple[str, bytes, int, bool]] = deque()
        self._resumed = False
        self._resume_requested = False
        self._handed = 0
        self._connected_at = 0.0
        # mid -> topic of the QoS 1/2 messages handed to paho and not yet acknowledged, and
        # refusals acknowledged before their mid was recorded; guarded by _mids_lock, which
        # is never held while calling paho (its callbacks run under paho's locks).
        self._mids_lock = threading.Lock()
        self._topic_of_mid: dict[int, str] = {}
        self._early_refusals: dict[int, str] = {}
        self._refused_at_pubrec: dict[int, str] = {}  # QoS 2: refused, PUBCOMP to come
        self.clean_session = clean_session
        client = _Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        client.on_pubrec_failure = self._on_pubrec_failure
        client.max_inflight_messages_set(max_inflight)
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        self.auth.apply(client)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        self.buffer_max = buffer_max
        self.max_pending = max_pending

    # --- paho callbacks (network thread) ------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self.stats.errors.append(str(reason_code))
            self._refused.set()
            return
        self.stats.connects += 1
        sock = client.socket()
        if sock is not None:  # small QoS 1 packets: no Nagle delay (~40 ms per round trip)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for topic, qos in self._subscriptions.items():
            client.subscribe(topic, qos)
        self._connected_at = time.monotonic()
        self._connected.set()
        if self.stats.connects > 1:
            log.warning("MQTT %s: reconnected to %s", client._client_id.decode(), self.url)
        # paho re-sends what was in flight right after this callback returns; what waits in
        # the outbox goes after it (once the first re-sent message is acknowledged), so order
        # is kept. Callbacks run under paho's locks: the resume itself happens in the
        # publishing thread, never here.
        if self._handed == self.stats.acked + self.stats.refused:
            self._resume_requested = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._connected.clear()
        self._resumed = False
        self._resume_requested = False
        self.stats.disconnects += 1
        if not self.stats.connects and not self._closing and not self._refused.is_set():
            self.stats.errors.append(
                f"closed before CONNACK: {reason_code}; with TLS, was a client certificate "
                "required or not accepted?"
            )
            self._refused.set()
        if self._closing or not self.stats.connects:
            return
        log.warning("MQTT %s: lost %s (%s)", client._client_id.decode(), self.url, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        # MQTT v5: a QoS 1 message the broker refused (ACL: 0x87 Not authorized) is
        # acknowledged with a failure reason code; "No matching subscribers" (0x10) is not
        # a failure. (QoS 0 messages are reported here, with success, once written.)
        with self._mids_lock:
            topic = self._topic_of_mid.pop(mid, None)
            reason = self._refused_at_pubrec.pop(mid, None)
            if reason is None and reason_code.is_failure:
                reason = str(reason_code)
            if reason is None:
                self.stats.acked += 1
            elif topic is None:  # acknowledged before _hand recorded its topic
                self._early_refusals[mid] = reason
            else:
                self._refuse(topic, reason)
        if not self._resumed:
            self._resume_requested = True

    def _on_pubrec_failure(self, mid: int, reason_code: ReasonCode) -> None:
        """A QoS 2 message refused in its PUBREC; counted when its flow ends (PUBCOMP)."""
        with self._mids_lock:
            self._refused_at_pubrec[mid] = str(reason_code)

    def _refuse(self, topic: str, reason: str) -> None:
        """Count (and the first time per topic, log) a message the broker refused."""
        self.stats.refused += 1
        self.stats.dropped += 1
        count = self.stats.refused_topics.get(topic, 0) + 1
        self.stats.refused_topics[topic] = count
        topics = len(self.stats.refused_topics)
        if count > 1 or topics > LOG_REFUSED_TOPICS:
            return
        who = f"user {self.auth.username!r}" if self.auth.username else "an anonymous client"
        more = (
            "; refusals on further topics are counted, not logged"
            if topics == LOG_REFUSED_TOPICS
            else ""
        )
        log.error(
            "MQTT %s: the broker %s refused a message on %s for %s (%s): check the broker's "
            "ACL and the topic prefix; further refusals on this topic are counted, not "
            "logged%s",
            self.client._client_id.decode(),
            self.url,
            topic,
            who,
            reason,
            more,
        )

    def _resume(self) -> None:
        """Hand the outbox to paho, in order, and publish directly from now on."""
        with self._lock:
            self._resume_requested = False
            while self._outbox and self.connected:
                topic, payload, qos, retain = self._outbox.popleft()
                self._hand(topic, payload, qos, retain)  # never QoS 0: not kept in the outbox
            self._resumed = self.connected

    def _maybe_resume(self) -> None:
        if self._resumed or not self.connected:
            return
        if self._resume_requested or time.monotonic() - self._connected_at > RESUME_AFTER_S:
            self._resume()

    def _hand(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Give a message to paho; False if it is lost.

        A QoS 0 message on a connection that just went is lost; paho keeps QoS 1/2
        messages for the reconnect.
        """
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if qos > 0:
            with self._mids_lock:
                early = self._early_refusals.pop(info.mid, None)
                if early is not None:
                    self._refuse(topic, early)
                else:
                    self._topic_of_mid[info.mid] = topic
        self._handed += 1
        return True

    # --- API ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._connected.is_set()

    def open(self) -> MqttLink:
        """Connect and start the network thread; raise if the broker is unreachable."""
        properties = None
        if not self.clean_session:  # MQTT v5: without an expiry the session ends at once
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        try:
            self.client.connect(
                self.host,
                self.port,
                keepalive=10,
                clean_start=self.clean_session,
                properties=properties,
            )
        except ssl.SSLError as exc:
            _close_sockets(exc)  # paho leaves the failed TLS socket open
            reason = getattr(exc, "verify_message", None) or exc.reason or exc
            raise ConnectionError(
                f"MQTT broker {self.url}: TLS handshake failed ({reason}); check ca_file "
                "(the CA that signed the broker's certificate) and the client certificate"
            ) from None
        except OSError as exc:
            raise ConnectionError(
                f"MQTT broker {self.url} unreachable: {exc.strerror or exc}"
            ) from None
        self.client.loop_start()
        deadline = time.monotonic() + self.connect_timeout_s
        while not self._connected.wait(0.05):
            if self._refused.is_set() or time.monotonic() > deadline:
                self.close(timeout_s=0.0)
                raise ConnectionError(self._refusal())
        return self

    def _refusal(self) -> str:
        """Why the broker did not accept this client (no password in it)."""
        if not self.stats.errors:
            return f"MQTT broker {self.url} did not accept us: no CONNACK"
        reason = self.stats.errors[0]
        hint = ""
        if "password" in reason.lower() or "authori" in reason.lower():
            who = f"user {self.auth.username!r}" if self.auth.username else "an anonymous client"
            hint = f" for {who}: check the username and password"
        return f"MQTT broker {self.url} refused the connection ({reason}){hint}"

    def subscribe(
        self, topic: str, callback: Callable[[mqtt.MQTTMessage], None], qos: int = 1
    ) -> None:
        """Subscribe (again after every reconnect) and route its messages to ``callback``."""

        def on_message(client, userdata, message) -> None:  # noqa: ANN001
            self.stats.received += 1
            callback(message)

        self.client.message_callback_add(topic, on_message)
        self._subscriptions[topic] = qos
        if self.connected:
            self.client.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        """Stop a subscription (also after reconnects)."""
        self.client.message_callback_remove(topic)
        self._subscriptions.pop(topic, None)
        if self.connected:
            self.client.unsubscribe(topic)

    def clear_retained(self, topic_filter: str, probe: str, timeout_s: float = 10.0) -> list[str]:
        """Delete every retained message under ``topic_filter``; return their topics.

        Subscribes to the filter, then to ``probe`` and publishes to it: the broker
        handles one client's packets in order, so the filter's retained messages arrive
        before the probe comes back. Each is then replaced by an empty retained message
        (which deletes it).

        Raises
        ------
        TimeoutError
            If the probe does not come back within ``timeout_s``.
        """
        found: list[str] = []
        back = threading.Event()
        self.subscribe(
            topic_filter, lambda m: found.append(m.topic) if m.retain and m.payload else None
        )
        self.subscribe(probe, lambda m: back.set())
        self.publish(probe, b"probe", qos=1)
        try:
            if not back.wait(timeout_s):
                raise TimeoutError(
                    f"{self.url}: no answer on {probe} within {timeout_s:g} s (may this "
                    f"login subscribe to {topic_filter} and {probe}? see the broker's ACL)"
                )
        finally:
            self.unsubscribe(topic_filter)
            self.unsubscribe(probe)
        for topic in found:
            self.publish(topic, b"", qos=1, retain=True)
        return found

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish one message, or keep it in the outbox while the broker is away.

        Returns False (and counts a drop) when the outbox is full, or for QoS 0 while
        disconnected. Never blocks.
        """
        self._maybe_resume()
        if self._resumed and self.pending >= self.max_pending:
            self._wait_for_acks()
        with self._lock:
            if self._resumed:
                if not self._hand(topic, payload, qos, retain):
                    self.stats.dropped += 1
                    return False
            elif qos == 0 or len(self._outbox) >= self.buffer_max:
                self.stats.dropped += 1
                return False
            else:
                self._outbox.append((topic, payload, qos, retain))
            self.stats.published += 1
        pending = self.pending
        if pending > self.stats.buffered_peak:
            self.stats.buffered_peak = pending
        return True

    def _wait_for_acks(self) -> None:
        """Back-pressure: the broker is connected but slower than we publish."""
        started = time.monotonic()
        while self.pending >= self.max_pending // 2 and self.connected:
            time.sleep(0.001)
        self.stats.backpressure_s += time.monotonic() - started

    @property
    def pending(self) -> int:
        """Messages accepted (outbox or in flight) the broker has not yet answered."""
        return self.stats.published - self.stats.acked - self.stats.refused

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued message is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            self._maybe_resume()
            time.sleep(0.01)
        return self.pending == 0

    def close(self, final: tuple[str, bytes] | None = None, timeout_s: float = 10.0) -> None:
        """Publish ``final`` (retained), flush, disconnect and stop the thread."""
        if final is not None and self.connected:
            self.publish(final[0], final[1], retain=True)
        self.flush(timeout_s)
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
