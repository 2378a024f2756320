"""The bounds of the scenario schema: finite, physically plausible numbers and safe names.

A value outside a bound is a typo or a unit slip (kWh for Wh, EUR/MWh for EUR/kWh), not
a study: widen a bound here, deliberately, when a real case needs it. Every number of a
scenario goes through :func:`bounded` or :func:`whole` (finite, in range, no booleans).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from models.tariff import PRICE_MAX_EUR_KWH as TARIFF_PRICE_MAX
from twin.limits import NAME_MAX, asset_name_problems, name_problems, output_dir_problems

__all__ = [
    "AssetName",
    "Efficiency",
    "Fraction",
    "OutputDir",
    "PowerKw",
    "Price",
    "SafeName",
    "bounded",
    "whole",
]

# Units in the names.
MAX_POWER_KW = 1e7  # 10 GW: larger than any single plant
MAX_ENERGY_KWH = 1e7  # 10 GWh: larger than any single battery
MIN_ENERGY_KWH = 0.01  # 10 Wh
C_RATE_PER_H = (0.01, 20.0)  # battery p_max_kw / e_kwh: 100 h storage .. 3-minute power cell
DC_AC_RATIO = (0.5, 3.0)  # PV p_dc_kw / p_ac_kw
EV_CAPACITY_MAX_KWH = 2000.0  # an electric truck or bus
PRICE_MAX_EUR_KWH = TARIFF_PRICE_MAX  # beyond, someone wrote EUR/MWh
#: assets of one kind, devices: SimBench's 1-MVLV-urban-all-0-sw alone has 11,542 loads
MAX_UNITS = 100_000
MAX_TEXT = 4096  # any text field (paths, URLs, names)
MAX_DESCRIPTION = 10_000  # characters; run.json copies it
MAX_DURATION_S = 10_000 * 86400  # about 27 years
MAX_HORIZON_S = 31 * 86400  # planning horizon of the controllers
START_YEARS = (1900, 2200)  # pandas time stamps span 1677..2262
#: Fault severities that mean something (models.faults: what each kind does with it).
SEVERITY_RANGES = {
    "pv_shading": (0.0, 1.0),  # output x (1 - severity)
    "pv_string_outage": (0.0, 1.0),  # fraction of strings out
    "capacity_fade": (0.0, 1.0),  # capacity x (1 - severity)
    "battery_cooling_failure": (0.0, 1.0),  # thermal resistance / (1 - severity)
    "soc_misreport": (-1.0, 1.0),  # SoC offset
    "sensor_noise": (0.0, 1000.0),  # a standard deviation
    "voltage_sag": (0.0, 0.9),  # POC voltage x (1 - severity)
    "voltage_spike": (0.0, 0.5),  # POC voltage x (1 + severity)
    "frequency_event": (-5.0, 5.0),  # Hz
    "load_spike": (-1.0, 100.0),  # load x (1 + severity)
}


def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number belongs (pydantic would read 1/0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value}")
    return value


def bounded(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    """A finite float in ``[low, high]`` (open at an end with ``low_open``/``high_open``)."""
    bounds = Field(
        **({"gt": low} if low_open else {"ge": low}),
        **({"lt": high} if high_open else {"le": high}),
    )
    return Annotated[float, BeforeValidator(_not_bool), bounds]


def whole(low: int, high: int) -> Any:
    """A whole number in ``[low, high]``."""
    return Annotated[int, BeforeValidator(_not_bool), Field(ge=low, le=high)]


def _safe_name(value: str) -> str:
    """A scenario name that is one safe path component (:func:`twin.limits.name_problems`)."""
    problems = name_problems(value)
    if problems:
        raise ValueError(problems[0])
    return value


def _asset_name(value: str) -> str:
    """An asset name that is an identifier."""
    problems = asset_name_problems(value)
    if problems:
        raise ValueError(problems[0])
    return value


def _output_dir(value: str) -> str:
    """An output directory template below the working directory."""
    problems = output_dir_problems(value)
    if problems:
        raise ValueError(problems[0])
    return value


Fraction = bounded(0.0, 1.0)
#: Conversion efficiencies below 50 % are not a real converter.
Efficiency = bounded(0.5, 1.0)
#: Powers of one asset: up to 10 GW.
PowerKw = bounded(0.0, MAX_POWER_KW, low_open=True)
#: Prices: negative prices happen; above 100 EUR/kWh is a typo for EUR/MWh.
Price = bounded(-PRICE_MAX_EUR_KWH, PRICE_MAX_EUR_KWH)
AssetName = Annotated[str, AfterValidator(_asset_name)]
#: Names: one safe path component; an identifier; a run directory below the working dir.
SafeName = Annotated[str, Field(max_length=NAME_MAX), AfterValidator(_safe_name)]
OutputDir = Annotated[str, AfterValidator(_output_dir)]
