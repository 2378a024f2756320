"""Photovoltaic plants composed from pvlib's physical functions.

The chain per plant is: solar position -> plane-of-array transposition (Hay-Davies)
-> angle-of-incidence loss (physical IAM) -> SAPM cell temperature -> PVWatts DC model
-> PVWatts system losses -> PVWatts inverter with clipping at its AC rating.

Everything that does not depend on the co-simulation loop (the whole weather-driven
chain) is computed ahead, a window of steps at a time (:mod:`models.window`: a day
at 1 s, the whole run at 15 min); :meth:`PVPlant.step` only indexes the precomputed
series and applies the loop inputs (curtailment/derating). The precomputed step means
are kept in the disk cache (:mod:`models.diskcache`) per window, keyed by the weather
file's content, the site, the window's clock, the plants' parameters, pvlib's version
and this module's code: a warm run imports no pvlib.

The weather may instead come from another simulator: the inputs ``ghi``, ``dni``,
``dhi`` (W/m2), ``temp_air`` (degC) and ``wind_speed`` (m/s), each the mean over the
step, replace the weather file's value of that quantity for that step. An input that
nothing is connected to is NaN (its default) and the file's value stands.

Sign convention: ``p_kw`` > 0 is power fed into the plant's bus.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock, Model, Port
from models.diskcache import MISSING, CacheEntry, code_digest, package_versions
from models.weather import WEATHER_COLUMNS, weather_at, weather_digest
from models.window import StepWindows, sub_clock

__all__ = [
    "SAPM_TEMPERATURE_MODELS",
    "WEATHER_INPUTS",
    "WEATHER_RESOLUTION_S",
    "PVPlant",
    "precompute_key",
    "pv_plant_power",
    "solar_geometry",
]

#: The code the precomputed series are derived by: a stored series of older code misses.
PRECOMPUTE_CODE = ("pv", "weather", "base")

#: Names of pvlib's SAPM cell-temperature parameter sets
#: (``pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]``, equal in a test), listed
#: here so that validating a scenario does not import pvlib (half a second).
SAPM_TEMPERATURE_MODELS = (
    "open_rack_glass_glass",
    "close_mount_glass_glass",
    "open_rack_glass_polymer",
    "insulated_back_glass_polymer",
)

#: Resolution of the weather (TMY: hourly); steps longer than this are averaged over
#: sub-steps no longer than it.
WEATHER_RESOLUTION_S = 3600

#: Unit, meaning and plausible range of each weather input: irradiance up to 1.5 x the
#: solar constant at the surface (with cloud enhancement), air temperature of the
#: recorded extremes, wind up to a strong hurricane's.
_WEATHER_PORTS = {
    "ghi": ("W/m2", "global horizontal irradiance", (0.0, 2000.0)),
    "dni": ("W/m2", "direct normal irradiance", (0.0, 2000.0)),
    "dhi": ("W/m2", "diffuse horizontal irradiance", (0.0, 2000.0)),
    "temp_air": ("degC", "air temperature", (-90.0, 60.0)),
    "wind_speed": ("m/s", "wind speed", (0.0, 100.0)),
}
#: Exogenous weather inputs, in :data:`models.weather.WEATHER_COLUMNS` order: the mean
#: over the step; NaN (the default: nothing connected) keeps the weather file's value.
WEATHER_INPUTS = {
    name: Port(
        _WEATHER_PORTS[name][0],
        f"{_WEATHER_PORTS[name][1]}, mean over the step; NaN: the weather file's",
        default=np.nan,
        limits=_WEATHER_PORTS[name][2],
    )
    for name in WEATHER_COLUMNS
}


def _nan_as_zero(values: Any) -> np.ndarray:
    """An irradiance component with NaN (sun below the horizon) read as 0 W/m2."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isnan(values), 0.0, values)


def solar_geometry(
    times: pd.DatetimeIndex, latitude: float, longitude: float, altitude: float
) -> pd.DataFrame:
    """Sun position and extraterrestrial irradiance at ``times`` (shared by all plants).

    Returns
    -------
    pandas.DataFrame
        ``apparent_zenith``, ``azimuth`` (degrees) and ``dni_extra`` (W/m2).
    """
    import pvlib  # here, not at the top: validation imports this module, not pvlib

    solpos = pvlib.solarposition.get_solarposition(times, latitude, longitude, altitude)
    return pd.DataFrame(
        {
            "apparent_zenith": solpos["apparent_zenith"],
            "azimuth": solpos["azimuth"],
            "dni_extra": pvlib.irradiance.get_extra_radiation(times),
        },
        index=times,
    )


