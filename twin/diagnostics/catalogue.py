"""What a run's diagnostics can see: its sensors, its assets and their ratings.

A :class:`Catalogue` lists the measured quantities (:class:`Sensor`, one per
``(asset, kind, quantity)`` of the ``source=measured`` rows) and the assets they belong
to with the ratings the health indices need (PV AC rating, battery capacity, power and
temperature limits, the grid's voltage band and nominal frequency). It is built from a
resolved scenario and the keys of the measured series (:func:`catalogue_from`), the same
way offline (from ``results.parquet``) and online (from the sensors the world plans).

:meth:`Catalogue.fingerprint` identifies the sensor set: a learned model trained on
runs with one fingerprint refuses a run with another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.diagnostics.arrays import fill_nan

__all__ = [
    "ASSET_KINDS",
    "QUANTITY_CLASS",
    "Asset",
    "Catalogue",
    "Sensor",
    "catalogue_from",
    "sensor_sigma",
]

#: Asset kinds that get health indices and alerts (``grid`` is the point of connection).
ASSET_KINDS = ("pv", "battery", "load", "grid", "line", "bus", "trafo", "ev")

#: Sensor class of every measured quantity (the ``Port(sensor=...)`` class of the models;
#: the unit in the name decides it, see DESIGN.md "Conventions").
QUANTITY_CLASS = {
    "p_kw": "power",
    "q_kvar": "power",
    "v_pu": "voltage",
    "loading_pct": "loading",
    "trafo_loading_pct": "loading",
    "soc": "soc",
    "soh": "soh",
    "t_c": "temperature",
    "t_cell_c": "temperature",
    "f_hz": "frequency",
}

#: Nominal grid frequency (Hz) of the twin's grid model.
NOMINAL_HZ = 50.0

#: Quantities recorded as states at an instant (one row more than the steps).
STATE_QUANTITIES = frozenset({"soc", "soh", "t_c", "e_kwh"})


@dataclass(frozen=True, order=True)
class Sensor:
    """One measured quantity of one asset (the key of a ``source=measured`` series)."""

    asset: str
    kind: str
    quantity: str

    @property
    def key(self) -> tuple[str, str, str]:
        """``(asset, kind, quantity)`` as in the results."""
        return (self.asset, self.kind, self.quantity)

    @property
    def sensor_class(self) -> str:
        """The sensor class (``power``, ``voltage``...; ``other`` when not known)."""
        return QUANTITY_CLASS.get(self.quantity, "other")


@dataclass(frozen=True)
class Asset:
    """An asset the diagnostics watch, with the ratings its indices need.

    ``ratings`` per kind: pv ``p_ac_kw``, ``gamma_pdc``; battery ``e_kwh``,
    ``p_max_kw``, ``eta_ch``, ``eta_dis``, ``soc_min``, ``soc_max``, ``soh_init``,
    ``t_ambient_c``, ``r_th_k_per_kw``, ``c_th_kj_per_k``, ``t_derate_c``, ``t_trip_c``;
    load ``p_kw``, ``q_kvar``; grid ``v_nom_pu`` (the external grid's set voltage),
    ``f_nom_hz``, ``slack_bus`` (the bus the POC voltage is measured at); line
    ``from_bus``, ``to_bus``.
    """

    name: str
    kind: str
    ratings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalogue:
    """The sensors and assets of one run.

    Attributes
    ----------
    sensors : tuple of Sensor
        Sorted; the engine's arrays follow this order.
    assets : dict of str to Asset
        Every asset that has a sensor (and the POC ``poc``), by name.
    step_s : int
        Step length (s).
    v_min_pu, v_max_pu : float
        The grid's voltage band (``grid.v_min_pu``/``grid.v_max_pu`` of the scenario).
    interval_s : dict of str to int
        Reporting interval (s) per sensor class (0 or below the step: every step).
    imperfection : dict of str to tuple of float
        ``(noise_pct, noise_abs, resolution)`` per sensor class.
    """

    sensors: tuple[Sensor, ...]
    assets: dict[str, Asset]
    step_s: int
    v_min_pu: float = 0.90
    v_max_pu: float = 1.10
    interval_s: dict[str, int] = field(default_factory=dict)
    imperfection: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def index(self) -> dict[tuple[str, str, str], int]:
        """Position of every sensor key in :attr:`sensors`."""
        return {s.key: i for i, s in enumerate(self.sensors)}

    def fingerprint(self) -> str:
        """SHA-256 of the sorted sensor keys: the identity of the sensor set."""
        text = "\n".join("/".join(s.key) for s in sorted(self.sensors))
        return hashlib.sha256(text.encode()).hexdigest()

    def of_kind(self, kind: str) -> list[Asset]:
        """The assets of ``kind``, by name."""
        return sorted((a for a in self.assets.values() if a.kind == kind), key=lambda a: a.name)

    def noise_params(self) -> np.ndarray:
        """``(n_sensors, 3)``: ``noise_pct``, ``noise_abs``, ``resolution`` per sensor."""
        return np.array(
            [self.imperfection.get(s.sensor_class, (0.0, 0.0, 0.0)) for s in self.sensors],
            dtype=float,
        ).reshape(-1, 3)

    def report_steps(self) -> np.ndarray:
        """Steps between two reports of every sensor (1: every step)."""
        return np.array(
            [
                max(1, -(-int(self.interval_s.get(s.sensor_class, 0)) // self.step_s))
                for s in self.sensors
            ],
            dtype=int,
        )


def sensor_sigma(params: np.ndarray, values: np.ndarray) -> np.ndarray:
    r"""Standard deviation of every sensor's error at the readings ``values``.

    .. math:: \sigma = \sqrt{(p |x| / 100)^2 + a^2 + r^2 / 12}

    with the class's ``noise_pct`` :math:`p`, ``noise_abs`` :math:`a` and the
    quantisation error of its ``resolution`` :math:`r` (uniform, variance
    :math:`r^2/12`).

    Parameters
    ----------
    params : numpy.ndarray
        ``(n_sensors, 3)``: :meth:`Catalogue.noise_params`.
    values : numpy.ndarray
        One reading per sensor (NaN: the floor alone).
    """
    x = fill_nan(np.abs(np.asarray(values, dtype=float)))
    return np.sqrt((params[:, 0] * x / 100.0) ** 2 + params[:, 1] ** 2 + params[:, 2] ** 2 / 12.0)


def _sensor_classes(scenario: Any) -> tuple[dict[str, int], dict[str, tuple[float, float, float]]]:
    """Reporting intervals and imperfections per class: defaults, then the scenario's."""
    try:
        from models.sensors import SENSOR_CLASSES
    except ImportError:  # a twin without the sensor layer: ideal sensors
        return {}, {}
    intervals, noise = {}, {}
    overrides = getattr(getattr(scenario, "sensors", None), "classes", None) or {}
    for name, default in SENSOR_CLASSES.items():
        spec = default.as_dict()
        given = overrides.get(name)
        if given is not None:
            spec.update({k: v for k, v in given.model_dump().items() if v is not None})
        intervals[name] = int(spec["interval_s"])
        noise[name] = (
            float(spec["noise_pct"]),
            float(spec["noise_abs"]),
            float(spec["resolution"]),
        )
    return intervals, noise


_PV_RATINGS = ("p_ac_kw", "p_dc_kw", "gamma_pdc")
_BATTERY_RATINGS = (
    "e_kwh",
    "p_max_kw",
    "eta_ch",
    "eta_dis",
    "soc_min",
    "soc_max",
    "soh_init",
    "t_ambient_c",
    "r_th_k_per_kw",
    "c_th_kj_per_k",
    "t_derate_c",
    "t_trip_c",
)
_LOAD_RATINGS = ("p_kw", "q_kvar")


def _unit_ratings(unit: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: unit[name] for name in names if name in unit}


def _grid_ratings(scenario: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The POC's ratings and every line's end buses.

    The POC: the external grid's set voltage and bus, the nominal frequency.
    """
    from models.gridnet import load_tables

    net = load_tables(scenario.grid.source)
    ext = net.ext_grid[net.ext_grid["in_service"].astype(bool)]
    poc = {
        "v_nom_pu": float(ext["vm_pu"].iloc[0]),
        "slack_bus": f"bus_{int(ext['bus'].iloc[0])}",
        "f_nom_hz": NOMINAL_HZ,
    }
    lines = {
        f"line_{int(i)}": {
            "from_bus": f"bus_{int(row.from_bus)}",
            "to_bus": f"bus_{int(row.to_bus)}",
        }
        for i, row in net.line.iterrows()
    }
    return poc, lines


def catalogue_from(scenario: Any, keys: Iterable[tuple[str, str, str]]) -> Catalogue:
    """The catalogue of a run of ``scenario`` whose measured series are ``keys``.

    Parameters
    ----------
    scenario : twin.scenario.Scenario
        The resolved scenario (``run.json``'s ``scenario``, validated).
    keys : iterable of (asset, kind, quantity)
        The measured series (controller setpoints and other kinds are ignored).
    """
    sensors = tuple(sorted({Sensor(*key) for key in keys if key[1] in ASSET_KINDS}))
    assets: dict[str, Asset] = {}
    units = {
        "pv": (scenario.units("pv"), _PV_RATINGS),
        "battery": (scenario.units("battery"), _BATTERY_RATINGS),
        "load": (scenario.units("load"), _LOAD_RATINGS),
    }
    for kind, (unit_list, names) in units.items():
        for unit in unit_list:
            assets[unit["name"]] = Asset(unit["name"], kind, _unit_ratings(unit, names))
    poc, lines = _grid_ratings(scenario)
    assets["poc"] = Asset("poc", "grid", poc)
    for sensor in sensors:
        if sensor.asset not in assets:
            assets[sensor.asset] = Asset(sensor.asset, sensor.kind, lines.get(sensor.asset, {}))
    intervals, noise = _sensor_classes(scenario)
    return Catalogue(
        sensors=sensors,
        assets=assets,
        step_s=scenario.clock().step_s,
        v_min_pu=float(scenario.grid.v_min_pu),
        v_max_pu=float(scenario.grid.v_max_pu),
        interval_s=intervals,
        imperfection=noise,
    )
