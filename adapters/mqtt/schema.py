"""Schema of the ``mqtt`` section: broker, login, TLS, telemetry and devices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from twin.bounds import (
    MAX_UNITS,
    Fraction,
    bounded,
    whole,
)
from twin.scenario import Duration, Strict

__all__ = ["DEVICE_KINDS", "DeviceSpec", "MqttLogin", "MqttSpec", "TlsSpec"]

DEVICE_KINDS = ("battery", "pv", "load")
TopicTemplate = Annotated[str, Field(pattern=r"^[^#+\x00]*\{quantity\}[^#+\x00]*$", max_length=200)]


class MqttLogin(Strict):
    """A login to the broker: a username and its password.

    The password is given at most one way: ``password`` (kept secret: ``**********`` in
    ``run.json``), ``password_env`` (the name of an environment variable) or
    ``password_file`` (a file whose first line it is); the last two are read when the
    run starts.
    """

    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> MqttLogin:
        given = [n for n in ("password", "password_env", "password_file") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give the password one way, not {' and '.join(given)}")
        if given and not self.username:
            raise ValueError(f"{given[0]} needs a username")
        return self


class TlsSpec(Strict):
    """TLS to the broker.

    ``ca_file``: the CA that signed the broker's certificate (default: the system's CAs);
    ``cert_file`` and ``key_file``: the client's certificate, for a broker that asks.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSpec:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class DeviceSpec(Strict):
    """A real (or emulated) device that replaces part of one asset's model over MQTT.

    ``hybrid``: the listed quantities come from the device's topics instead of the
    model. ``hil``: in addition, the controller's setpoints for the asset go out to the
    device, whose response comes back in the same step (lock-step, ``timeout_s``).

    ``timeout_s``: wall seconds to wait per step for values stamped with the step's time
    (default 2 for ``hil``, 0 for ``hybrid``: take the latest). ``stale_after``: oldest
    measured value still used (default: this step's answer for ``hil``, one step for
    ``hybrid``); older, the asset falls back to its model. ``emulate``: start
    ``twin device`` with these battery parameters for the run, logged in as
    ``credentials`` (default: the twin's own login).

    ``max_fallback``: largest share of steps that may fall back to the model before the
    run fails its ``mqtt_device_fallback`` check. ``clock_tolerance_s``: how far a
    value's ``ts`` may be from a step's time and still belong to it (a HIL answer that
    echoes the setpoint's ``seq`` needs no clock). ``max_payload_bytes``: larger
    payloads are rejected unread. See the device contract in :mod:`adapters.mqtt.bridge`.
    """

    asset: str
    mode: Literal["hybrid", "hil"] = "hybrid"
    measure: Annotated[list[str], Field(min_length=1)] = ["p_kw"]
    topic: TopicTemplate = "field/{site}/{asset}/{quantity}"
    setpoint_topic: TopicTemplate = "field/{site}/{asset}/set/{quantity}"
    timeout_s: bounded(0.0, 600.0) | None = None
    stale_after: Duration | None = None
    emulate: dict[str, float] | None = None
    credentials: MqttLogin | None = None
    max_fallback: Fraction = 0.05
    clock_tolerance_s: bounded(0.0, 86_400.0) = 1.0
    max_payload_bytes: Annotated[int, Field(ge=64, le=1_000_000)] = 4096


class MqttSpec(MqttLogin):
    """The MQTT bridge: telemetry out, devices in.

    ``broker`` is ``mqtt://host:port`` or, with TLS, ``mqtts://host:port`` (``tls``
    names the CA and client certificate). The login (``username`` and ``password``,
    ``password_env`` or ``password_file``, see :class:`MqttLogin`) may also be written
    in the URL (``mqtt://user:pw@host``): it is moved out of it, so the password never
    appears in ``run.json`` or a log.

    ``publish`` holds patterns on ``kind/asset/quantity``, e.g. ``battery/*/soc``,
    ``bus/*/v_pu``, ``controller/*/p_set_kw``; ``*`` publishes everything.
    ``max_dropped``: messages the twin may fail to deliver (dropped from a full buffer
    or unacknowledged at the end) before the run fails its ``mqtt_delivery`` check.
    """

    broker: str = "mqtt://127.0.0.1:1883"
    prefix: Annotated[str, Field(pattern=r"^[^#+\x00]+$", max_length=200)] = "twin"
    client_id: str | None = None
    qos: Literal[0, 1, 2] = 1
    publish: Annotated[
        list[Annotated[str, Field(pattern=r"^[^\x00]+$", max_length=200)]], Field(max_length=1000)
    ] = ["*"]
    bundle: Literal["auto", "never", "always"] = "auto"
    buffer_max: whole(1, 10_000_000) = 100_000
    max_dropped: whole(0, 10**12) = 0
    residual_window: Duration = "1h"
    tls: TlsSpec | None = None
    devices: Annotated[list[DeviceSpec], Field(max_length=MAX_UNITS)] = []

    @model_validator(mode="before")
    @classmethod
    def _login_from_url(cls, data: Any) -> Any:
        """``mqtt://user:pw@host`` → ``broker: mqtt://host``, ``username``, ``password``."""
        if not isinstance(data, dict) or not isinstance(data.get("broker"), str):
            return data
        from adapters.mqtt.auth import parse_broker

        try:
            address = parse_broker(data["broker"])
        except ValueError:
            return data  # reported by the field validator
        if address.username is None and address.password is None:
            return data
        data = {
            **data,
            "broker": f"{'mqtts' if address.tls else 'mqtt'}://{address.host}:{address.port}",
        }
        for key, value in (("username", address.username), ("password", address.password)):
            if value is None:
                continue
            if data.get(key) not in (None, value):
                raise ValueError(f"{key} given both in the broker URL and as {key}")
            data[key] = value
        return data

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        from adapters.mqtt.auth import parse_broker

        parse_broker(value)
        return value

    @property
    def uses_tls(self) -> bool:
        """Whether the link speaks TLS (an ``mqtts://`` URL or a ``tls`` section)."""
        return self.tls is not None or self.broker.startswith(("mqtts://", "ssl://"))