def pv_plant_power(
    times: pd.DatetimeIndex,
    weather: pd.DataFrame | Mapping[str, np.ndarray],
    latitude: float,
    longitude: float,
    altitude: float,
    plant: dict[str, Any],
    geometry: pd.DataFrame | Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """AC and DC power of one plant over ``times``.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        Tz-aware times.
    weather : pandas.DataFrame or dict of numpy.ndarray
        ``ghi``, ``dni``, ``dhi`` (W/m2), ``temp_air`` (degC), ``wind_speed`` (m/s)
        at ``times``.
    latitude, longitude : float
        Site position in degrees.
    altitude : float
        Site altitude in metres.
    plant : dict
        ``p_dc_kw`` (array rating at STC), ``p_ac_kw`` (inverter AC rating),
        ``tilt_deg``, ``azimuth_deg`` (180 = south), ``gamma_pdc`` (1/K),
        ``eta_inv_nom``, ``losses_pct`` (PVWatts system losses), ``albedo``,
        ``temperature_model`` (a key of pvlib's SAPM parameter table).
    geometry : pandas.DataFrame or dict of numpy.ndarray, optional
        :func:`solar_geometry` at ``times`` (computed when not given).

    Returns
    -------
    pandas.DataFrame
        ``p_ac_kw`` (after clipping), ``p_dc_kw``, ``poa_w_m2``, ``t_cell_c``.

    References
    ----------
    .. [1] Dobos, A. P., "PVWatts Version 5 Manual", NREL/TP-6A20-62641, 2014.
    .. [2] King, D. et al., "Sandia Photovoltaic Array Performance Model",
       SAND2004-3535, 2004.
    """
    if geometry is None:
        geometry = solar_geometry(times, latitude, longitude, altitude)
    # plain arrays through pvlib: the same functions, without pandas' per-call overhead
    zenith = np.asarray(geometry["apparent_zenith"], dtype=float)
    azimuth = np.asarray(geometry["azimuth"], dtype=float)
    met = {name: np.asarray(weather[name], dtype=float) for name in WEATHER_COLUMNS}
    import pvlib  # here, not at the top: validation imports this module, not pvlib

    irradiance = pvlib.irradiance.get_total_irradiance(
        surface_tilt=plant["tilt_deg"],
        surface_azimuth=plant["azimuth_deg"],
        solar_zenith=zenith,
        solar_azimuth=azimuth,
        dni=met["dni"],
        ghi=met["ghi"],
        dhi=met["dhi"],
        dni_extra=np.asarray(geometry["dni_extra"], dtype=float),
        model="haydavies",
        albedo=plant["albedo"],
    )
    poa = {name: _nan_as_zero(values) for name, values in irradiance.items()}
    aoi = pvlib.irradiance.aoi(plant["tilt_deg"], plant["azimuth_deg"], zenith, azimuth)
    iam = pvlib.iam.physical(aoi)
    effective = poa["poa_direct"] * iam + poa["poa_diffuse"]
    temp_params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][plant["temperature_model"]]
    t_cell = pvlib.temperature.sapm_cell(
        poa["poa_global"], met["temp_air"], met["wind_speed"], **temp_params
    )
    pdc0_w = plant["p_dc_kw"] * 1000.0
    p_dc = pvlib.pvsystem.pvwatts_dc(effective, t_cell, pdc0_w, plant["gamma_pdc"])
    p_dc = p_dc * (1.0 - plant["losses_pct"] / 100.0)
    inverter_pdc0_w = plant["p_ac_kw"] * 1000.0 / plant["eta_inv_nom"]
    p_ac = pvlib.inverter.pvwatts(p_dc, inverter_pdc0_w, eta_inv_nom=plant["eta_inv_nom"])
    return pd.DataFrame(
        {
            "p_ac_kw": np.clip(np.nan_to_num(np.asarray(p_ac, dtype=float)), 0.0, None) / 1000.0,
            "p_dc_kw": np.nan_to_num(np.asarray(p_dc, dtype=float)) / 1000.0,
            "poa_w_m2": np.asarray(poa["poa_global"], dtype=float),
            "t_cell_c": np.asarray(t_cell, dtype=float),
        },
        index=times,
    )


def precompute_key(
    units: list[dict[str, Any]], clock: Clock, context: dict[str, Any]
) -> tuple[str, ...]:
    """What the precomputed series of ``units`` depend on (their disk-cache key).

    The weather file's content, the site, the clock, every unit's parameters (its name
    and bus too: a key never too wide), pvlib's version and the code of this module,
    :mod:`models.weather` and :mod:`models.base`.
    """
    site = {k: context["site"][k] for k in ("lat", "lon", "altitude", "tz")}
    return (
        f"weather={weather_digest(context['weather'])}",
        "site=" + json.dumps(site, sort_keys=True, default=str),
        "clock=" + json.dumps(clock.to_dict(), sort_keys=True),
        "units=" + json.dumps(units, sort_keys=True, default=str),
        *package_versions("pvlib"),
        code_digest(*PRECOMPUTE_CODE),
    )


