"""Schema of the ``ingest`` section: broker, login, topics, mapping, timing, bounds, storage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from adapters.influx.schema import InfluxSpec
from adapters.ingest.mapping import MappingError
from adapters.mqtt.schema import MqttLogin, TlsSpec
from twin.bounds import Fraction, bounded, whole
from twin.scenario import Strict

__all__ = ["ChannelSpec", "IngestSpec", "MappingRuleSpec"]

Topic = Annotated[str, Field(pattern=r"^[^\x00]+$", max_length=500)]
Voltage = Literal["line", "phase"]
Finite = bounded(-1e15, 1e15)


class ChannelSpec(Strict):
    """What a field channel is.

    The twin ``quantity``, the field ``unit`` it is sent in, ``voltage`` (``line`` or
    ``phase`` for a voltage), ``scale`` (after the unit conversion: ``-1``
    turns a meter's consumption into the twin's injection sign),
    ``sigma`` (the sensor's standard deviation, twin unit) and ``min``/``max`` (its
    plausible range in the twin unit, overriding the one from ratings).
    """

    quantity: Annotated[str, Field(min_length=1, max_length=100)]
    unit: str | None = None
    voltage: Voltage | None = None
    scale: Finite | None = None
    sigma: bounded(0.0, 1e15) | None = None
    min: Finite | None = None
    max: Finite | None = None


class MappingRuleSpec(Strict):
    """One mapping rule: a ``pattern`` on sensor keys and what its matches are.

    ``pattern`` has placeholders ``{asset}``, ``{quantity}`` (or ``{channel}``) and
    ``{n}``, ``{site}``, ``{gateway}``, each matching within one topic level, e.g.
    ``field/{asset}/{quantity}`` or ``field/{asset}/{quantity}-{n}``. ``quantities`` maps
    the matched channel to a :class:`ChannelSpec`; without it the channel is the twin
    quantity. ``asset``/``quantity`` name them for a pattern without the placeholder;
    ``unit``, ``voltage`` and ``scale`` apply to every channel that sets none.
    """

    pattern: Annotated[str, Field(min_length=1, max_length=500)]
    asset: str | None = None
    quantity: str | None = None
    unit: str | None = None
    voltage: Voltage | None = None
    scale: Finite | None = None
    quantities: dict[str, ChannelSpec] = {}

    @model_validator(mode="after")
    def _compiles(self) -> MappingRuleSpec:
        from adapters.ingest.mapping import Rule

        try:
            Rule.from_spec(self, "rule")
        except MappingError as exc:
            raise ValueError(exc.message) from None
        return self


class IngestSpec(MqttLogin):
    """Ingestion of a plant's sensors from MQTT (``adapters.ingest``).

    ``broker`` (``mqtt://host:port`` or ``mqtts://``; the login in ``username`` and
    ``password``/``password_env``/``password_file``, TLS files in ``tls``) and
    ``topics`` (wildcard filters) are subscribed at QoS ``qos`` under ``client_id``
    (default ``twin-ingest-<scenario name>``, the same for every run, so a persistent
    session, ``clean_session: false``, keeps what arrived while the twin was away).

    ``mapping`` (pattern rules) and ``mapping_csv`` (a CSV of ``topic, asset, quantity,
    unit, scale[, sigma, min, max, voltage]``) map sensor keys to twin elements and
    quantities (:mod:`adapters.ingest.mapping`).

    Timing: ``wall_start`` (epoch s) and ``speed`` (plant s per wall s) define the plant
    clock (default: the run's first step and 1/rt_factor). A value stamped more than
    ``clock_tolerance_s`` ahead of the plant clock, or more than ``clock_tolerance_s +
    max_delay_s`` behind it, is dropped as skewed (a ``ClockSkewWarning`` per sensor). A
    window closes ``late_window_s`` after its end; later values are stored but not given to
    the estimate.

    Bounds: payloads over ``max_payload_bytes`` and batches of more than
    ``max_batch_records`` are rejected unread; keys beyond ``max_sensors`` sensors are
    unknown (counted). Plausible ranges come from ratings times
    ``rating_margin`` (:mod:`adapters.ingest.limits`).

    Storage: raw values go to ``influx`` (default: ``outputs.influx``; none: not stored),
    handed over every ``flush_interval_s``, spooled in ``<run dir>/ingest-spool`` while
    the server is away. ``trace``: a Parquet file of (sensor, t, received_wall,
    stored_wall) per value. The ``ingest`` run check fails when a value was lost or more
    than ``max_unknown_share`` of the messages had no known sensor.
    """

    broker: str = "mqtt://127.0.0.1:1883"
    tls: TlsSpec | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    clean_session: bool = False
    qos: Literal[0, 1, 2] = 1
    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)] = ["field/#"]
    site: str | None = None
    mapping: Annotated[list[MappingRuleSpec], Field(max_length=1000)] = []
    mapping_csv: Path | None = None
    wall_start: bounded(0.0, 1e11) | None = None
    speed: bounded(0.0, 1e6, low_open=True) | None = None
    clock_tolerance_s: bounded(0.0, 86_400.0) = 2.0
    max_delay_s: bounded(0.0, 86_400.0) = 60.0
    late_window_s: bounded(0.0, 86_400.0) = 0.0
    max_payload_bytes: whole(64, 16_000_000) = 262_144
    max_batch_records: whole(1, 1_000_000) = 10_000
    max_sensors: whole(1, 10_000_000) = 100_000
    rating_margin: bounded(1.0, 100.0) = 1.5
    influx: InfluxSpec | None = None
    flush_interval_s: bounded(0.0, 60.0, low_open=True) = 0.2
    trace: Path | None = None
    max_unknown_share: Fraction = 0.01

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        from adapters.mqtt.auth import parse_broker

        address = parse_broker(value)
        if address.username or address.password:
            raise ValueError("put the login in username and password_env/password_file")
        return value

    @model_validator(mode="after")
    def _something_maps(self) -> IngestSpec:
        if not self.mapping and self.mapping_csv is None:
            raise ValueError("give mapping (patterns) or mapping_csv (a table), or both")
        return self
