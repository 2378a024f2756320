"""Schema of the ``economics`` and ``carbon`` sections (what-if studies)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from twin.bounds import bounded, whole
from twin.scenario import Strict

__all__ = ["CARBON_LIMITS", "CarbonSpec", "EconomicsSpec"]

#: Accepted grid carbon intensities (gCO2/kWh): the dirtiest lignite plant is ~1,200.
CARBON_LIMITS = (0.0, 2000.0)

#: Capital cost per unit of rating (EUR per kWh, kW or kWp).
UnitCost = bounded(0.0, 100_000.0)
#: A path to a file or directory.
PathText = Annotated[str, Field(min_length=1, max_length=1000)]


class EconomicsSpec(Strict):
    """Money of the investment: capital, lifetime, discount rate, O&M, reference run.

    The investment is the battery and PV units named in ``invest`` (default: every
    battery and PV plant of the scenario), priced per kWh and kW
    of storage and per kWp (DC) of PV; its savings are the operating cost it avoids
    against the reference run, scaled to a year. ``reference_run``: the directory of a
    finished run of the site without the investment; unset, that run is made beside this
    one (``<run>/reference``: the same scenario without the invested assets, their
    faults, and the controller if no battery is left).
    """

    battery_eur_kwh: UnitCost = 0.0
    battery_eur_kw: UnitCost = 0.0
    pv_eur_kwp: UnitCost = 0.0
    lifetime_years: whole(1, 100) = 20
    discount_rate: bounded(0.0, 1.0) = 0.05
    om_eur_year: bounded(0.0, 1e9) = 0.0
    reference_run: PathText | None = None
    invest: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None


class CarbonSpec(Strict):
    """Grid carbon intensity (gCO2/kWh): a constant or a CSV time series, not both.

    ``intensity_csv`` has columns ``time`` (ISO 8601) and ``g_co2_kwh``, each value
    holding until the next stamp (read like every other series of the twin).
    ``credit_exports``: an exported kWh is credited at the intensity of its step (it
    displaces grid generation); off by default (only imports count).
    """

    intensity_g_kwh: bounded(*CARBON_LIMITS) | None = None
    intensity_csv: PathText | None = None
    credit_exports: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> CarbonSpec:
        if (self.intensity_g_kwh is None) == (self.intensity_csv is None):
            raise ValueError("expected exactly one of intensity_g_kwh and intensity_csv")
        return self
