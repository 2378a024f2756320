"""Human labels of every KPI a run can report, with its unit and number format.

The core KPIs have theirs in :data:`twin.kpi.KPI_SPECS`. Components add KPIs of their
own with keys made of a prefix, an asset and a quantity (``device_fallback_steps_bess``,
``residual_rmse_bess_p_kw`` from the MQTT devices, ``ingest_late`` from the ingest
adapter): :func:`kpi_spec` labels them from :data:`PATTERNS`, and any other key from
its unit suffix, so that a report never shows a raw key.
"""

from __future__ import annotations

import re

from twin.kpi import KPI_SPECS, KpiSpec

__all__ = ["PATTERNS", "UNIT_SUFFIXES", "format_kpi", "kpi_spec", "quantity_label"]

#: Key suffix -> unit shown in brackets.
UNIT_SUFFIXES = {
    "kwh": "kWh",
    "kw": "kW",
    "kvar": "kvar",
    "eur": "EUR",
    "eur_kwh": "EUR/kWh",
    "pct": "%",
    "pu": "pu",
    "c": "degC",
    "hz": "Hz",
    "s": "s",
    "h": "h",
}

#: Measured quantities by their key (residual and device KPIs name them).
QUANTITIES = {
    "p_kw": "power (kW)",
    "q_kvar": "reactive power (kvar)",
    "soc": "SoC",
    "soh": "SoH",
    "t_c": "temperature (degC)",
    "e_kwh": "stored energy (kWh)",
    "v_pu": "voltage (pu)",
    "p_avail_kw": "available power (kW)",
    "loading_pct": "loading (%)",
}

_ASSET_QUANTITY = (
    r"(?P<asset>.+?)_(?P<quantity>" + "|".join(sorted(QUANTITIES, key=len)[::-1]) + ")"
)

#: Component KPI key patterns -> (label template, number format).
PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"residual_rmse_" + _ASSET_QUANTITY),
        "Residual RMS, {asset} {quantity}, device - twin",
        "{:,.4g}",
    ),
    (
        re.compile(r"residual_bias_" + _ASSET_QUANTITY),
        "Residual bias, {asset} {quantity}, device - twin",
        "{:,.4g}",
    ),
    (
        re.compile(r"residual_max_abs_" + _ASSET_QUANTITY),
        "Largest residual, {asset} {quantity}",
        "{:,.4g}",
    ),
    (
        re.compile(r"device_fallback_steps_(?P<asset>.+)"),
        "Device {asset}: steps on the model (no fresh measurement)",
        "{:.0f}",
    ),
    (
        re.compile(r"device_fallback_share_(?P<asset>.+)"),
        "Device {asset}: share of steps on the model",
        "{:.1%}",
    ),
    (
        re.compile(r"mqtt_malformed_(?P<asset>.+)"),
        "Device {asset}: malformed MQTT payloads",
        "{:.0f}",
    ),
    (re.compile(r"mqtt_published"), "MQTT messages published", "{:,.0f}"),
    (re.compile(r"mqtt_dropped"), "MQTT messages lost (dropped or unacknowledged)", "{:,.0f}"),
    (re.compile(r"ingest_(?P<what>\w+)"), "Plant data ingested: {what} values", "{:,.0f}"),
)

_SPECS = {spec.key: spec for spec in KPI_SPECS}


def quantity_label(quantity: str) -> str:
    """A quantity key as words (``p_kw`` -> ``power (kW)``)."""
    return QUANTITIES.get(quantity) or _words(quantity)


def _words(key: str) -> str:
    """Any key as words with its unit: ``wear_eur`` -> ``Wear (EUR)``."""
    parts = key.split("_")
    for n in (2, 1):  # the longest unit suffix first (eur_kwh before kwh)
        suffix = "_".join(parts[-n:])
        if len(parts) > n and suffix in UNIT_SUFFIXES:
            text = " ".join(parts[:-n])
            return f"{text[:1].upper()}{text[1:]} ({UNIT_SUFFIXES[suffix]})"
    text = " ".join(parts)
    return f"{text[:1].upper()}{text[1:]}"


def kpi_spec(key: str) -> KpiSpec:
    """Label and format of a KPI key: its spec, a component pattern, or its words."""
    if key in _SPECS:
        return _SPECS[key]
    for pattern, template, fmt in PATTERNS:
        match = pattern.fullmatch(key)
        if match:
            fields = match.groupdict()
            if "quantity" in fields:
                fields["quantity"] = quantity_label(fields["quantity"])
            if "what" in fields:
                fields["what"] = fields["what"].replace("_", " ")
            return KpiSpec(key, template.format(**fields), fmt)
    return KpiSpec(key, _words(key), "{:,.4g}")


def format_kpi(key: str, value: float | None) -> str:
    """A KPI value in its format (``n/a`` for NaN or missing)."""
    if value is None or value != value:
        return "n/a"
    return kpi_spec(key).fmt.format(value)
