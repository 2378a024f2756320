"""Schema of the ``assets`` and ``tariff`` sections: PV, batteries, loads, EV parks, prices."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from twin.bounds import (
    C_RATE_PER_H,
    DC_AC_RATIO,
    EV_CAPACITY_MAX_KWH,
    MAX_ENERGY_KWH,
    MAX_POWER_KW,
    MAX_UNITS,
    MIN_ENERGY_KWH,
    AssetName,
    Efficiency,
    Fraction,
    PowerKw,
    Price,
    bounded,
    whole,
)
from twin.errors import did_you_mean
from twin.scenario import BusRef, Strict

__all__ = [
    "ASSET_KINDS",
    "Assets",
    "BatterySpec",
    "EVSpec",
    "LoadSpec",
    "PVSpec",
    "TariffSpec",
    "asset_spec",
]

#: Asset kinds of a scenario, each a registered model whose units sit at a bus.
ASSET_KINDS = ("pv", "battery", "load", "ev")


def sapm_temperature_models() -> tuple[str, ...]:
    """The names of pvlib's SAPM cell-temperature parameter sets (without importing pvlib)."""
    from models.pv import SAPM_TEMPERATURE_MODELS

    return SAPM_TEMPERATURE_MODELS


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
        known = sapm_temperature_models()
        if value not in known:
            raise ValueError(f"expected one of {', '.join(known)}, got {value!r}")
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
    """A battery: capacity (kWh), converter rating (kW), limits, thermal and ageing data.

    ``replacement_eur_kwh``: what replacing the battery at end of life (``soh_eol``)
    costs per kWh of capacity; with ``cycle_life_efc`` it sets the wear cost every
    controller plans for and is scored by (:func:`twin.objective.wear_eur_kwh`:
    ``replacement_eur_kwh / (2 cycle_life_efc)`` EUR per kWh through the cells). 0: wear
    is not costed.
    """

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
    replacement_eur_kwh: bounded(0.0, 5000.0) = 0.0

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
            hint = did_you_mean(value, list(ARRIVAL_PROFILES), lead=True)
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


def asset_spec(kind: str) -> type[Strict]:
    """The schema of one unit of asset ``kind`` (``pv``, ``battery``, ``load``, ``ev``)."""
    return {"pv": PVSpec, "battery": BatterySpec, "load": LoadSpec, "ev": EVSpec}[kind]
