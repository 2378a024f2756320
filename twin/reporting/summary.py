"""The page's tables: what ran (scenario summary, one column per run) and the KPIs.

:func:`summary_section` answers "what ran": site, grid and its voltage band, assets with
their ratings, tariff, controller with its forecaster or policy, faults, seed, versions,
run id and status. :func:`kpi_section` lists every KPI with its human label and unit
(:func:`twin.reporting.labels.kpi_spec`); with several runs, each run after the first
has a column of its change against the first (``data-delta`` holds the number).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from twin.kpi import KPI_SPECS
from twin.reporting.labels import format_kpi, kpi_spec
from twin.reporting.page import Content
from twin.reporting.runs import RunData
from twin.whatif.assumptions import assumptions_summary

__all__ = ["kpi_deltas", "kpi_section", "summary_rows", "summary_section"]

#: A change in % of the first run's value is shown up to this (beyond, the first run's
#: value is next to nothing and the share says nothing).
MAX_SHARE_PCT = 1000.0


def _num(value: Any, unit: str = "") -> str:
    try:
        text = f"{float(value):,.4g}"
    except (TypeError, ValueError):
        return str(value)
    return f"{text} {unit}".strip()


def _assets(scenario: dict[str, Any]) -> list[str]:
    """One line per asset (loads summed), with its ratings."""
    assets = scenario.get("assets") or {}
    lines = []
    for unit in assets.get("pv") or []:
        ac = f" / {_num(unit['p_ac_kw'], 'kW')} AC" if unit.get("p_ac_kw") else ""
        lines.append(
            f"PV {unit['name']}: {_num(unit['p_dc_kw'], 'kWp')}{ac}, tilt "
            f"{_num(unit.get('tilt_deg'))} deg, azimuth {_num(unit.get('azimuth_deg'))} deg, "
            f"bus {unit.get('bus')}"
        )
    for unit in assets.get("battery") or []:
        lines.append(
            f"battery {unit['name']}: {_num(unit['e_kwh'], 'kWh')}, "
            f"{_num(unit['p_max_kw'], 'kW')}, SoC window {_num(unit.get('soc_min'))}.."
            f"{_num(unit.get('soc_max'))}, SoH {_num(unit.get('soh_init'))}, bus {unit.get('bus')}"
        )
    for unit in assets.get("ev") or []:
        lines.append(
            f"EV park {unit['name']}: {unit.get('chargers')} charger(s) of "
            f"{_num(unit.get('p_max_kw'), 'kW')}, bus {unit.get('bus')}"
        )
    loads = assets.get("load") or []
    if loads:
        total = sum(float(u.get("p_kw") or 0.0) for u in loads)
        lines.append(f"{len(loads)} load(s), {_num(total, 'kW')} rated in total")
    known = {"pv", "battery", "ev", "load"}
    for kind in sorted(set(assets) - known):
        for unit in assets[kind] or []:
            lines.append(f"{kind} {unit.get('name', '?')}")
    return lines


def _tariff(scenario: dict[str, Any]) -> str:
    tariff = scenario.get("tariff") or {}
    text = (
        f"import {_num(tariff.get('import_eur_kwh'), 'EUR/kWh')}, "
        f"export {_num(tariff.get('export_eur_kwh'), 'EUR/kWh')}"
    )
    for period in tariff.get("periods") or []:
        text += (
            f"; {period.get('start')}-{period.get('end')} import "
            f"{_num(period.get('import_eur_kwh'), 'EUR/kWh')}"
        )
    if tariff.get("price_csv"):
        text += f"; prices from {tariff['price_csv']}"
    if tariff.get("demand_charge_eur_kw"):
        text += f"; demand charge {_num(tariff['demand_charge_eur_kw'], 'EUR/kW')}"
    return text


def _faults(run: RunData) -> list[str]:
    if run.faults:
        return [
            f"{f['kind']} on {f['target']}: {run.local([f['start']])[0]} to "
            f"{run.local([f['end']])[0]}, severity {_num(f.get('severity'))}"
            for f in run.faults
        ]
    return [
        f"{f.get('kind')} on {f.get('target')} from {f.get('start')}"
        for f in run.scenario.get("faults") or []
    ]


def _status(run: RunData) -> list[str]:
    lines = [run.outcome.headline]
    checks = run.meta.get("checks")
    passed = checks.get("passed") if isinstance(checks, dict) else None
    if passed and isinstance(passed, list) and run.outcome.finished:
        lines.append(f"checks passed: {', '.join(map(str, passed))}")
    return lines


def summary_rows(run: RunData) -> list[tuple[str, list[str]]]:
    """(row heading, lines) of a run's summary."""
    sc = run.scenario
    site, grid = sc.get("site") or {}, sc.get("grid") or {}
    versions = run.meta.get("versions") or {}
    wall = run.meta.get("wall_s")
    return [
        (
            "Scenario",
            [str(sc["name"])] + ([str(sc["description"])] if sc.get("description") else []),
        ),
        ("Period", [f"{sc['start']}, {sc['duration']} in steps of {sc['step']}"]),
        (
            "Site",
            [
                f"lat {site.get('lat')}, lon {site.get('lon')}, "
                f"{site.get('altitude', '?')} m, {run.tz}"
            ],
        ),
        (
            "Grid",
            [
                f"{grid.get('source')} ({grid.get('solver', 'default')} solver), voltage band "
                f"{grid.get('v_min_pu')}..{grid.get('v_max_pu')} pu"
            ],
        ),
        ("Assets", _assets(sc)),
        ("Tariff", [_tariff(sc)]),
        ("Controller", [run.controller()]),
        ("Faults", _faults(run) or ["none"]),
        ("What-if assumptions", assumptions_summary(run.meta) or ["no economics or carbon"]),
        ("Seed", [str(run.meta.get("seed", sc.get("seed")))]),
        ("Run", [str(run.meta["run_id"]), str(run.run_dir)]),
        ("Status", _status(run) + ([f"wall time {wall:.1f} s"] if wall is not None else [])),
        ("Versions", [", ".join(f"{k} {v}" for k, v in versions.items())]),
    ]


