"""The sections of a run's report (and of a comparison), in page order.

Each is a :class:`~twin.reporting.page.Section`: an id (DOM id ``sec-<id>``), a title
and ``build(runs) -> Content | Absent``. Add a section by listing it here; it receives
the same runs (one, or several compared) as every other section.
"""

from __future__ import annotations

from twin.reporting.observed import alerts_section, health_section, measured_section
from twin.reporting.page import Section
from twin.reporting.series import (
    ev_section,
    loading_section,
    power_section,
    prices_section,
    pv_section,
    soc_section,
    voltage_section,
)
from twin.reporting.summary import kpi_section, summary_section
from twin.reporting.whatif import carbon_report, economics_report

__all__ = ["SECTIONS"]

#: The report's sections, in page order.
SECTIONS: list[Section] = [
    Section("summary", "What ran", summary_section),
    Section("kpis", "Key performance indicators", kpi_section),
    Section("power", "Power flows", power_section),
    Section("pv", "PV per plant", pv_section),
    Section("soc", "Battery state of charge", soc_section),
    Section("voltages", "Bus voltages", voltage_section),
    Section("loading", "Line and transformer loading", loading_section),
    Section("prices", "Prices", prices_section),
    Section("ev", "EV charging", ev_section),
    Section("measured", "Measured vs twin", measured_section),
    Section("health", "Health indices", health_section),
    Section("alerts", "Alert episodes", alerts_section),
    Section("economics", "Economics", economics_report),
    Section("carbon", "Carbon", carbon_report),
]
