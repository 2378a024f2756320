"""Many plants: a fleet file runs several sites on one clock (``twin run FLEET.yaml``).

:mod:`twin.fleet.spec` reads and validates the file, :mod:`twin.fleet.world` runs the
sites in one mosaik world, :mod:`twin.fleet.run` runs them (in one world, or apart on
the campaign executor) into one fleet run directory and :mod:`twin.fleet.combine`
combines their results and KPIs.
"""

from twin.fleet.run import FleetError, FleetResult, run_fleet
from twin.fleet.spec import Fleet, FleetSite, is_fleet, load_fleet, site_seed, validate_fleet

__all__ = [
    "Fleet",
    "FleetError",
    "FleetResult",
    "FleetSite",
    "is_fleet",
    "load_fleet",
    "run_fleet",
    "site_seed",
    "validate_fleet",
]
