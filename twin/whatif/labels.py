"""KPI tables of the what-if sections, with the labels and units of :data:`twin.kpi.KPI_SPECS`."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from twin.kpi import KPI_SPECS

__all__ = ["kpi_label", "kpi_table"]

_SPECS = {spec.key: spec for spec in KPI_SPECS}


def kpi_label(key: str) -> str:
    """The human label (with its unit) of a KPI; the key itself if it has none."""
    spec = _SPECS.get(key)
    return spec.label if spec else key


def _formatted(key: str, value: float) -> str:
    if value != value:  # NaN: a payback that never comes, a figure without data
        return "n/a"
    spec = _SPECS.get(key)
    return spec.fmt.format(value) if spec else f"{value:,.4g}"


def kpi_table(kpis: dict[str, float], keys: Iterable[str]) -> str:
    """An HTML table of the ``keys`` present in ``kpis``: label (unit) and value."""
    rows = "".join(
        f"<tr><th>{escape(kpi_label(k))}</th><td>{escape(_formatted(k, kpis[k]))}</td></tr>"
        for k in keys
        if k in kpis
    )
    return f"<table class='kpis'>{rows}</table>"
