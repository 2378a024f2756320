r"""The twin's fault-free expectation of every sensor, computed once for all steps.

Weather and load profiles are the twin's exogenous inputs, known before the run: the
expected AC power of every PV plant comes from :class:`models.pv.PVPlant` on the same
weather with no derating, the expected load from :class:`models.load.Load` on its
profile, the POC voltage is the external grid's set point and the frequency nominal.
Quantities the twin cannot expect from exogenous inputs alone (battery power, SoC and
temperature, line loadings) are NaN here; the engine expects them step by step from
the EMS's setpoints and the measured power (:mod:`twin.diagnostics.indices`).

PV expectation is corrected per step for the *measured* module temperature (IEC
61724-1 temperature-corrected performance ratio):

.. math:: P_{exp} = P_{model} \\frac{1 + \\gamma (T_{meas} - 25)}{1 + \\gamma (T_{model} - 25)}

(:func:`temperature_corrected`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.diagnostics.catalogue import Catalogue

__all__ = ["Expectations", "expectations_from", "temperature_corrected"]


@dataclass(frozen=True)
class Expectations:
    """Fault-free expectation of every sensor for every step.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n_steps, n_sensors)``: expected reading, NaN where not known up front.
    t_model : numpy.ndarray
        ``(n_steps, n_sensors)``: the model's cell temperature (degC) in the columns of
        the PV power sensors, NaN elsewhere.
    """

    values: np.ndarray
    t_model: np.ndarray

    @property
    def n_steps(self) -> int:
        """Number of steps."""
        return self.values.shape[0]


def temperature_corrected(
    p_model_kw: np.ndarray, t_model_c: np.ndarray, t_meas_c: np.ndarray, gamma: np.ndarray
) -> np.ndarray:
    r"""The model's PV power at the measured module temperature.

    .. math::
        P_{exp} = P_{model} \frac{1 + \gamma (T_{meas} - 25)}{1 + \gamma (T_{model} - 25)}

    Where the measured temperature is NaN the model's power stands.

    Parameters
    ----------
    p_model_kw : numpy.ndarray
        The model's AC power (kW).
    t_model_c, t_meas_c : numpy.ndarray
        The model's and the measured cell temperature (degC).
    gamma : numpy.ndarray
        Power temperature coefficient (1/K, negative).

    References
    ----------
    .. [1] IEC 61724-1:2021, Photovoltaic system performance - Part 1: Monitoring,
       clause 10 (temperature-corrected performance ratio).
    """
    ratio = (1.0 + gamma * (t_meas_c - 25.0)) / (1.0 + gamma * (t_model_c - 25.0))
    return np.where(np.isfinite(ratio), p_model_kw * ratio, p_model_kw)


def _model_series(scenario: Any) -> dict[tuple[str, str, str], np.ndarray]:
    """Exogenous series of the PV plants and loads, by (asset, kind, quantity)."""
    from models.load import Load
    from models.pv import PVPlant
    from twin.assembly import context as model_context

    # the units and context the run's models were built with (as twin.assembly gives
    # them, without planning a world: no mosaik import for an offline diagnosis)
    clock = scenario.clock()
    context = model_context(
        site=scenario.site.model_dump(),
        grid=scenario.grid.model_dump(),
        weather=scenario.weather,
        seed=scenario.seed,
    )
    series: dict[tuple[str, str, str], np.ndarray] = {}
    pv_units = scenario.units("pv")
    if pv_units:
        plant = PVPlant(pv_units, clock, context)
        derate = {"derate": np.ones(plant.n)}
        t_cell = np.empty((clock.n_steps, plant.n))
        p_kw = np.empty((clock.n_steps, plant.n))
        for k, now in enumerate(clock.times):
            out = plant.step(now.to_pydatetime(), clock.step_s, derate)
            p_kw[k], t_cell[k] = out["p_kw"], out["t_cell_c"]
        for i, unit in enumerate(pv_units):
            series[(unit["name"], "pv", "p_kw")] = p_kw[:, i]
            series[(unit["name"], "pv", "t_model")] = t_cell[:, i]
    load_units = scenario.units("load")
    if load_units:
        nominal = Load(load_units, clock, context).exogenous()
        for i, unit in enumerate(load_units):
            series[(unit["name"], "load", "p_kw")] = nominal["p_kw"][:, i]
            series[(unit["name"], "load", "q_kvar")] = nominal["q_kvar"][:, i]
    return series


def expectations_from(scenario: Any, catalogue: Catalogue) -> Expectations:
    """The fault-free expectation of every sensor of ``catalogue`` over the run.

    Parameters
    ----------
    scenario : twin.scenario.Scenario
        The resolved scenario of the run.
    catalogue : Catalogue
        The run's sensors.
    """
    n_steps = scenario.clock().n_steps
    values = np.full((n_steps, len(catalogue.sensors)), np.nan)
    t_model = np.full_like(values, np.nan)
    series = _model_series(scenario)
    grid = catalogue.assets["poc"].ratings
    for j, sensor in enumerate(catalogue.sensors):
        if sensor.key in series:
            values[:, j] = series[sensor.key]
        if sensor.kind == "pv" and sensor.quantity == "p_kw":
            t_model[:, j] = series[(sensor.asset, "pv", "t_model")]
        elif sensor.asset == grid.get("slack_bus") and sensor.quantity == "v_pu":
            values[:, j] = grid["v_nom_pu"]
        elif sensor.kind == "grid" and sensor.quantity == "f_hz":
            values[:, j] = grid["f_nom_hz"]
    return Expectations(values, t_model)
