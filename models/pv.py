"""Photovoltaic plants composed from pvlib's physical functions.

The chain per plant is: solar position -> plane-of-array transposition (Hay-Davies)
-> angle-of-incidence loss (physical IAM) -> SAPM cell temperature -> PVWatts DC model
-> PVWatts system losses -> PVWatts inverter with clipping at its AC rating.

Everything that does not depend on the co-simulation loop (the whole weather-driven
chain) is computed once for all steps at construction; :meth:`PVPlant.step` only
indexes the precomputed series and applies the loop inputs (curtailment/derating).

Sign convention: ``p_kw`` > 0 is power fed into the plant's bus.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock, Model, Port
from models.weather import weather_at

__all__ = ["SAPM_TEMPERATURE_MODELS", "WEATHER_RESOLUTION_S", "PVPlant", "pv_plant_power"]

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


def pv_plant_power(
    times: pd.DatetimeIndex,
    weather: pd.DataFrame,
    latitude: float,
    longitude: float,
    altitude: float,
    plant: dict[str, Any],
) -> pd.DataFrame:
    """AC and DC power of one plant over ``times``.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        Tz-aware times.
    weather : pandas.DataFrame
        ``ghi``, ``dni``, ``dhi`` (W/m2), ``temp_air`` (degC), ``wind_speed`` (m/s).
    latitude, longitude : float
        Site position in degrees.
    altitude : float
        Site altitude in metres.
    plant : dict
        ``p_dc_kw`` (array rating at STC), ``p_ac_kw`` (inverter AC rating),
        ``tilt_deg``, ``azimuth_deg`` (180 = south), ``gamma_pdc`` (1/K),
        ``eta_inv_nom``, ``losses_pct`` (PVWatts system losses), ``albedo``,
        ``temperature_model`` (a key of pvlib's SAPM parameter table).

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
    import pvlib  # here, not at the top: validation imports this module, not pvlib

    solpos = pvlib.solarposition.get_solarposition(times, latitude, longitude, altitude)
    dni_extra = pvlib.irradiance.get_extra_radiation(times)
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=plant["tilt_deg"],
        surface_azimuth=plant["azimuth_deg"],
        solar_zenith=solpos["apparent_zenith"],
        solar_azimuth=solpos["azimuth"],
        dni=weather["dni"],
        ghi=weather["ghi"],
        dhi=weather["dhi"],
        dni_extra=dni_extra,
        model="haydavies",
        albedo=plant["albedo"],
    ).fillna(0.0)
    aoi = pvlib.irradiance.aoi(
        plant["tilt_deg"], plant["azimuth_deg"], solpos["apparent_zenith"], solpos["azimuth"]
    )
    iam = pvlib.iam.physical(aoi)
    effective = poa["poa_direct"] * iam + poa["poa_diffuse"]
    temp_params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][plant["temperature_model"]]
    t_cell = pvlib.temperature.sapm_cell(
        poa["poa_global"], weather["temp_air"], weather["wind_speed"], **temp_params
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


class PVPlant(Model):
    """A fleet of PV plants (one unit per plant).

    Parameters per unit are those of :func:`pv_plant_power`. The weather file and
    the site come from the run context (``context["weather"]``, ``context["site"]``).
    """

    kind = "pv"
    inputs = {
        "derate": Port("1", "available fraction of the plant's output (1 = no limit)", default=1.0),
    }
    outputs = {
        "p_kw": Port("kW", "AC power fed into the bus (> 0)"),
        "p_avail_kw": Port("kW", "AC power the plant could deliver without derating"),
        "t_cell_c": Port("degC", "cell temperature"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        site = self.context["site"]
        # The output stands for the step's mean: evaluate at the middle of each step, or
        # of equal parts of it no longer than the weather's hour for longer steps.
        parts = -(-clock.step_s // WEATHER_RESOLUTION_S)
        offsets = (np.arange(parts) + 0.5) * clock.step_s / parts
        times = clock.times.repeat(parts) + pd.to_timedelta(
            np.tile(offsets, clock.n_steps), unit="s"
        )
        times = times.tz_convert(site["tz"])
        weather = weather_at(times, self.context["weather"])
        series = [
            pv_plant_power(times, weather, site["lat"], site["lon"], site["altitude"], u)
            for u in units
        ]

        def step_means(column: str) -> np.ndarray:
            values = np.column_stack([s[column].to_numpy() for s in series])
            return values.reshape(clock.n_steps, parts, len(units)).mean(axis=1)

        # (n_steps, n_units) arrays: the loop only indexes them.
        self._p_avail_kw = step_means("p_ac_kw")
        self._t_cell_c = step_means("t_cell_c")

    def exogenous(self) -> dict[str, np.ndarray]:
        """Available AC power (kW) of every plant for every step (before derating)."""
        return {"p_kw": self._p_avail_kw}

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Deliver the precomputed output of step ``now``, scaled by ``derate``."""
        k = self.clock.index_of(now)
        p_avail = self._p_avail_kw[k]
        derate = np.clip(inputs["derate"], 0.0, 1.0)
        return {"p_kw": p_avail * derate, "p_avail_kw": p_avail, "t_cell_c": self._t_cell_c[k]}
