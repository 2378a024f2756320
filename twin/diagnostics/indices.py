"""The seven health indices: 0 (failed) .. 1 (healthy) per asset and step, NaN when undefined.

Each is a pure function of arrays (one value per asset); the battery's are fed by
:class:`twin.diagnostics.battery.BatteryTracker`. The data-quality index per sensor is
in :mod:`twin.diagnostics.quality`; an asset's is the lowest of its sensors'.
"""

from __future__ import annotations

import numpy as np

from twin.diagnostics.arrays import ratio, unit

__all__ = [
    "INDEX_NAMES",
    "converter_availability_battery",
    "converter_availability_pv",
    "pv_performance",
    "soc_consistency",
    "soh_estimate",
    "thermal_stress",
    "voltage_band",
]

#: The index names, in the order of the engine's arrays (``health.parquet`` quantities).
INDEX_NAMES = (
    "pv_performance",
    "soh_estimate",
    "thermal_stress",
    "soc_consistency",
    "converter_availability",
    "voltage_band",
    "data_quality",
)


_ratio = ratio


def pv_performance(
    p_meas_kw: np.ndarray, p_exp_kw: np.ndarray, p_ac_kw: np.ndarray, daylight: float = 0.05
) -> np.ndarray:
    r"""Performance index of PV plants: measured over expected AC power.

    .. math:: PI = \mathrm{clip}(P_{meas} / P_{exp}, 0, 1)

    with :math:`P_{exp}` the twin's output for the same weather at the measured module
    temperature (:func:`twin.diagnostics.expected.temperature_corrected`). NaN where
    :math:`P_{exp}` is below ``daylight`` times the AC rating (night, dawn: IEC 61724-1
    filters low-irradiance periods out of the performance ratio the same way).

    References
    ----------
    .. [1] IEC 61724-1:2021, Photovoltaic system performance - Part 1: Monitoring,
       clause 10 (performance ratio, temperature-corrected).
    """
    day = p_exp_kw >= daylight * p_ac_kw
    return np.where(day, unit(_ratio(p_meas_kw, p_exp_kw)), np.nan)


def converter_availability_pv(
    p_meas_kw: np.ndarray, p_exp_kw: np.ndarray, p_ac_kw: np.ndarray, daylight: float = 0.05
) -> np.ndarray:
    r"""Availability of a PV inverter: 1 while it delivers, 0 when it delivers nothing.

    .. math:: A = \mathrm{clip}(P_{meas} / (0.1 P_{exp}), 0, 1)

    in daylight (as :func:`pv_performance`), NaN at night: an inverter delivering a
    tenth of the expected power is available (the rest is the performance index's).

    References
    ----------
    .. [1] IEC 61724-3:2016, Photovoltaic system performance - Part 3: Energy
       evaluation method (availability as delivered while the resource is present).
    """
    day = p_exp_kw >= daylight * p_ac_kw
    return np.where(day, unit(_ratio(p_meas_kw, 0.1 * p_exp_kw)), np.nan)


def converter_availability_battery(
    p_meas_kw: np.ndarray, p_cmd_kw: np.ndarray, p_max_kw: np.ndarray, active: float = 0.05
) -> np.ndarray:
    r"""Availability of a battery converter: delivered over commanded power.

    .. math:: A = \mathrm{clip}(P_{meas} / P_{cmd}, 0, 1)

    with :math:`P_{cmd}` the EMS setpoint limited by the rating and the SoC window
    (:func:`models.battery.limit_power`), NaN while :math:`|P_{cmd}|` is below
    ``active`` times the rating (nothing asked, nothing to judge).

    References
    ----------
    .. [1] IEC 61724-3:2016 (availability: energy delivered over energy requested).
    """
    asked = np.abs(p_cmd_kw) >= active * p_max_kw
    return np.where(asked, unit(_ratio(p_meas_kw, p_cmd_kw)), np.nan)


