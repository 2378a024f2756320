"""What every battery controller shares: its ports and its element groups."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.base import Clock, Model, Port

__all__ = [
    "EV_INPUTS",
    "EV_SETPOINT",
    "SETPOINT",
    "SITE_NET",
    "SOC",
    "BatteryController",
    "SiteController",
]

SITE_NET = Port("kW", "net PV + load power at the site (> 0 surplus)", group="site")
SOC = Port("1", "measured state of charge of the battery", default=0.5)
SETPOINT = Port("kW", "battery power setpoint (> 0 discharge)")
#: What a controller measures of each EV charger (the state at the start of the step).
EV_INPUTS = {
    "connected": Port("1", "an EV is plugged in", group="charger"),
    "e_needed_kwh": Port("kWh", "energy the EV still needs (battery side)", group="charger"),
    "t_departure_h": Port("h", "time until the EV departs", group="charger"),
}
EV_SETPOINT = Port("kW", "EV charging setpoint (>= 0, grid side)", group="charger")


class BatteryController(Model):
    """Base of battery controllers.

    One element per battery it dispatches and one ``site`` element for site-wide
    measurements. Units are the batteries' scenario parameters; ``p_set_kw`` is their
    setpoint.
    """

    kind = "controller"
    inputs: dict[str, Port] = {"p_kw": SITE_NET, "soc": SOC}
    outputs = {"p_set_kw": SETPOINT}

    @classmethod
    def element_names(
        cls, units: list[dict[str, Any]], context: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """One element per battery and the ``site``."""
        return {**super().element_names(units, context), "site": ["site"]}

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.elements["site"] = ["site"]
        self.control: dict[str, Any] = self.context.get("control", {})


class SiteController(BatteryController):
    """Base of controllers that dispatch batteries and EV chargers.

    Chargers come from ``context["chargers"]`` (``name``, ``p_max_kw``, ``efficiency``),
    one ``charger`` element each, with their measured state and a setpoint.
    """

    inputs = {"p_kw": SITE_NET, "soc": SOC, **EV_INPUTS}
    outputs = {"p_set_kw": SETPOINT, "p_ev_set_kw": EV_SETPOINT}

    @classmethod
    def element_names(
        cls, units: list[dict[str, Any]], context: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """Batteries and the site, and one element per charger of ``context``."""
        chargers = (context or {}).get("chargers", [])
        return {**super().element_names(units, context), "charger": [c["name"] for c in chargers]}

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.chargers: list[dict[str, Any]] = self.context.get("chargers", [])
        self.elements["charger"] = [c["name"] for c in self.chargers]
        self.ev_p_max_kw = np.array([c["p_max_kw"] for c in self.chargers], dtype=float)
        self.ev_efficiency = np.array([c["efficiency"] for c in self.chargers], dtype=float)