#: Summary rows marked (bold) when the runs compared differ in them.
COMPARED = (
    "Scenario",
    "Period",
    "Site",
    "Grid",
    "Assets",
    "Tariff",
    "Controller",
    "Faults",
    "What-if assumptions",
    "Seed",
)


def summary_section(runs: Sequence[RunData]) -> Content:
    """What ran: one column per run."""
    tables = [summary_rows(run) for run in runs]
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(r.label)}</th>" for r in runs) + "</tr>"
    body = []
    for i, (heading, _) in enumerate(tables[0]):
        cells = "".join(
            "<td>" + "<br>".join(html.escape(line) for line in table[i][1]) + "</td>"
            for table in tables
        )
        differs = len(runs) > 1 and heading in COMPARED and len({str(t[i][1]) for t in tables}) > 1
        mark = ' class="differs"' if differs else ""
        body.append(f"<tr{mark}><th>{html.escape(heading)}</th>{cells}</tr>")
    head = head if len(runs) > 1 else ""
    return Content(html=f'<table class="summary">{head}{"".join(body)}</table>', linked=False)


def _keys(runs: Sequence[RunData]) -> list[str]:
    present = {k for run in runs for k in (run.kpis or {})}
    ordered = [spec.key for spec in KPI_SPECS if spec.key in present]
    return ordered + sorted(present - set(ordered))


def kpi_deltas(runs: Sequence[RunData]) -> dict[str, list[float | None]]:
    """KPI -> change of every run against the first (None where either lacks it)."""
    first = runs[0].kpis or {}
    deltas: dict[str, list[float | None]] = {}
    for key in _keys(runs):
        row: list[float | None] = []
        for run in runs[1:]:
            a, b = first.get(key), (run.kpis or {}).get(key)
            ok = isinstance(a, int | float) and isinstance(b, int | float)
            row.append(float(b) - float(a) if ok else None)
        deltas[key] = row
    return deltas


def _delta_cell(key: str, delta: float | None, base: Any) -> str:
    if delta is None or delta != delta:
        return '<td class="num">n/a</td>'
    text = format_kpi(key, abs(delta))
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    rel = ""
    if isinstance(base, int | float) and abs(base) > 1e-9:  # NaN fails too
        share = 100.0 * delta / abs(base)
        rel = f" ({share:+.1f} %)" if abs(share) <= MAX_SHARE_PCT else ""
    return f'<td class="num" data-kpi="{key}" data-delta="{delta!r}">{sign}{text}{rel}</td>'


def kpi_section(runs: Sequence[RunData]) -> Content:
    """The KPI table: human labels with units; with several runs, deltas vs the first."""
    keys = _keys(runs)
    notes = "".join(
        f"<p><strong>No KPIs{': ' + html.escape(run.label) if len(runs) > 1 else ''}:"
        "</strong> the run ended before it wrote kpis.json.</p>"
        for run in runs
        if run.kpis is None
    )
    if not keys:
        return Content(html=notes, linked=False)
    deltas = kpi_deltas(runs)
    head = "<tr><th>KPI</th>"
    for i, run in enumerate(runs):
        head += f"<th>{html.escape(run.label)}</th>"
        if i:
            head += f"<th>change vs {html.escape(runs[0].label)}</th>"
    rows = []
    for key in keys:
        cells = f"<td>{html.escape(kpi_spec(key).label)}</td>"
        for i, run in enumerate(runs):
            value = (run.kpis or {}).get(key)
            shown = format_kpi(key, value) if isinstance(value, int | float) else "n/a"
            cells += f'<td class="num" data-kpi="{key}" data-run="{i}">{html.escape(shown)}</td>'
            if i:
                cells += _delta_cell(key, deltas[key][i - 1], (runs[0].kpis or {}).get(key))
        rows.append(f"<tr>{cells}</tr>")
    table = f'<table class="kpis">{head}</tr>{"".join(rows)}</table>'
    return Content(html=notes + table, linked=False)