def thermal_stress(
    t_meas_c: np.ndarray, t_derate_c: np.ndarray, t_trip_c: np.ndarray, margin_k: float = 10.0
) -> np.ndarray:
    r"""Thermal health of a battery: 1 well below derating, 0 at the trip temperature.

    .. math:: \Theta = \mathrm{clip}\left(\frac{T_{trip} - T}{T_{trip} - (T_{derate} - m)},
        0, 1\right)

    with the margin :math:`m` (10 K): the index is 1 up to 10 K below the derating
    temperature, about 0.5 where derating begins and 0 where the converter trips (the
    battery model's ``t_derate_c``/``t_trip_c``).

    References
    ----------
    .. [1] IEC 62619:2022, Safety requirements for secondary lithium cells and batteries
       for use in industrial applications (upper temperature limit of operation).
    """
    return unit(_ratio(t_trip_c - t_meas_c, t_trip_c - (t_derate_c - margin_k)))


def soc_consistency(residual: np.ndarray, tolerance: float = 0.1) -> np.ndarray:
    r"""Agreement of the reported SoC with the SoC integrated from measured power.

    .. math:: C = \mathrm{clip}(1 - |SoC_{meas} - SoC_{int}| / \tau, 0, 1)

    :math:`SoC_{int}` is the Coulomb-counting estimate of
    :class:`twin.diagnostics.battery.BatteryTracker` (measured power, efficiencies,
    nameplate capacity; slowly pulled to the reported SoC); :math:`\tau` = 0.1 (10 SoC
    points: 0 at that discrepancy).

    References
    ----------
    .. [1] Plett, G. L., "Battery Management Systems, Vol. II: Equivalent-Circuit
       Methods", Artech House, 2015, ch. 3 (Coulomb counting and its consistency).
    """
    return unit(1.0 - np.abs(residual) / tolerance)


def soh_estimate(capacity_kwh: np.ndarray, e_kwh: np.ndarray) -> np.ndarray:
    r"""Estimated state of health: capacity from charge throughput over the nameplate.

    .. math:: SoH = \mathrm{clip}(\hat C / E_{nom}, 0, 1)

    :math:`\hat C` is the least-squares slope of cell energy throughput over measured
    SoC swings (:class:`twin.diagnostics.battery.BatteryTracker`); NaN until a swing
    has been measured.

    References
    ----------
    .. [1] Plett, G. L., "Recursive approximate weighted total least squares estimation
       of battery cell total capacity", J. Power Sources 196(4), 2011.
    """
    return unit(_ratio(capacity_kwh, e_kwh))


def voltage_band(v_pu: np.ndarray, v_min_pu: float, v_max_pu: float) -> np.ndarray:
    r"""Voltage-band health of buses: 1 in the inner half of the band, 0 at its limits.

    .. math::
        B = \begin{cases}
        \mathrm{clip}((v - v_{min}) / (v_{lo} - v_{min}), 0, 1) & v < v_{lo} \\
        \mathrm{clip}((v_{max} - v) / (v_{max} - v_{hi}), 0, 1) & v > v_{hi} \\
        1 & \text{else}
        \end{cases}

    with the inner band :math:`v_{lo} = 1 - (1 - v_{min})/2`,
    :math:`v_{hi} = 1 + (v_{max} - 1)/2` (0.95..1.05 pu for the EN 50160 band
    0.90..1.10 pu).

    References
    ----------
    .. [1] EN 50160:2010, Voltage characteristics of electricity supplied by public
       distribution networks (supply voltage variations +-10 %).
    """
    lo = 1.0 - (1.0 - v_min_pu) / 2.0
    hi = 1.0 + (v_max_pu - 1.0) / 2.0
    low = unit((v_pu - v_min_pu) / (lo - v_min_pu))
    high = unit((v_max_pu - v_pu) / (v_max_pu - hi))
    out = np.where(v_pu < lo, low, np.where(v_pu > hi, high, 1.0))
    return np.where(np.isnan(v_pu), np.nan, out)
