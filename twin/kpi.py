"""Key performance indicators of a run, computed from the tidy results (true state)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.objective import ScoredCost, objective_for, scored_cost
from twin.results import as_operated, wide
from twin.scenario import ScenarioBase

__all__ = ["KPI_SPECS", "KpiSpec", "compute_kpis", "kpi_rows"]


@dataclass(frozen=True)
class KpiSpec:
    """How a KPI is shown: its key, a label and a number format."""

    key: str
    label: str
    fmt: str = "{:,.2f}"


KPI_SPECS = (
    KpiSpec("e_import_kwh", "Energy imported (kWh)"),
    KpiSpec("e_export_kwh", "Energy exported (kWh)"),
    KpiSpec("cost_eur", "Energy cost (EUR)"),
    KpiSpec("e_battery_delta_kwh", "Battery energy change, end - start (kWh)"),
    KpiSpec("cost_scored_eur", "Scored cost: energy + wear - stored energy gained (EUR)"),
    KpiSpec("cost_scored_no_wear_eur", "Scored cost without battery wear (EUR)"),
    KpiSpec("wear_eur", "Battery wear cost (EUR)"),
    KpiSpec("terminal_value_eur", "Value of the battery energy change (EUR)"),
    KpiSpec("e_pv_kwh", "PV energy (kWh)"),
    KpiSpec("e_load_kwh", "Load energy (kWh)"),
    KpiSpec("self_consumption", "Self-consumption ratio", "{:.3f}"),
    KpiSpec("self_sufficiency", "Self-sufficiency ratio", "{:.3f}"),
    KpiSpec("peak_import_kw", "Peak import (kW)"),
    KpiSpec("battery_throughput_kwh", "Battery throughput (kWh)"),
    KpiSpec("throughput_cell_kwh", "Battery throughput, cell side (kWh)"),
    KpiSpec("battery_efc", "Battery equivalent full cycles", "{:.3f}"),
    KpiSpec("soh_change", "SoH change (worst battery)", "{:.2e}"),
    KpiSpec("v_min_pu", "Min bus voltage (pu)", "{:.4f}"),
    KpiSpec("v_max_pu", "Max bus voltage (pu)", "{:.4f}"),
    KpiSpec("voltage_violations", "Voltage violations (bus-steps)", "{:.0f}"),
    KpiSpec("line_loading_max_pct", "Max line loading (%)"),
    KpiSpec("losses_kwh", "Grid losses (kWh)", "{:,.3f}"),
    KpiSpec("balance_residual_kwh", "Energy-balance residual (kWh)", "{:.2e}"),
    KpiSpec("unserved_kwh", "Unserved energy, islanded (kWh)", "{:,.3f}"),
    KpiSpec("curtailed_kwh", "Curtailed generation, islanded (kWh)", "{:,.3f}"),
    KpiSpec("thermal_trip_steps", "Battery steps tripped (thermal/converter)", "{:.0f}"),
    KpiSpec("battery_t_max_c", "Max battery temperature (degC)", "{:.1f}"),
    KpiSpec("frequency_excursion_steps", "Frequency excursions > 0.2 Hz (steps)", "{:.0f}"),
    KpiSpec("e_ev_delivered_kwh", "EV energy delivered (kWh)"),
    KpiSpec("e_ev_unmet_kwh", "EV energy unmet at departure (kWh)"),
    KpiSpec("ev_served", "EVs served", "{:.0f}"),
    KpiSpec("ev_turned_away", "EVs turned away", "{:.0f}"),
    KpiSpec("ev_charging_cost_eur", "EV charging cost at import price (EUR)"),
    KpiSpec("peak_import_uncontrolled_kw", "Peak import, uncontrolled charging (kW)"),
)


#: Frequency deviation (Hz) beyond which a step counts as an excursion.
FREQUENCY_BAND_HZ = 0.2


def _poc_series(
    results: pd.DataFrame, quantity: str, index: pd.Index, default: float = 0.0
) -> pd.Series:
    """A point-of-connection quantity (``default`` for runs that did not record it)."""
    table = wide(results, "grid", quantity)
    if "poc" not in table:
        return pd.Series(default, index=index)
    return table["poc"].reindex(index)


def _total(results: pd.DataFrame, kind: str, quantity: str, index: pd.Index) -> pd.DataFrame:
    table = wide(results, kind, quantity)
    return table.reindex(index) if not table.empty else pd.DataFrame(index=index)


#: What injects into the grid's buses when the caller does not say (the built-in assets).
INJECTING_KINDS = ("pv", "load", "battery", "ev")


def compute_kpis(
    results: pd.DataFrame,
    scenario: ScenarioBase,
    injecting: dict[str, list[str]] | None = None,
) -> dict[str, float]:
    r"""KPIs of a run.

    Energies integrate step-average powers over the step length. States (SoC, stored
    energy, SoH, temperature) have a row at the start of every step and one at the
    end of the run: end-minus-start KPIs use the true end state. Self-sufficiency
    counts loads, EV charging and grid losses as consumption (a site that imports
    everything it uses, losses included, scores 0, never below). The balance
    residual is :math:`\sum_t |P_{grid} + \sum_a P_a - P_{losses}| \Delta t`.

    ``cost_scored_eur`` is the scored cost :math:`J` of :mod:`twin.objective`, the
    quantity every planner optimises: ``cost_eur`` (energy and demand charge) plus the
    battery wear (``wear_eur``: EUR per kWh through the cells, from the battery's
    replacement cost and cycle life) minus the value of the change of stored energy
    (``terminal_value_eur``: per battery at its terminal value, the cost of putting a
    kWh back from the grid at the run's cheapest import price, never more than the most
    it can displace; ``control.terminal_price_eur_kwh`` overrides it).
    ``cost_scored_no_wear_eur`` leaves the wear out. A controller that empties the
    battery is credited what the energy saved and debited what refilling it costs, so it
    gains only what a real arbitrage gains, and no controller scores below the oracle,
    which minimises the same :math:`J` (beyond the grid losses its plan leaves out).
    ``throughput_cell_kwh`` is the stored energy's total variation, the initial state
    first (what wears the cells).

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy results of the run.
    scenario : ScenarioBase
        The resolved scenario of the run (ratings, limits, step).
    injecting : dict of str to list of str, optional
        The elements whose ``p_kw`` flows into the grid's buses, by kind, for the
        balance residual: the run takes them from its world plan (every component's
        injections, :func:`twin.world.grid_injections`); default: every element of
        :data:`INJECTING_KINDS`.

    Where a device replaced part of an asset (``source=real`` rows), the KPIs use what
    the plant saw: the measured values where they were fresh (see
    :func:`twin.results.as_operated`).
    """
    results = as_operated(results)
    dt_h = scenario.clock().dt_h
    poc = wide(results, "grid", "p_kw")["poc"]
    index = poc.index
    imp, exp = poc.clip(lower=0.0), (-poc).clip(lower=0.0)
    prices = wide(results, "tariff", "price_import_eur_kwh").iloc[:, 0]
    export_prices = wide(results, "tariff", "price_export_eur_kwh").iloc[:, 0]
    pv = _total(results, "pv", "p_kw", index)
    load = _total(results, "load", "p_kw", index)
    battery = _total(results, "battery", "p_kw", index)
    ev = _total(results, "ev", "p_kw", index)
    losses = wide(results, "grid", "losses_kw")["poc"]
    voltages = wide(results, "bus", "v_pu")
    lines = wide(results, "line", "loading_pct")

    e_import, e_export = imp.sum() * dt_h, exp.sum() * dt_h
    e_pv = pv.sum(axis=1).sum() * dt_h
    e_load = -load.sum(axis=1).sum() * dt_h
    ev_kw = -ev.sum(axis=1)
    e_losses = float(losses.sum() * dt_h)
    e_consumed = e_load + ev_kw.sum() * dt_h + e_losses
    throughput = battery.abs().sum() * dt_h
    capacities = {u["name"]: u["e_kwh"] for u in scenario.units("battery")}
    efc = sum(throughput.get(name, 0.0) / (2.0 * cap) for name, cap in capacities.items())
    soh_change = 0.0
    batteries = scenario.units("battery")
    delta_e, throughput_cell = np.zeros(len(batteries)), np.zeros(len(batteries))
    if capacities:
        stored = wide(results, "battery", "e_kwh")
        for i, u in enumerate(batteries):
            e = stored[u["name"]].to_numpy()
            e_start = u["soc_init"] * u["e_kwh"] * u["soh_init"]
            delta_e[i] = e[-1] - e_start
            throughput_cell[i] = np.abs(np.diff(e, prepend=e_start)).sum()
        soh = wide(results, "battery", "soh")
        initial = {u["name"]: u["soh_init"] for u in scenario.units("battery")}
        soh_change = min(soh[name].iloc[-1] - initial[name] for name in capacities)
    if injecting is None:
        injecting = {kind: list(wide(results, kind, "p_kw").columns) for kind in INJECTING_KINDS}
    injections = pd.Series(0.0, index=index)
    for kind, names in injecting.items():
        table = _total(results, kind, "p_kw", index)
        injections += table[[n for n in names if n in table.columns]].sum(axis=1)
    unserved = _poc_series(results, "unserved_kw", index)
    curtailed = _poc_series(results, "curtailed_kw", index)
    # Islanded, the unserved load and the curtailed generation close the balance.
    residual = (poc + unserved - curtailed + injections - losses).abs().sum() * dt_h
    tripped = _total(results, "battery", "tripped", index)
    t_cells = wide(results, "battery", "t_c")  # a state: from the start to the end of the run
    freq = _poc_series(results, "f_hz", index, default=50.0)
    v_lo, v_hi = scenario.grid.v_min_pu, scenario.grid.v_max_pu
    scored = _scored(scenario, imp, exp, prices, export_prices, throughput_cell, delta_e)
    kpis = {
        "e_import_kwh": float(e_import),
        "e_export_kwh": float(e_export),
        # Energy cost plus the tariff's demand charge on the run's peak import.
        "cost_eur": scored.energy + scored.demand,
        "e_battery_delta_kwh": float(delta_e.sum()),
        "cost_scored_eur": scored.total,
        "cost_scored_no_wear_eur": scored.without_wear,
        "wear_eur": scored.wear,
        "terminal_value_eur": scored.terminal,
        "e_pv_kwh": float(e_pv),
        "e_load_kwh": float(e_load),
        "self_consumption": float((e_pv - e_export) / e_pv) if e_pv > 0 else float("nan"),
        "self_sufficiency": float(1.0 - e_import / e_consumed) if e_consumed > 0 else float("nan"),
        "peak_import_kw": float(imp.max()),
        "battery_throughput_kwh": float(throughput.sum()),
        "battery_efc": float(efc),
        "throughput_cell_kwh": float(throughput_cell.sum()),
        "soh_change": float(soh_change),
        "v_min_pu": float(np.nanmin(voltages.to_numpy())),
        "v_max_pu": float(np.nanmax(voltages.to_numpy())),
        "voltage_violations": int(((voltages < v_lo) | (voltages > v_hi)).to_numpy().sum()),
        "line_loading_max_pct": float(np.nanmax(lines.to_numpy())) if not lines.empty else 0.0,
        "losses_kwh": e_losses,
        "balance_residual_kwh": float(residual),
        "unserved_kwh": float(unserved.sum() * dt_h),
        "curtailed_kwh": float(curtailed.sum() * dt_h),
        "thermal_trip_steps": int(tripped.to_numpy().sum()) if not tripped.empty else 0,
        "battery_t_max_c": float(np.nanmax(t_cells.to_numpy()))
        if not t_cells.empty
        else float("nan"),
        "frequency_excursion_steps": int((freq.sub(50.0).abs() > FREQUENCY_BAND_HZ).sum()),
    }
    if scenario.units("ev"):
        kpis.update(_ev_kpis(results, ev_kw, prices, dt_h))
    return kpis


def _scored(
    scenario: ScenarioBase,
    imp: pd.Series,
    exp: pd.Series,
    prices: pd.Series,
    export_prices: pd.Series,
    throughput_cell: np.ndarray,
    delta_e: np.ndarray,
) -> ScoredCost:
    """The run's scored cost (:func:`twin.objective.scored_cost`) over its own prices."""
    control = getattr(scenario, "control", None)
    override = getattr(control, "terminal_price_eur_kwh", None)
    objective = objective_for(scenario.units("battery"), prices.to_numpy(), override)
    return scored_cost(
        imp.to_numpy(),
        exp.to_numpy(),
        prices.to_numpy(),
        export_prices.to_numpy(),
        scenario.clock().dt_h,
        scenario.tariff.demand_charge_eur_kw,
        throughput_cell,
        delta_e,
        objective,
    )


