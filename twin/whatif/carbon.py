r"""Carbon of a run: grid emissions from the exchange and the grid's carbon intensity.

.. math::

    m = \sum_t (G^+_t - c\,G^-_t)\, I_t\, \Delta t / 1000

with import :math:`G^+` and export :math:`G^-` (kW) at the point of connection, the
intensity :math:`I` (gCO2/kWh) of each step, and :math:`c = 1` if exports are credited
(``carbon.credit_exports``: an exported kWh displaces a grid kWh), else 0, less the
change of stored energy :math:`\Delta E` (``e_battery_delta_kwh``, kWh) at the run's
mean intensity :math:`\bar I`:

.. math:: m_{run} = m - \Delta E\, \bar I / 1000

(a battery that ends lower has displaced imports it must import again later; one that
ends higher has imported for later). Emissions are in kgCO2; avoided emissions are the
reference run's minus the run's, both priced with the run's intensity. Per year: times
``365 days / run days``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from twin.results import as_operated, wide
from twin.whatif.reference import Reference, year_factor
from twin.whatif.schema import CARBON_LIMITS

__all__ = [
    "CARBON_KPIS",
    "carbon_kpis",
    "emissions_kg",
    "intensity",
    "stored_energy_kg",
]

#: The KPIs of the ``carbon`` section.
CARBON_KPIS = (
    "co2_kg",
    "co2_year_kg",
    "co2_reference_kg",
    "co2_avoided_kg",
    "co2_avoided_year_kg",
    "carbon_intensity_mean_g_kwh",
)


def intensity(scenario: Any) -> np.ndarray:
    """The grid carbon intensity of every step of the run (gCO2/kWh).

    Raises
    ------
    models.profiles.SeriesFileError
        If the CSV cannot be read, has a gap or does not cover the run.
    """
    carbon = scenario.carbon
    clock = scenario.clock()
    if carbon.intensity_csv is None:
        return np.full(clock.n_steps, float(carbon.intensity_g_kwh))
    from models.profiles import csv_series_means

    return csv_series_means(carbon.intensity_csv, "g_co2_kwh", clock, CARBON_LIMITS)


def exchange_kw(results: pd.DataFrame) -> np.ndarray:
    """Power at the point of connection per step (kW, + import), as the plant operated."""
    return wide(as_operated(results), "grid", "p_kw")["poc"].to_numpy()


def emissions_kg(
    grid_kw: np.ndarray, intensity_g_kwh: np.ndarray, dt_h: float, credit_exports: bool
) -> float:
    """Emissions of a grid exchange (kgCO2); exports subtract only if credited."""
    grid_kw = np.asarray(grid_kw, dtype=float)
    if grid_kw.shape != np.shape(intensity_g_kwh):
        raise ValueError(
            f"{grid_kw.size} steps of exchange but {np.size(intensity_g_kwh)} of intensity"
        )
    counted = grid_kw if credit_exports else np.clip(grid_kw, 0.0, None)
    return float(np.sum(counted * intensity_g_kwh) * dt_h / 1000.0)


def stored_energy_kg(kpis: dict[str, float], intensity_g_kwh: np.ndarray) -> float:
    """Emissions the change of stored energy stands for (kgCO2, + stored energy gained)."""
    return kpis.get("e_battery_delta_kwh", 0.0) * float(np.mean(intensity_g_kwh)) / 1000.0


def carbon_kpis(
    scenario: Any, results: pd.DataFrame, kpis: dict[str, float], reference: Reference
) -> dict[str, float]:
    """The carbon KPIs of a run (its ``kpis``) against its reference (the module's equation)."""
    grid_i = intensity(scenario)
    dt_h, credit = scenario.clock().dt_h, scenario.carbon.credit_exports
    reference_kw = exchange_kw(reference.results)  # the same steps (reference_problem)
    run = emissions_kg(exchange_kw(results), grid_i, dt_h, credit)
    run -= stored_energy_kg(kpis, grid_i)
    ref = emissions_kg(reference_kw, grid_i, dt_h, credit)
    ref -= stored_energy_kg(reference.kpis, grid_i)
    factor = year_factor(scenario)
    return {
        "co2_kg": run,
        "co2_year_kg": run * factor,
        "co2_reference_kg": ref,
        "co2_avoided_kg": ref - run,
        "co2_avoided_year_kg": (ref - run) * factor,
        "carbon_intensity_mean_g_kwh": float(np.mean(grid_i)),
    }
