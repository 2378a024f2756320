"""Scenario schema, loading and validation.

A scenario is a YAML file. :func:`load_scenario` reads it, applies ``--set``
overrides, validates it against the schema below and against the grid it names, and
returns a :class:`Scenario` whose assets are resolved (bus indices, loads taken from
the grid expanded). Every problem is reported at once, with the path of the field
(``assets.battery[0].e_kwh``) and what was expected.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import pvlib
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from models.base import Clock
from twin.bounds import (
    C_RATE_PER_H,
    DC_AC_RATIO,
    EV_CAPACITY_MAX_KWH,
    MAX_DESCRIPTION,
    MAX_DURATION_S,
    MAX_ENERGY_KWH,
    MAX_HORIZON_S,
    MAX_POWER_KW,
    MAX_TEXT,
    MAX_UNITS,
    MIN_ENERGY_KWH,
    PRICE_MAX_EUR_KWH,
    SEVERITY_RANGES,
    START_YEARS,
    AssetName,
    Efficiency,
    Fraction,
    OutputDir,
    PowerKw,
    Price,
    SafeName,
    bounded,
    whole,
)
from twin.errors import Problem, ScenarioError
from twin.inputs import parse_yaml, read_yaml
from twin.limits import run_size
from twin.units import parse_duration_s

__all__ = ["Scenario", "apply_overrides", "load_scenario", "validate_scenario"]

#: Asset kinds of a scenario, each a registered model whose units sit at a bus.
ASSET_KINDS = ("pv", "battery", "load", "ev")
#: The controllers a scenario may name.
CONTROLLERS = ("none", "rule", "mpc", "oracle", "rl", "schedule")
SAPM_TEMPERATURE_MODELS = tuple(pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"])


def _duration(value: str) -> str:
    parse_duration_s(value)  # raises with the accepted form
    return value


Duration = Annotated[str, AfterValidator(_duration)]
BusRef = whole(0, 10_000_000) | Annotated[str, Field(max_length=200)]


class Strict(BaseModel):
    """Base of every scenario section: unknown keys are errors; numbers finite; text short."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, allow_inf_nan=False, str_max_length=MAX_TEXT
    )


class Site(Strict):
    """Where the site is: position (degrees), altitude (m) and IANA time zone."""

    lat: bounded(-90.0, 90.0)
    lon: bounded(-180.0, 180.0)
    altitude: bounded(-500.0, 9000.0) = 0.0
    tz: Annotated[str, Field(max_length=64)]
    #: A weather file recorded farther away than this (km) is a validation problem.
    max_weather_distance_km: bounded(0.001, 40_100.0) = 100.0

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA time zone such as 'Europe/Berlin', got {value!r}"
            ) from None
        return value


class GridSpec(Strict):
    """The grid: ``source`` is a SimBench code, a pandapower network name or a JSON file."""

    source: str
    solver: Literal["fast", "pandapower"] = "fast"
    v_min_pu: bounded(0.5, 1.0) = 0.90
    v_max_pu: bounded(1.0, 1.5) = 1.10


