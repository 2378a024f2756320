"""The sensor plan: which sensors a plant has, their keys, topics, gateways and noise.

One row per sensor (:func:`sensor_plan`), in plan order: groups ``bus``, ``line``,
``trafo``, ``assets``, ``poc`` (as chosen), each element's channels; with redundancy
``N`` the whole set is repeated with channel suffixes ``-2`` .. ``-N`` (a redundant
meter is another device, so it lands in another gateway). Consecutive sensors share a
gateway (``gateway_size`` each). The sensor key is ``<prefix>/<element>/<channel>`` in
every format: the topic of a per-sensor message, and ``bn + n`` (SenML) or
``<prefix>/<n>`` (JSON array) of a gateway record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from adapters.field.channels import (
    ASSET_CHANNELS,
    BRANCH_CHANNELS,
    CONSUMER_KINDS,
    GROUPS,
    POC_CHANNELS,
    Channel,
    bus_voltage_channel,
    consumer,
)
from adapters.field.errors import FieldError
from models.sensors import SENSOR_CLASSES

__all__ = ["FORMATS", "Gateways", "PlanOptions", "Plant", "gateways", "sensor_plan"]

#: Wire formats: per-sensor topics, a JSON array or a SenML pack per gateway and interval.
FORMATS = ("topic", "json", "senml")
POC = "poc"
#: Quantities a consumer's meter reports consumption positive.
CONSUMED = ("p_kw", "q_kvar")


@dataclass(frozen=True)
class PlanOptions:
    """How the plant's sensors are laid out and published.

    Parameters
    ----------
    groups : tuple of str
        Sensor groups (:data:`adapters.field.channels.GROUPS`).
    redundancy : int
        Sensors per quantity and location (channel suffix ``-2``.. for the extra ones).
    gateway_size : int
        Sensors per gateway.
    fmt : str
        ``topic``, ``json`` or ``senml``.
    prefix : str
        First topic level(s).
    """

    groups: tuple[str, ...] = GROUPS
    redundancy: int = 1
    gateway_size: int = 50
    fmt: str = "topic"
    prefix: str = "field"

    def check(self) -> None:
        """Raise :class:`FieldError` naming every bad option."""
        problems = []
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown or not self.groups:
            problems.append(f"--groups: expected some of {', '.join(GROUPS)}, got {self.groups}")
        if not 1 <= self.redundancy <= 99:
            problems.append(f"--redundancy: expected 1..99, got {self.redundancy}")
        if not 1 <= self.gateway_size <= 100_000:
            problems.append(f"--gateway-size: expected 1..100000, got {self.gateway_size}")
        if self.fmt not in FORMATS:
            problems.append(f"--format: expected one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if not self.prefix or any(c in self.prefix for c in "#+") or self.prefix.endswith("/"):
            problems.append(f"--prefix: expected topic levels without # + or a trailing /, "
                            f"got {self.prefix!r}")  # fmt: skip
        if problems:
            raise FieldError("; ".join(problems))


@dataclass(frozen=True)
class Plant:
    """What a plan is laid over: the grid's tables and the scenario's assets.

    Parameters
    ----------
    net : pandapowerNet
        The scenario's grid (its ``bus``, ``line`` and ``trafo`` tables).
    assets : list of (name, kind, quantities)
        Every asset element (an EV park's chargers) with its kind (the element group) and
        the twin quantities its model outputs.
    """

    net: Any
    assets: list[tuple[str, str, tuple[str, ...]]]

    @classmethod
    def from_scenario(cls, scenario: Any) -> Plant:
        """The plant of a validated scenario (its grid and every asset)."""
        from models.gridnet import load_net
        from twin.assets.schema import ASSET_KINDS
        from twin.registry import get_model

        assets = []
        for kind in ASSET_KINDS:
            units = scenario.units(kind)
            if not units:
                continue
            model = get_model(kind)
            names = model.element_names(units)
            measured: dict[str, tuple[str, list[str]]] = {}
            for quantity in ASSET_CHANNELS:
                port = model.outputs.get(quantity)
                if port is None:
                    continue
                group = port.group or model.kind  # an EV park's outputs are its chargers'
                for name in names.get(group, []):
                    measured.setdefault(name, (group, []))[1].append(quantity)
            assets += [(name, group, tuple(qs)) for name, (group, qs) in measured.items()]
        return cls(load_net(scenario.grid.source), assets)


def _rating_ka(net: Any, kind: str, index: int, side: str) -> float:
    """Rated current (kA) of a branch side: the base of a current sensor's noise floor."""
    if kind == "line":
        row = net.line.loc[index]
        return float(row["max_i_ka"] * row.get("df", 1.0) * row.get("parallel", 1))
    row = net.trafo.loc[index]
    vn = row["vn_hv_kv"] if side == "hv" else row["vn_lv_kv"]
    return float(row["sn_mva"] / (np.sqrt(3.0) * vn) * row.get("parallel", 1))


def _locations(plant: Plant, groups: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (element, channel) of the chosen groups, before redundancy."""
    net = plant.net
    rows: list[dict[str, Any]] = []

    def add(element: str, kind: str, ch: Channel, **extra: Any) -> None:
        rows.append({"element": element, "kind": kind, "channel": ch.channel,
                     "quantity": ch.quantity, "unit": ch.unit, "factor": ch.factor,
                     "sensor_class": ch.sensor_class, **extra})  # fmt: skip

    for group in GROUPS:
        if group not in groups:
            continue
        if group == "bus":
            buses = net.bus[net.bus["in_service"].astype(bool)]
            for i, vn_kv in buses["vn_kv"].items():
                ch, voltage = bus_voltage_channel(float(vn_kv))
                add(f"bus_{i}", "bus", ch, voltage=voltage, vn_kv=float(vn_kv))
        elif group in BRANCH_CHANNELS:
            for i in net[group].index[net[group]["in_service"].astype(bool)]:
                for ch in BRANCH_CHANNELS[group]:
                    side = ch.channel.split("_", 1)[1]
                    add(f"{group}_{i}", group, ch, rating_ka=_rating_ka(net, group, i, side))
        elif group == "assets":
            for name, kind, quantities in plant.assets:
                for q in quantities:
                    ch = ASSET_CHANNELS[q]
                    metered = kind in CONSUMER_KINDS and q in CONSUMED
                    add(name, kind, consumer(ch) if metered else ch)
        else:
            for ch in POC_CHANNELS:
                add(POC, "grid", ch)
    return rows


def sensor_plan(plant: Plant, options: PlanOptions) -> pd.DataFrame:
    """The static sensor table of a plant (one row per sensor, in plan order).

    Columns: ``sensor`` (key), ``topic`` (where its values go), ``gateway``, ``element``,
    ``kind``, ``channel``, ``quantity`` (twin), ``unit`` (field), ``factor`` (field per
    twin unit), ``scale`` (-1 for consumers: what a mapping multiplies by), ``voltage``
    (``phase``/``line`` for bus voltages), ``vn_kv``, ``sensor_class``, the noise in twin
    units ``noise_share`` (of the reading), ``noise_floor``, ``resolution``, and
    ``copy`` (1..redundancy).

    Raises
    ------
    FieldError
        For bad options or a plan without sensors.
    """
    options.check()
    base = _locations(plant, options.groups)
    if not base:
        raise FieldError(f"--groups {','.join(options.groups)}: the plant has no such sensors")
    rows = []
    for copy in range(1, options.redundancy + 1):
        for row in base:
            channel = row["channel"] if copy == 1 else f"{row['channel']}-{copy}"
            rows.append({**row, "channel": channel, "copy": copy})
    table = pd.DataFrame(rows)
    table["sensor"] = options.prefix + "/" + table["element"] + "/" + table["channel"]
    n = len(table)
    gateway = np.arange(n) // options.gateway_size
    width = len(str(int(gateway[-1])))
    table["gateway"] = [f"gw{g:0{width}d}" for g in gateway]
    if options.fmt == "topic":
        table["topic"] = table["sensor"]
    else:
        suffix = "/senml" if options.fmt == "senml" else ""
        table["topic"] = options.prefix + "/gw/" + table["gateway"] + suffix
    table["scale"] = np.sign(table["factor"])
    for column in ("voltage", "vn_kv", "rating_ka"):
        if column not in table:
            table[column] = np.nan
    table["voltage"] = table["voltage"].where(table["voltage"].notna(), None)
    share, floor, resolution = [], [], []
    for cls, rating in zip(table["sensor_class"], table["rating_ka"], strict=True):
        imp = SENSOR_CLASSES[cls]
        if cls == "loading":  # percent of the rating: in kA for a current sensor
            floor.append(imp.noise_abs / 100 * rating)
            resolution.append(imp.resolution / 100 * rating)
        else:
            floor.append(imp.noise_abs)
            resolution.append(imp.resolution)
        share.append(imp.noise_pct / 100)
    table["noise_share"], table["noise_floor"], table["resolution"] = share, floor, resolution
    columns = ["sensor", "topic", "gateway", "element", "kind", "channel", "quantity", "unit",
               "factor", "scale", "voltage", "vn_kv", "sensor_class", "noise_share",
               "noise_floor", "resolution", "copy"]  # fmt: skip
    if table["sensor"].duplicated().any():
        dup = table.loc[table["sensor"].duplicated(), "sensor"].iloc[0]
        raise FieldError(f"sensor key {dup!r} twice: two elements share a name")
    return table[columns].reset_index(drop=True)


@dataclass(frozen=True)
class Gateways:
    """The gateways of a plan: each sensor's gateway index, the names, the first sensors.

    A gateway's sensors are consecutive: gateway ``g`` holds sensors
    ``starts[g]:starts[g + 1]`` (``starts`` ends with the number of sensors).
    """

    index: np.ndarray
    names: list[str]
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def gateways(sensors: pd.DataFrame) -> Gateways:
    """The gateways of a plan (:func:`sensor_plan`).

    Raises
    ------
    FieldError
        If a gateway's sensors are not consecutive.
    """
    index, names = pd.factorize(sensors["gateway"], sort=False)
    starts = np.flatnonzero(np.r_[True, np.diff(index) != 0])
    if len(starts) != len(names):
        raise FieldError("a gateway's sensors must be consecutive in the plan")
    return Gateways(index, [str(n) for n in names], np.r_[starts, len(index)])
