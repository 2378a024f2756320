"""An emulated field device: a battery with its own parameters, speaking MQTT.

``twin device`` runs it as a separate process so hardware in the loop can be shown and
tested without hardware. It subscribes to its setpoint topic; for every setpoint
(``{"ts", "value", "dt_s", ...}``, power in kW, > 0 discharge) it steps its own
:class:`models.battery.Battery` over ``dt_s`` and answers with its measured ``p_kw``,
``soc`` and ``t_c`` on its measurement topics, stamped with the setpoint's ``ts``.
Its parameters (capacity, efficiencies, limits) may differ from the twin's model of it:
that mismatch is what the twin's residuals reveal.

For robustness demonstrations it can go silent after a number of answers
(``silent_after``), lose every ``miss_every``-th answer (intermittent misses: it still
acts on the setpoint), send a malformed payload every ``garbage_every`` answers, and
stamp its answers with its own clock (``own_clock``: the wall clock; ``clock_skew_s``:
offset added to the stamp) with or without echoing the setpoint's ``seq``
(``echo_seq``), which is what the device contract of :mod:`adapters.mqtt.bridge` asks.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from adapters.mqtt.auth import MqttAuth
from adapters.mqtt.link import MqttLink
from adapters.mqtt.topics import MalformedPayload, decode_measurement, format_ts
from models.base import Clock
from models.battery import Battery

__all__ = [
    "FIELD_RATING",
    "FieldBattery",
    "FieldBatteryConfig",
    "battery_parameters",
    "field_battery_unit",
]

log = logging.getLogger(__name__)

#: Rating of the emulated battery where the command line gives none; every other
#: parameter defaults as in a scenario (``twin.scenario.BatterySpec``).
FIELD_RATING = {"e_kwh": 60.0, "p_max_kw": 20.0}


def field_battery_unit(asset: str, params: dict[str, float]) -> dict[str, Any]:
    """The emulated battery's parameters, checked by the scenario's battery schema.

    Raises
    ------
    ValueError
        Naming each bad or unknown parameter and what was expected.
    """
    from pydantic import ValidationError

    from twin.assets.schema import BatterySpec

    try:
        spec = BatterySpec(name=asset, bus=0, **{**FIELD_RATING, **params})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'battery'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"emulated battery {asset!r}: {problems}") from None
    return spec.model_dump()


def battery_parameters() -> list[str]:
    """Names of the parameters an emulated battery takes."""
    from twin.assets.schema import BatterySpec

    return [name for name in BatterySpec.model_fields if name not in ("name", "bus")]


MEASURED = ("p_kw", "soc", "t_c")


@dataclass
class FieldBatteryConfig:
    """Where the emulated battery listens and answers, and how it misbehaves."""

    broker: str
    site: str
    asset: str
    params: dict[str, float] = field(default_factory=dict)
    setpoint_topic: str = "field/{site}/{asset}/set/{quantity}"
    topic: str = "field/{site}/{asset}/{quantity}"
    client_id: str | None = None
    silent_after: int | None = None
    garbage_every: int | None = None
    miss_every: int | None = None
    own_clock: bool = False
    clock_skew_s: float = 0.0
    echo_seq: bool = True
    auth: MqttAuth | None = None


class FieldBattery:
    """The emulated battery; :meth:`serve` runs it until :meth:`stop`."""

    def __init__(self, config: FieldBatteryConfig) -> None:
        self.config = config
        unit = field_battery_unit(config.asset, config.params)
        clock = Clock(pd.Timestamp("2000-01-01", tz="UTC"), 1, 1)
        self.battery = Battery([unit], clock)
        names = {"site": config.site, "asset": config.asset}
        self.setpoint_topic = config.setpoint_topic.format(**names, quantity="p_set_kw")
        self.topics = {q: config.topic.format(**names, quantity=q) for q in MEASURED}
        self.answers = 0
        self.missed = 0
        self.malformed = 0
        self._stopped = threading.Event()
        self.link = MqttLink(
            config.broker,
            config.client_id or f"twin-device-{config.site}-{config.asset}",
            auth=config.auth,
        )
        self.link.subscribe(self.setpoint_topic, self._on_setpoint)

    def _on_setpoint(self, message: Any) -> None:
        try:
            setpoint = decode_measurement(message.payload)
            dt_s = int(setpoint.extra.get("dt_s", 0))
            if dt_s <= 0:
                raise MalformedPayload("setpoint without a positive 'dt_s'")
        except (MalformedPayload, TypeError, ValueError) as exc:
            self.malformed += 1
            log.warning(
                "device %s: malformed setpoint on %s: %s", self.config.asset, message.topic, exc
            )
            return
        if self.config.silent_after is not None and self.answers >= self.config.silent_after:
            return
        now = setpoint.ts or pd.Timestamp.now(tz="UTC")
        out = self.battery.step(now, dt_s, {"p_set_kw": np.array([setpoint.value])})
        self.answers += 1
        miss = self.config.miss_every
        if miss and self.answers % miss == 0:  # acted on, but the answer is lost
            self.missed += 1
            return
        every = self.config.garbage_every
        if every and self.answers % every == 0:
            self.link.publish(self.topics["p_kw"], b"{not json")
        ts = self._stamp(setpoint.ts)
        for q in MEASURED:
            payload: dict[str, Any] = {"ts": ts, "value": float(out[q][0])}
            if self.config.echo_seq:
                payload["seq"] = setpoint.extra.get("seq")
            self.link.publish(self.topics[q], json.dumps(payload).encode())

    def _stamp(self, setpoint_ts: datetime | None) -> str | None:
        """The answer's ``ts``: the setpoint's, or the device's own clock."""
        base = datetime.now(UTC) if self.config.own_clock else setpoint_ts
        if base is None:
            return None
        return format_ts(base + timedelta(seconds=self.config.clock_skew_s))

    def start(self) -> FieldBattery:
        """Connect (raises if the broker is unreachable) and answer in the background."""
        self.link.open()
        return self

    def serve(self) -> None:
        """Connect and answer setpoints until :meth:`stop` (or Ctrl-C)."""
        self.start()
        try:
            self._stopped.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.link.close()

    def stop(self) -> None:
        """End :meth:`serve`."""
        self._stopped.set()