class PVSpec(Strict):
    """A PV plant (kW ratings, angles in degrees, 180 = south)."""

    name: AssetName | None = None
    bus: BusRef
    p_dc_kw: PowerKw
    p_ac_kw: PowerKw | None = None
    tilt_deg: bounded(0.0, 90.0) = 30.0
    azimuth_deg: bounded(0.0, 360.0) = 180.0
    gamma_pdc: bounded(-0.02, 0.0) = -0.0037
    eta_inv_nom: Efficiency = 0.96
    losses_pct: bounded(0.0, 100.0, high_open=True) = 14.08
    albedo: Fraction = 0.25
    temperature_model: str = "open_rack_glass_polymer"

    @field_validator("temperature_model")
    @classmethod
    def _known_temperature_model(cls, value: str) -> str:
        if value not in SAPM_TEMPERATURE_MODELS:
            raise ValueError(f"expected one of {', '.join(SAPM_TEMPERATURE_MODELS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _inverter_default(self) -> PVSpec:
        if self.p_ac_kw is None:
            self.p_ac_kw = self.p_dc_kw / 1.1
        ratio = self.p_dc_kw / self.p_ac_kw
        if not DC_AC_RATIO[0] <= ratio <= DC_AC_RATIO[1]:
            raise ValueError(
                f"expected p_dc_kw / p_ac_kw (DC/AC ratio) within "
                f"{DC_AC_RATIO[0]}..{DC_AC_RATIO[1]}, "
                f"got {self.p_dc_kw:g} / {self.p_ac_kw:g} = {ratio:.3g}"
            )
        return self


class BatterySpec(Strict):
    """A battery: capacity (kWh), converter rating (kW), limits, thermal and ageing data."""

    name: AssetName | None = None
    bus: BusRef
    e_kwh: bounded(MIN_ENERGY_KWH, MAX_ENERGY_KWH)
    p_max_kw: PowerKw
    eta_ch: Efficiency = 0.95
    eta_dis: Efficiency = 0.95
    soc_min: Fraction = 0.1
    soc_max: Fraction = 0.9
    soc_init: Fraction = 0.5
    soh_init: bounded(0.0, 1.0, low_open=True) = 1.0
    t_init_c: bounded(-40.0, 80.0) = 25.0
    t_ambient_c: bounded(-50.0, 60.0) = 25.0
    r_th_k_per_kw: bounded(1e-3, 1e4) = 10.0
    c_th_kj_per_k: bounded(1e-2, 1e9) = 200.0
    cycle_life_efc: bounded(1.0, 1e6) = 6000.0
    calendar_life_years: bounded(0.1, 100.0) = 15.0
    soh_eol: bounded(0.0, 1.0, low_open=True, high_open=True) = 0.8
    t_derate_c: bounded(0.0, 150.0) = 45.0
    t_trip_c: bounded(0.0, 150.0) = 55.0

    @model_validator(mode="after")
    def _soc_window(self) -> BatterySpec:
        if not self.soc_min < self.soc_max:
            raise ValueError(f"expected soc_min < soc_max, got {self.soc_min} >= {self.soc_max}")
        if not self.soc_min <= self.soc_init <= self.soc_max:
            raise ValueError(
                f"expected soc_init within [soc_min, soc_max] = [{self.soc_min}, {self.soc_max}], "
                f"got {self.soc_init}"
            )
        c_rate = self.p_max_kw / self.e_kwh
        if not C_RATE_PER_H[0] <= c_rate <= C_RATE_PER_H[1]:
            raise ValueError(
                f"expected p_max_kw / e_kwh (C-rate) within {C_RATE_PER_H[0]}..{C_RATE_PER_H[1]}"
                f" per hour, got {self.p_max_kw:g} kW / {self.e_kwh:g} kWh = {c_rate:.3g}"
            )
        if not self.t_derate_c < self.t_trip_c:
            raise ValueError(
                f"expected t_derate_c < t_trip_c, got {self.t_derate_c} >= {self.t_trip_c}"
            )
        return self


class LoadSpec(Strict):
    """A load (kW, kvar consumed), or ``from_grid: true`` for all loads of the grid."""

    name: AssetName | None = None
    bus: BusRef | None = None
    from_grid: bool = False
    p_kw: bounded(0.0, MAX_POWER_KW) = 0.0
    q_kvar: bounded(-MAX_POWER_KW, MAX_POWER_KW) = 0.0
    profile: str | None = None

    @model_validator(mode="after")
    def _bus_or_grid(self) -> LoadSpec:
        if self.from_grid and self.bus is not None:
            raise ValueError(
                "a load with from_grid: true takes its buses from the grid; drop 'bus'"
            )
        if not self.from_grid and self.bus is None:
            raise ValueError("expected 'bus' (or from_grid: true)")
        return self


class DistSpec(Strict):
    """A normal distribution clipped to ``[min, max]`` (``std: 0`` for a constant)."""

    mean: bounded(-1e6, 1e6)
    std: bounded(0.0, 1e6) = 0.0
    min: bounded(-1e6, 1e6)
    max: bounded(-1e6, 1e6)

    @model_validator(mode="after")
    def _ordered(self) -> DistSpec:
        if not self.min <= self.mean <= self.max:
            raise ValueError(
                f"expected min <= mean <= max, got {self.min}, {self.mean}, {self.max}"
            )
        return self


class SocDistSpec(DistSpec):
    """A distribution of SoC values, all within 0..1."""

    @model_validator(mode="after")
    def _fraction(self) -> SocDistSpec:
        if self.min < 0.0 or self.max > 1.0:
            raise ValueError(f"expected SoC bounds within 0..1, got [{self.min}, {self.max}]")
        return self


class FleetSpec(Strict):
    """The EVs that come to a charging park (arrival profile and EV distributions)."""

    profile: str = "workplace"
    arrivals_per_day: bounded(0.0, 100_000.0) = 10.0
    capacity_kwh: DistSpec = DistSpec(mean=60.0, std=15.0, min=30.0, max=100.0)
    arrival_soc: SocDistSpec = SocDistSpec(mean=0.35, std=0.15, min=0.05, max=0.8)
    target_soc: SocDistSpec = SocDistSpec(mean=0.9, std=0.0, min=0.9, max=0.9)
    dwell_h: DistSpec | None = None

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        from models.ev import ARRIVAL_PROFILES

        if value not in ARRIVAL_PROFILES:
            close = difflib.get_close_matches(value, list(ARRIVAL_PROFILES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown arrival profile {value!r}; {hint}expected one of "
                f"{', '.join(ARRIVAL_PROFILES)}"
            )
        return value

    @model_validator(mode="after")
    def _positive(self) -> FleetSpec:
        if not 0.0 < self.capacity_kwh.min <= self.capacity_kwh.max <= EV_CAPACITY_MAX_KWH:
            raise ValueError(
                f"expected 0 < capacity_kwh.min <= capacity_kwh.max <= {EV_CAPACITY_MAX_KWH:g}"
                f" kWh, got {self.capacity_kwh.min:g} .. {self.capacity_kwh.max:g}"
            )
        if self.dwell_h is not None and not 0.0 <= self.dwell_h.min <= self.dwell_h.max <= 720:
            raise ValueError(
                f"expected 0 <= dwell_h.min <= dwell_h.max <= 720 h (30 days), got "
                f"{self.dwell_h.min:g} .. {self.dwell_h.max:g}"
            )
        return self


class EVSpec(Strict):
    """A charging park: ``chargers`` plugs of ``p_max_kw`` each at one bus, and its fleet."""

    name: AssetName | None = None
    bus: BusRef
    chargers: whole(1, 10_000)
    p_max_kw: bounded(0.0, 5_000.0, low_open=True) = 11.0
    efficiency: Efficiency = 0.92
    power_factor: bounded(0.0, 1.0, low_open=True) = 1.0
    fleet: FleetSpec = FleetSpec()


class Assets(Strict):
    """The site's assets, by kind."""

    pv: Annotated[list[PVSpec], Field(max_length=MAX_UNITS)] = []
    battery: Annotated[list[BatterySpec], Field(max_length=MAX_UNITS)] = []
    load: Annotated[list[LoadSpec], Field(max_length=MAX_UNITS)] = []
    ev: Annotated[list[EVSpec], Field(max_length=MAX_UNITS)] = []


class TouPeriod(Strict):
    """A time-of-use period in local time; ``end`` before ``start`` wraps midnight."""

    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")]
    import_eur_kwh: Price


class TariffSpec(Strict):
    """Import price (base and time-of-use periods), export price, or a price CSV."""

    import_eur_kwh: Price = 0.30
    export_eur_kwh: Price = 0.08
    periods: Annotated[list[TouPeriod], Field(max_length=96)] = []
    price_csv: str | None = None
    demand_charge_eur_kw: bounded(0.0, 10_000.0) = 0.0


class ControlSpec(Strict):
    """Controller options: site limits, planning horizon, forecaster, policy, terminal rule."""

    p_import_max_kw: PowerKw | None = None
    horizon: Duration = "24h"
    resolve_every: Duration | None = None
    forecaster: Literal["persistence", "regression", "perfect"] = "persistence"
    history_days: whole(2, 365) = 14
    degradation_eur_kwh: bounded(0.0, PRICE_MAX_EUR_KWH) = 0.0
    terminal_price_eur_kwh: Price | None = None
    policy: str | None = None
    schedule_csv: str | None = None

    @model_validator(mode="after")
    def _horizon_bounded(self) -> ControlSpec:
        horizon_s = parse_duration_s(self.horizon)
        if horizon_s > MAX_HORIZON_S:
            raise ValueError(
                f"expected horizon of at most {MAX_HORIZON_S // 86400}d, got {self.horizon}"
            )
        if self.resolve_every is not None and parse_duration_s(self.resolve_every) > horizon_s:
            raise ValueError(
                f"expected resolve_every <= horizon, got {self.resolve_every} > {self.horizon}"
            )
        return self


class InfluxSpec(Strict):
    """Write the run to InfluxDB as it runs (``adapters.influx``).

    ``api: v1`` uses the 1.x HTTP API (``db``, ``rp``, ``username``, ``password``);
    ``api: v2`` uses influxdb-client (``token``, ``org``, ``bucket``) for 2.x and 3.x.
    A secret is given as a value (``password``), the name of an environment variable
    (``password_env``) or a file holding it (``password_file``); likewise ``token``.
    Secrets never appear in ``run.json`` (``'**********'``), logs or messages; a
    ``user:password@`` in the URL is moved to ``username`` and ``password``. The
    database must exist unless ``create_database: true``. https is verified
    (``verify_tls``) against the system CAs or ``ca_file``. While the server cannot
    take the data, batches wait in ``spool_dir`` (default ``<run dir>/influx-spool``)
    and are replayed in order (``twin influx flush RUN_DIR`` replays what a run left).
    """

    # no login left in it (moved out below), none after the host (a '/' in a password
    # must be percent-encoded) and none as query parameters (1.x reads ?u=&p=)
    url: Annotated[
        str,
        Field(pattern=r"^https?://[^@/?#\s]+(/[^@?#\s]*)?$"),
    ]
    api: Literal["v1", "v2"] = "v1"
    db: str = "twin"
    rp: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: str | None = None
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: str | None = None
    org: str | None = None
    bucket: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 5000
    flush_interval_s: bounded(0.0, 3600.0, low_open=True) = 1.0
    gzip: bool = True
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    timeout_s: bounded(0.0, 600.0, low_open=True) = 10.0
    spool_dir: str | None = None
    create_database: bool = False
    verify_tls: bool = True
    ca_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_the_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        scheme, sep, rest = data["url"].partition("://")
        host, slash, path = rest.partition("/")
        if not sep or "@" not in host:
            return data
        userinfo, host = host.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        data = {**data, "url": f"{scheme}://{host}{slash}{path}"}
        data.setdefault("username", unquote(user) or None)
        if password:
            data.setdefault("password", unquote(password))
        return data

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> InfluxSpec:
        for name in ("password", "token"):
            given = [f for f in (name, f"{name}_env", f"{name}_file") if getattr(self, f)]
            if len(given) > 1:
                raise ValueError(f"give {name} one way, not {' and '.join(given)}")
        if self.api == "v2" and not (
            self.bucket and self.org and (self.token or self.token_env or self.token_file)
        ):
            raise ValueError("api v2 needs token (or token_env/token_file), org and bucket")
        return self


class FaultSpec(Strict):
    """One fault: what, where, when and how hard (``models.faults.FAULT_KINDS``).

    ``target``: an asset name (pv, battery, load faults), ``grid`` (the point of
    connection: voltage sag/spike, frequency event, grid outage), a line (``line_3``) or a
    measured quantity ``<asset>.<quantity>`` (sensor faults). ``start``: a duration after
    the scenario start (``6h``) or a tz-aware timestamp. ``duration``: default, to the
    end of the run. ``restart_delay`` (inverter trip) keeps the converter off after the
    window; ``mode`` (SoC misreport) is ``offset`` (severity added) or ``stuck``.
    """

    kind: str
    target: str
    start: str
    duration: Duration | None = None
    severity: bounded(-1000.0, 1000.0) = 1.0
    restart_delay: Duration | None = None
    mode: Literal["offset", "stuck"] = "offset"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        from models.faults import FAULT_KINDS

        if value not in FAULT_KINDS:
            close = difflib.get_close_matches(value, list(FAULT_KINDS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown fault kind {value!r}; {hint}known: {', '.join(FAULT_KINDS)}")
        return value

    @model_validator(mode="after")
    def _severity_inbounded(self) -> FaultSpec:
        low, high = SEVERITY_RANGES.get(self.kind, (-1000.0, 1000.0))
        if not low <= self.severity <= high:
            raise ValueError(
                f"expected severity of {self.kind} within {low:g}..{high:g}, got {self.severity:g}"
            )
        return self


class Outputs(Strict):
    """Where results go."""

    dir: OutputDir = "runs/{name}"
    influx: InfluxSpec | None = None
    max_memory_gb: bounded(0.0, 1024.0, low_open=True) = 4.0
    max_disk_gb: bounded(0.0, 10_000.0, low_open=True) = 10.0


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


class Scenario(Strict):
    """A complete, validated scenario."""

    name: SafeName
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""
    start: AwareDatetime
    duration: Duration
    step: Duration
    seed: whole(0, 2**32 - 1) = 0
    site: Site
    grid: GridSpec
    weather: str = "723170TYA.CSV"
    assets: Assets = Assets()
    tariff: TariffSpec = TariffSpec()
    controller: Literal[CONTROLLERS] = "none"
    control: ControlSpec = ControlSpec()
    outputs: Outputs = Outputs()
    mqtt: MqttSpec | None = None
    faults: Annotated[list[FaultSpec], Field(max_length=1000)] = []

    @field_validator("start")
    @classmethod
    def _start_year(cls, value: Any) -> Any:
        if not START_YEARS[0] <= value.year <= START_YEARS[1]:
            raise ValueError(
                f"expected a start in the years {START_YEARS[0]}..{START_YEARS[1]}, got {value}"
            )
        return value

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_shorthand(cls, value: Any) -> Any:
        return {"source": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _whole_steps(self) -> Scenario:
        duration_s, step_s = parse_duration_s(self.duration), parse_duration_s(self.step)
        if duration_s > MAX_DURATION_S:
            raise ValueError(
                f"expected a duration of at most {MAX_DURATION_S // 86400}d, got {self.duration}"
            )
        if step_s > duration_s:
            raise ValueError(f"expected step <= duration, got {self.step} > {self.duration}")
        if duration_s % step_s:
            raise ValueError(f"duration {self.duration} is not a whole number of steps {self.step}")
        return self

    @property
    def start_ts(self) -> pd.Timestamp:
        """Tz-aware start."""
        return pd.Timestamp(self.start)

    def clock(self) -> Clock:
        """The run's clock."""
        step_s = parse_duration_s(self.step)
        return Clock(self.start_ts, step_s, parse_duration_s(self.duration) // step_s)

    def units(self, kind: str) -> list[dict[str, Any]]:
        """Parameter dicts of the assets of ``kind`` (resolved scenario)."""
        return [spec.model_dump() for spec in getattr(self.assets, kind)]

    def fault_units(self) -> list[dict[str, Any]]:
        """The faults resolved for :class:`models.faults.FaultSchedule` (see _fault_problems)."""
        units, _ = _resolve_faults(self)
        return units

    def output_dir(self) -> Path:
        """Output directory with ``{name}`` filled in."""
        return Path(self.outputs.dir.format(name=self.name))


# --- problems reported with their field path ------------------------------------------------


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FIELD_NAMES:
            out += f".{part}" if out else str(part)
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _all_fields(model: type[BaseModel], seen: set[str]) -> set[str]:
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for sub in _models_in(field.annotation):
            if sub.__name__ not in seen:
                seen.add(sub.__name__)
                names |= _all_fields(sub, seen)
    return names


_FIELD_NAMES = _all_fields(Scenario, set())


def _unknown_keys(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[Problem]:
    if not isinstance(data, dict):
        return []
    problems = []
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            name = _short(str(key), quote=False)
            close = difflib.get_close_matches(str(key)[:100], list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                Problem(
                    f"{_path(loc)}.{name}" if loc else name,
                    f"unknown key {_short(key)}{hint} (expected one of: {', '.join(fields)})",
                )
            )
            continue
        annotation = fields[key].annotation
        subs = _models_in(annotation)
        if not subs:
            continue
        origin = typing.get_origin(annotation)
        is_list = origin is list or any(
            typing.get_origin(a) is list for a in typing.get_args(annotation)
        )
        if is_list and isinstance(value, list):
            for i, item in enumerate(value):
                problems += _unknown_keys(subs[0], item, (*loc, key, i))
        else:
            problems += _unknown_keys(subs[0], value, (*loc, key))
    return problems


#: Fields whose values an error message must not repeat.
#: Fields whose value may hold a secret (a URL may carry ``user:password@``): an error
#: about them never echoes the value.
SECRET_FIELDS = frozenset({"password", "token", "url", "broker"})


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("missing",):
        return "required field is missing"
    value = error.get("input")
    if any(str(part) in SECRET_FIELDS for part in error["loc"]):
        return message  # never echo a secret
    if (
        error["type"] not in ("model_type", "dict_type")
        and not isinstance(value, dict | list)
        and "got " not in message
    ):
        message += f" (got {_short(value)})"
    return message


def _short(value: Any, limit: int = 80, *, quote: bool = True) -> str:
    """``repr`` (or ``str``) of a value, cut to ``limit`` characters (it may be huge)."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


def _schema_problems(raw: dict[str, Any]) -> tuple[Scenario | None, list[Problem]]:
    problems = _unknown_keys(Scenario, raw, ())
    try:
        scenario = Scenario.model_validate(_drop_unknown(Scenario, raw))
    except ValidationError as exc:
        for error in exc.errors():
            problem = Problem(_path(error["loc"]), _describe(error))
            if problem not in problems:
                problems.append(problem)
        return None, problems
    return (None if problems else scenario), problems


def _drop_unknown(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key not in model.model_fields:
            continue
        subs = _models_in(model.model_fields[key].annotation)
        if subs and isinstance(value, list):
            out[key] = [_drop_unknown(subs[0], v) for v in value]
        elif subs:
            out[key] = _drop_unknown(subs[0], value)
        else:
            out[key] = value
    return out


# --- checks against the grid, the weather and profile data -----------------------------------


def _resolve(scenario: Scenario) -> tuple[Scenario, list[Problem]]:
    from models.gridnet import GridSourceError, bus_index, load_net, unsupported_elements
    from models.profiles import simbench_profile_table
    from twin.weather_checks import weather_problems

    problems: list[Problem] = weather_problems(scenario)
    try:
        net = load_net(scenario.grid.source)
    except GridSourceError as exc:
        return scenario, [*problems, Problem("grid.source", str(exc))]
    problems += [Problem("grid.source", problem) for problem in unsupported_elements(net)]

    data = scenario.model_dump(mode="json")
    assets = data["assets"]
    loads = []
    for i, load in enumerate(assets["load"]):
        if not load["from_grid"]:
            loads.append(load)
            continue
        # the grid's loads as pandapower would run them: in service, times their scaling
        for idx, row in net.load[net.load["in_service"].astype(bool)].iterrows():
            scaling = float(row.get("scaling", 1.0))
            loads.append(
                {
                    "name": f"load_{idx}",
                    "bus": int(row["bus"]),
                    "from_grid": False,
                    "p_kw": float(row["p_mw"]) * scaling * 1000.0,
                    "q_kvar": float(row["q_mvar"]) * scaling * 1000.0,
                    "profile": row.get("profile") if isinstance(row.get("profile"), str) else None,
                }
            )
        if net.load.empty:
            problems.append(Problem(f"assets.load[{i}].from_grid", "the grid has no loads"))
    assets["load"] = loads

    profiles = None
    names: dict[str, str] = {}
    for kind in ASSET_KINDS:
        for i, unit in enumerate(assets[kind]):
            where = f"assets.{kind}[{i}]"
            unit["name"] = unit["name"] or f"{kind}_{i}"
            if unit["name"] in names:
                problems.append(
                    Problem(
                        f"{where}.name",
                        f"name {unit['name']!r} already used by {names[unit['name']]}",
                    )
                )
            names[unit["name"]] = where
            try:
                unit["bus"] = bus_index(net, unit["bus"])
            except KeyError as exc:
                problems.append(
                    Problem(f"{where}.bus", f"{exc.args[0]} of grid {scenario.grid.source!r}")
                )
            profile = unit.get("profile")
            if kind == "load" and profile and not profile.lower().endswith(".csv"):
                if profiles is None:
                    profiles = simbench_profile_table(scenario.grid.source)
                known = sorted({c.rsplit("_", 1)[0] for c in profiles.columns})
                if profile not in known:
                    close = difflib.get_close_matches(profile, known, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    problems.append(
                        Problem(
                            f"{where}.profile",
                            f"unknown SimBench profile {profile!r}; {hint}"
                            f"known: {', '.join(known)}",
                        )
                    )
            elif kind == "load" and profile and not Path(profile).is_file():
                problems.append(Problem(f"{where}.profile", f"profile file {profile!r} not found"))
    if scenario.tariff.price_csv and not Path(scenario.tariff.price_csv).is_file():
        problems.append(
            Problem("tariff.price_csv", f"file {scenario.tariff.price_csv!r} not found")
        )
    if scenario.controller == "rl" and not scenario.control.policy:
        problems.append(Problem("control.policy", "controller 'rl' needs a trained policy file"))
    elif scenario.control.policy and not Path(scenario.control.policy).is_file():
        problems.append(Problem("control.policy", f"file {scenario.control.policy!r} not found"))
    if scenario.controller == "schedule" and not scenario.control.schedule_csv:
        problems.append(Problem("control.schedule_csv", "controller 'schedule' needs a CSV"))
    elif scenario.control.schedule_csv and not Path(scenario.control.schedule_csv).is_file():
        problems.append(
            Problem("control.schedule_csv", f"file {scenario.control.schedule_csv!r} not found")
        )
    problems += _series_file_problems(scenario, assets)
    if scenario.controller in ("mpc", "oracle", "rl", "schedule") and not assets["battery"]:
        problems.append(
            Problem(
                "controller",
                f"controller {scenario.controller!r} dispatches batteries: "
                "add one under assets.battery",
            )
        )
    elif scenario.controller != "none" and not (assets["battery"] or assets["ev"]):
        problems.append(
            Problem(
                "controller",
                f"controller {scenario.controller!r} needs a battery or an EV park to dispatch",
            )
        )
    problems += _device_problems(scenario, assets)
    if scenario.outputs.influx is not None:
        data["outputs"]["influx"] = scenario.outputs.influx  # its secrets, not '*****'
    if scenario.mqtt is not None:  # as validated: a JSON dump masks its SecretStr password
        data["mqtt"] = scenario.mqtt
    resolved = Scenario.model_validate(data)
    problems += _resolve_faults(resolved)[1]
    problems += _size_problems(resolved, len(net.bus), len(net.line), len(net.trafo))
    return resolved, problems


def _size_problems(scenario: Scenario, n_buses: int, n_lines: int, n_trafos: int) -> list[Problem]:
    """Refuse a run whose results would not fit the memory and disk limits of ``outputs``."""
    size = run_size(scenario, n_buses, n_lines, n_trafos)
    problems = []
    for need, limit, key, what in (
        (size.memory_bytes, scenario.outputs.max_memory_gb, "max_memory_gb", "memory"),
        (size.disk_bytes, scenario.outputs.max_disk_gb, "max_disk_gb", "disk"),
    ):
        if need > limit * 1e9:
            problems.append(
                Problem(
                    "duration",
                    f"{size.steps:,} steps x about {size.series:,} series = {size.values:,} "
                    f"values need about {need / 1e9:.1f} GB of {what}, above the limit "
                    f"outputs.{key} = {limit:g} GB; shorten the duration, lengthen the step, "
                    f"or raise the limit (--set outputs.{key}=...)",
                )
            )
    return problems


def _series_file_problems(scenario: Scenario, assets: dict[str, list[dict]]) -> list[Problem]:
    """Read every CSV time series as the run will: gaps, bad cells and short files.

    Uses :func:`models.profiles.csv_series_means` with the scenario's clock, so a file
    that passes validation is a file the run can use (and the reverse).
    """
    from models.load import PROFILE_LIMITS
    from models.profiles import MissingColumnError, SeriesFileError, csv_series_means
    from models.tariff import PRICE_LIMITS

    clock = scenario.clock()
    # path, column, field path, required, value limits: as the models read them
    wanted: list[tuple[str, str, str, bool, tuple[float, float] | None]] = []
    for i, unit in enumerate(assets["load"]):
        profile = unit.get("profile")
        if profile and str(profile).lower().endswith(".csv") and Path(profile).is_file():
            wanted += [(profile, "p_pu", f"assets.load[{i}].profile", True, PROFILE_LIMITS)]
            wanted += [(profile, "q_pu", f"assets.load[{i}].profile", False, PROFILE_LIMITS)]
    price_csv = scenario.tariff.price_csv
    if price_csv and Path(price_csv).is_file():
        wanted += [(price_csv, "import_eur_kwh", "tariff.price_csv", True, PRICE_LIMITS)]
        wanted += [(price_csv, "export_eur_kwh", "tariff.price_csv", False, PRICE_LIMITS)]
    schedule = scenario.control.schedule_csv
    if scenario.controller == "schedule" and schedule and Path(schedule).is_file():
        wanted += [
            (schedule, u["name"], "control.schedule_csv", True, None) for u in assets["battery"]
        ]
    problems = []
    for path, column, where, required, limits in wanted:
        try:
            csv_series_means(path, column, clock, limits)
        except MissingColumnError as exc:
            if required:
                problems.append(Problem(where, str(exc)))
        except SeriesFileError as exc:
            problems.append(Problem(where, str(exc)))
    return list(dict.fromkeys(problems))  # a file unreadable for two columns: once


def _fault_start_s(scenario: Scenario, text: str) -> int:
    """Seconds after the scenario start: a duration (``6h``) or a tz-aware timestamp."""
    try:
        return parse_duration_s(text)
    except ValueError:
        pass
    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise ValueError(
            f"expected a duration after the start (6h) or a timestamp: {exc}"
        ) from None
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return int((ts - scenario.start_ts).total_seconds())


def _resolve_faults(scenario: Scenario) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Fault units (start/end seconds, modifier element) and every problem with them."""
    from models.faults import FAULT_KINDS
    from models.gridnet import load_net
    from twin.registry import get_model

    if not scenario.faults:
        return [], []
    kind_of = {u["name"]: k for k in ASSET_KINDS for u in scenario.units(k)}
    end_of_run = parse_duration_s(scenario.duration)
    step_s = parse_duration_s(scenario.step)
    lines = None
    units: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, fault in enumerate(scenario.faults):
        where = f"faults[{i}]"
        spec = FAULT_KINDS[fault.kind]
        target = fault.target
        if "sensor" in spec.targets:
            asset, _, quantity = target.partition(".")
            if asset not in kind_of or not quantity:
                problems.append(
                    Problem(
                        f"{where}.target",
                        f"expected <asset>.<quantity> of a sensed asset, got {target!r}",
                    )
                )
                continue
            cls = get_model(kind_of[asset])
            # quantities of the asset itself, not of its parts (an EV park's chargers)
            outputs = [q for q, port in cls.outputs.items() if (port.group or cls.kind) == cls.kind]
            if quantity not in outputs:
                problems.append(
                    Problem(
                        f"{where}.target",
                        f"{kind_of[asset]} {asset!r} has no quantity {quantity!r}; "
                        f"expected one of {', '.join(outputs)}",
                    )
                )
                continue
            modifier = f"{target}:{spec.modifier}"
        elif fault.kind == "soc_misreport":
            if kind_of.get(target) != "battery":
                problems.append(
                    Problem(f"{where}.target", f"{target!r} is not a battery of the scenario")
                )
                continue
            modifier = f"{target}.soc:{'stuck' if fault.mode == 'stuck' else 'offset'}"
        elif spec.targets == ("grid",):
            if target not in ("grid", "poc"):
                problems.append(
                    Problem(
                        f"{where}.target",
                        f"{fault.kind} acts on the point of connection: target 'grid'",
                    )
                )
                continue
            modifier = f"poc:{spec.modifier}"
        elif spec.targets == ("line",):
            if lines is None:
                lines = [f"line_{i}" for i in load_net(scenario.grid.source).line.index]
            if target not in lines:
                close = difflib.get_close_matches(target, lines, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(Problem(f"{where}.target", f"no line {target!r} in the grid{hint}"))
                continue
            modifier = f"{target}:{spec.modifier}"
        else:
            kind = kind_of.get(target)
            if kind is None:
                close = difflib.get_close_matches(target, list(kind_of), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(Problem(f"{where}.target", f"no asset named {target!r}{hint}"))
                continue
            if kind not in spec.targets:
                problems.append(
                    Problem(
                        f"{where}.kind",
                        f"{fault.kind} does not apply to {kind} {target!r}; "
                        f"it targets {', '.join(spec.targets)}",
                    )
                )
                continue
            modifier = f"{target}:{spec.modifier}"
        if fault.restart_delay is not None and fault.kind != "inverter_trip":
            problems.append(
                Problem(f"{where}.restart_delay", "only inverter_trip has a restart delay")
            )
        if fault.mode != "offset" and fault.kind != "soc_misreport":
            problems.append(Problem(f"{where}.mode", "only soc_misreport has a mode"))
        try:
            start_s = _fault_start_s(scenario, fault.start)
        except ValueError as exc:
            problems.append(Problem(f"{where}.start", str(exc)))
            continue
        if not 0 <= start_s < end_of_run:
            problems.append(
                Problem(
                    f"{where}.start",
                    f"{fault.start!r} is outside the run (0 .. {scenario.duration} after "
                    f"{scenario.start_ts.isoformat()})",
                )
            )
            continue
        end_s = end_of_run if fault.duration is None else start_s + parse_duration_s(fault.duration)
        if fault.kind == "capacity_fade":
            end_s = end_of_run  # a fade is permanent
        if end_s > end_of_run:
            problems.append(
                Problem(
                    f"{where}.duration", f"the fault would end after the run ({scenario.duration})"
                )
            )
            continue
        if fault.restart_delay is not None:
            end_s = min(end_s + parse_duration_s(fault.restart_delay), end_of_run)
        # whole steps: a fault acts on every step that starts inside its window
        units.append(
            {
                "name": f"f{i}_{fault.kind}",
                "kind": fault.kind,
                "target": target,
                "modifier": modifier,
                "start_s": start_s,
                "end_s": max(end_s, start_s + step_s) if end_s > start_s else end_s,
                "severity": fault.severity,
                "mode": fault.mode,
            }
        )
    return units, problems


def _device_problems(scenario: Scenario, assets: dict[str, list[dict]]) -> list[Problem]:
    """Devices must name an asset of a kind they can replace, and outputs of its model."""
    from twin.registry import get_model

    if scenario.mqtt is None:
        return []
    problems = []
    kind_of = {unit["name"]: kind for kind in ASSET_KINDS for unit in assets[kind]}
    seen: set[str] = set()
    for i, device in enumerate(scenario.mqtt.devices):
        where = f"mqtt.devices[{i}]"
        kind = kind_of.get(device.asset)
        if kind is None:
            close = difflib.get_close_matches(device.asset, list(kind_of), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(f"{where}.asset", f"no asset named {device.asset!r}{hint}"))
            continue
        if device.asset in seen:
            problems.append(Problem(f"{where}.asset", f"{device.asset!r} has two devices"))
        seen.add(device.asset)
        if kind not in DEVICE_KINDS:
            problems.append(
                Problem(
                    f"{where}.asset",
                    f"{device.asset!r} is a {kind}; devices replace {', '.join(DEVICE_KINDS)}",
                )
            )
            continue
        outputs = get_model(kind).outputs
        for j, quantity in enumerate(device.measure):
            if quantity not in outputs:
                problems.append(
                    Problem(
                        f"{where}.measure[{j}]",
                        f"{kind} has no output {quantity!r}; expected one of {', '.join(outputs)}",
                    )
                )
        if device.mode == "hil":
            if kind != "battery":
                problems.append(Problem(f"{where}.mode", "hil needs a battery (setpoints)"))
            elif scenario.controller == "none":
                problems.append(
                    Problem(f"{where}.mode", "hil needs a controller to send setpoints")
                )
        if device.credentials is not None and device.emulate is None:
            problems.append(
                Problem(f"{where}.credentials", "the emulated device's login: needs emulate")
            )
        if device.emulate is not None:
            from adapters.mqtt.emulator import battery_parameters, field_battery_unit

            known = battery_parameters()

            if kind != "battery":
                problems.append(Problem(f"{where}.emulate", "only batteries can be emulated"))
            unknown = sorted(set(device.emulate) - set(known))
            for key in unknown:
                problems.append(
                    Problem(
                        f"{where}.emulate.{key}",
                        f"unknown battery parameter; known: {', '.join(known)}",
                    )
                )
            if not unknown:
                try:  # the bounds of the battery schema, as `twin device` applies them
                    field_battery_unit(device.asset, device.emulate)
                except ValueError as exc:
                    problems.append(Problem(f"{where}.emulate", str(exc)))
    return problems


def validate_scenario(raw: Any, source: str = "scenario") -> Scenario:
    """Validate a raw scenario mapping and resolve it against its grid.

    Raises
    ------
    ScenarioError
        Listing every problem with its field path.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of fields, got {type(raw).__name__}")], source
        )
    scenario, problems = _schema_problems(raw)
    if scenario is None:
        raise ScenarioError(problems, source)
    resolved, problems = _resolve(scenario)
    if problems:
        raise ScenarioError(problems, source)
    return resolved


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``path=value`` overrides (``assets.battery[0].e_kwh=20``) to a raw scenario.

    Values are parsed as YAML (numbers, booleans, lists). Missing intermediate keys are
    created; list indices must exist.

    Raises
    ------
    ScenarioError
        For a malformed override or an index that does not exist.
    """
    import re

    token = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
    for item in overrides:
        if "=" not in item:
            raise ScenarioError([Problem(item, "expected --set path=value")], "--set")
        path, text = item.split("=", 1)
        parts: list[str | int] = [
            m.group(1) if m.group(1) is not None else int(m.group(2)) for m in token.finditer(path)
        ]
        if not parts:
            raise ScenarioError([Problem(path, "empty path in --set")], "--set")
        node: Any = raw
        for here, nxt in zip(parts, parts[1:], strict=False):
            try:
                if isinstance(here, int):
                    node = node[here]
                else:
                    node = node.setdefault(here, [] if isinstance(nxt, int) else {})
            except (IndexError, TypeError, AttributeError):
                raise ScenarioError(
                    [Problem(path, f"no element {here!r} to set")], "--set"
                ) from None
        value = parse_yaml(text, "--set", path)
        try:
            node[parts[-1]] = value
        except (IndexError, TypeError):
            raise ScenarioError([Problem(path, f"cannot set {parts[-1]!r}")], "--set") from None
    return raw


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override, validate and resolve a scenario file.

    Raises
    ------
    ScenarioError
        For a missing or unparsable file and for every invalid field.
    """
    path = Path(path)
    raw = read_yaml(path, "scenario")
    if isinstance(raw, dict):
        if isinstance(raw.get("grid"), str):  # shorthand, so that --set grid.solver=... works
            raw["grid"] = {"source": raw["grid"]}
        raw = apply_overrides(raw, overrides or [])
    return validate_scenario(raw, str(path))
