"""What each field sensor publishes: channel, twin quantity, field unit and noise class.

A channel's field value is the twin value times its ``factor`` (units and sign): powers
in W and var, currents in A, SoC and SoH in %, temperatures in Cel (``temp`` a battery's,
``t_cell`` a PV plant's cells), frequency in Hz. A bus voltage is V phase-to-neutral on a
low-voltage bus (< 1 kV) and kV line-to-line above.
Loads and EV parks are metered as consumers: their channels ``p_load``/``q_load`` carry
consumption positive (the field sign), so a mapping needs ``scale: -1`` for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ASSET_CHANNELS",
    "BRANCH_CHANNELS",
    "CONSUMER_KINDS",
    "GROUPS",
    "LV_KV",
    "POC_CHANNELS",
    "Channel",
    "bus_voltage_channel",
]

#: Sensor groups of a plan, in plan order.
GROUPS = ("bus", "line", "trafo", "assets", "poc")
#: Buses below this nominal voltage (kV) report V phase-to-neutral, above kV line-to-line.
LV_KV = 1.0
#: Asset kinds metered as consumers (consumption positive).
CONSUMER_KINDS = frozenset({"load", "ev"})


@dataclass(frozen=True)
class Channel:
    """One published channel of an element.

    Parameters
    ----------
    channel : str
        Last topic level (``v``, ``p_from``, ``soc`` ...).
    quantity : str
        The twin quantity it measures (twin unit and sign).
    unit : str
        The field unit published (SenML spelling where one exists).
    factor : float
        Field value per twin unit (``value = factor * value_twin``).
    sensor_class : str
        Noise class of :data:`models.sensors.SENSOR_CLASSES`.
    """

    channel: str
    quantity: str
    unit: str
    factor: float
    sensor_class: str


def _branch(sides: tuple[str, str]) -> list[Channel]:
    out = []
    for side in sides:
        out += [
            Channel(f"p_{side}", f"p_{side}_kw", "W", 1e3, "power"),
            Channel(f"q_{side}", f"q_{side}_kvar", "var", 1e3, "power"),
            Channel(f"i_{side}", f"i_{side}_ka", "A", 1e3, "loading"),
        ]
    return out


#: Channels of lines and transformers (powers into the branch at each side).
BRANCH_CHANNELS: dict[str, list[Channel]] = {
    "line": _branch(("from", "to")),
    "trafo": _branch(("hv", "lv")),
}

#: Channels of an asset by twin quantity (those its model outputs are published).
ASSET_CHANNELS: dict[str, Channel] = {
    "p_kw": Channel("p", "p_kw", "W", 1e3, "power"),
    "q_kvar": Channel("q", "q_kvar", "var", 1e3, "power"),
    "soc": Channel("soc", "soc", "%", 100.0, "soc"),
    "soh": Channel("soh", "soh", "%", 100.0, "soh"),
    "t_c": Channel("temp", "t_c", "Cel", 1.0, "temperature"),
    "t_cell_c": Channel("t_cell", "t_cell_c", "Cel", 1.0, "temperature"),
}

#: Channels of the point of connection (import > 0, as the twin's ``grid`` outputs).
POC_CHANNELS: list[Channel] = [
    Channel("p", "p_kw", "W", 1e3, "power"),
    Channel("q", "q_kvar", "var", 1e3, "power"),
    Channel("f", "f_hz", "Hz", 1.0, "frequency"),
]


def consumer(channel: Channel) -> Channel:
    """A consumer's meter of ``channel``: consumption positive (``p_load``, ``q_load``)."""
    return Channel(
        f"{channel.channel}_load",
        channel.quantity,
        channel.unit,
        -channel.factor,
        channel.sensor_class,
    )


def bus_voltage_channel(vn_kv: float) -> tuple[Channel, str]:
    """The voltage channel of a bus of ``vn_kv`` and its kind (``phase`` or ``line``)."""
    if vn_kv < LV_KV:
        return Channel("v", "v_pu", "V", vn_kv * 1e3 / np.sqrt(3.0), "voltage"), "phase"
    return Channel("v", "v_pu", "kV", float(vn_kv), "voltage"), "line"