class PVPlant(Model):
    """A fleet of PV plants (one unit per plant).

    Parameters per unit are those of :func:`pv_plant_power`. The weather file and
    the site come from the run context (``context["weather"]``, ``context["site"]``).
    The weather inputs (:data:`WEATHER_INPUTS`) of a plant replace the file's values
    for the step they are given in; :meth:`exogenous` (what a forecaster knows) stays
    the file's.
    """

    kind = "pv"
    inputs = {
        "derate": Port("1", "available fraction of the plant's output (1 = no limit)", default=1.0),
        **WEATHER_INPUTS,
    }
    outputs = {
        "p_kw": Port("kW", "AC power fed into the bus (> 0)", sensor="power"),
        "p_avail_kw": Port("kW", "AC power the plant could deliver without derating"),
        "t_cell_c": Port("degC", "cell temperature", sensor="temperature"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        # The output stands for the step's mean: evaluate at the middle of each step, or
        # of equal parts of it no longer than the weather's hour for longer steps.
        self._parts = -(-clock.step_s // WEATHER_RESOLUTION_S)
        # working memory per step: the weather and sun at every sub-step, and per plant
        # pvlib's intermediate series
        row_bytes = 8 * self._parts * (12 + 12 * self.n)
        self._windows = StepWindows(clock, self._cached_means, row_bytes)
        self._windows.row(0)  # the first window now (from the disk cache when warm)

    def _cached_means(self, clock: Clock) -> tuple[np.ndarray, np.ndarray]:
        """Step means over ``clock`` (a window of the run): from the disk cache, else pvlib."""
        entry = CacheEntry("pv", precompute_key(self.units, clock, self.context))
        means = entry.read("step_means")
        if means is MISSING:
            means = self._step_means(clock)
            entry.write({"step_means": means})
        return means

    def _sample(
        self, clock: Clock
    ) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Times, weather and sun geometry at the sub-step centres of ``clock``'s steps."""
        site, parts = self.context["site"], self._parts
        offsets = (np.arange(parts) + 0.5) * clock.step_s / parts
        times = clock.times.repeat(parts) + pd.to_timedelta(
            np.tile(offsets, clock.n_steps), unit="s"
        )
        times = times.tz_convert(site["tz"])
        weather = weather_at(times, self.context["weather"])
        geometry = solar_geometry(times, site["lat"], site["lon"], site["altitude"])
        return (
            times,
            {name: weather[name].to_numpy(float) for name in WEATHER_COLUMNS},
            {name: geometry[name].to_numpy(float) for name in geometry},
        )

    def _step_means(self, clock: Clock) -> tuple[np.ndarray, np.ndarray]:
        """Available AC power and cell temperature, mean over every step of ``clock``."""
        times, weather, geometry = self._sample(clock)
        series = [self._power(times, weather, geometry, u) for u in self.units]
        shape = (clock.n_steps, self._parts, self.n)

        def step_means(column: str) -> np.ndarray:
            values = np.column_stack([s[column].to_numpy() for s in series])
            return values.reshape(shape).mean(axis=1)

        return step_means("p_ac_kw"), step_means("t_cell_c")

    def _power(
        self,
        times: pd.DatetimeIndex,
        weather: pd.DataFrame | Mapping[str, np.ndarray],
        geometry: pd.DataFrame | Mapping[str, np.ndarray],
        unit: dict[str, Any],
    ) -> pd.DataFrame:
        site = self.context["site"]
        return pv_plant_power(
            times, weather, site["lat"], site["lon"], site["altitude"], unit, geometry
        )

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """Available AC power (kW) and cell temperature (degC), every step and plant."""
        return self._windows.whole()  # type: ignore[return-value]

    def exogenous(self) -> dict[str, np.ndarray]:
        """Available AC power (kW) of every plant for every step (before derating)."""
        return {"p_kw": self.series()[0]}

    def _fed_weather(
        self, k: int, inputs: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Available power and cell temperature of step ``k`` where weather inputs are given.

        ``None`` when no plant gets a weather input (the precomputed series stand).
        """
        given = {c: inputs[c] for c in WEATHER_COLUMNS if c in inputs}
        if not given or not np.count_nonzero(np.isfinite(np.concatenate(list(given.values())))):
            return None  # no weather input given (NaN): one check for all of them
        fed = np.zeros(self.n, dtype=bool)
        for values in given.values():
            fed |= np.isfinite(values)
        p_avail, t_cell = (values.copy() for values in self._windows.row(k))
        times, file_weather, geometry = self._sample(sub_clock(self.clock, k, 1))
        for i in np.flatnonzero(fed):
            weather = dict(file_weather)
            for column, values in given.items():
                if np.isfinite(values[i]):
                    # irradiance and wind are not negative (as the file's, see weather_at)
                    value = float(values[i])
                    value = value if column == "temp_air" else max(value, 0.0)
                    weather[column] = np.full(self._parts, value)
            series = self._power(times, weather, geometry, self.units[i])
            p_avail[i] = series["p_ac_kw"].mean()
            t_cell[i] = series["t_cell_c"].mean()
        return p_avail, t_cell

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Output of step ``now`` (precomputed, or from the weather inputs), times ``derate``."""
        k = self.clock.index_of(now)
        fed = self._fed_weather(k, inputs)
        p_avail, t_cell = fed if fed is not None else self._windows.row(k)
        derate = np.clip(inputs["derate"], 0.0, 1.0)
        return {"p_kw": p_avail * derate, "p_avail_kw": p_avail, "t_cell_c": t_cell}
