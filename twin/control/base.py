"""What every battery controller shares: its ports and its element groups."""

from __future__ import annotations

from typing import Any

from models.base import Clock, Model, Port

__all__ = ["SETPOINT", "SITE_NET", "SOC", "BatteryController"]

SITE_NET = Port("kW", "net PV + load power at the site (> 0 surplus)", group="site")
SOC = Port("1", "measured state of charge of the battery", default=0.5)
SETPOINT = Port("kW", "battery power setpoint (> 0 discharge)")


class BatteryController(Model):
    """Base of battery controllers.

    One element per battery it dispatches and one ``site`` element for site-wide
    measurements. Units are the batteries' scenario parameters; ``p_set_kw`` is their setpoint.
    """

    kind = "controller"
    inputs: dict[str, Port] = {"p_kw": SITE_NET, "soc": SOC}
    outputs = {"p_set_kw": SETPOINT}

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        self.elements["site"] = ["site"]
        self.control: dict[str, Any] = self.context.get("control", {})