def _ev_kpis(
    results: pd.DataFrame, ev_kw: pd.Series, prices: pd.Series, dt_h: float
) -> dict[str, float]:
    """EV KPIs; charging cost prices every kWh an EV draws at the step's import price."""

    def park_total(quantity: str) -> float:
        return float(wide(results, "ev_park", quantity).to_numpy().sum())

    return {
        "e_ev_delivered_kwh": park_total("e_delivered_kwh"),
        "e_ev_unmet_kwh": park_total("e_unmet_kwh"),
        "ev_served": park_total("n_departed"),
        "ev_turned_away": park_total("n_turned_away"),
        "ev_charging_cost_eur": float((ev_kw * prices).sum() * dt_h),
    }


def kpi_rows(kpis: dict[str, float]) -> list[tuple[str, str]]:
    """(label, formatted value) rows in display order."""
    rows = []
    for spec in KPI_SPECS:
        if spec.key in kpis:
            value = kpis[spec.key]
            rows.append((spec.label, "n/a" if value != value else spec.fmt.format(value)))
    known = {spec.key for spec in KPI_SPECS}
    for key in sorted(set(kpis) - known):  # adapter KPIs: residuals, counters
        value = kpis[key]
        rows.append((key, "n/a" if value != value else f"{value:,.4g}"))
    return rows
