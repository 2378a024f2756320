"""Key performance indicators of a run, computed from the tidy results (true state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock
from twin.limits import KPI_WINDOW_STEPS
from twin.objective import ScoredCost, objective_for, scored_cost_of
from twin.results import Results, as_operated, wide
from twin.scenario import ScenarioBase

__all__ = [
    "KPI_SPECS",
    "KPI_WINDOW_STEPS",
    "KpiSpec",
    "Totals",
    "cell_energy_kwh",
    "compute_kpis",
    "kpi_rows",
]


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
    KpiSpec(
        "cost_scored_eur",
        "Scored cost: energy + wear - stored energy gained + EV energy unmet (EUR)",
    ),
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
    KpiSpec("ev_unmet_eur", "EV energy unmet, in the scored cost (EUR)"),
    KpiSpec("ev_served", "EVs served", "{:.0f}"),
    KpiSpec("ev_turned_away", "EVs turned away", "{:.0f}"),
    KpiSpec("ev_charging_cost_eur", "EV charging cost at import price (EUR)"),
    KpiSpec("peak_import_uncontrolled_kw", "Peak import, uncontrolled charging (kW)"),
    # What-if studies (twin.whatif: the economics and carbon sections).
    KpiSpec("capex_eur", "Capital cost of batteries and PV (EUR)", "{:,.0f}"),
    KpiSpec("opex_year_eur", "Operating cost per year (EUR/year)", "{:,.0f}"),
    KpiSpec("reference_opex_year_eur", "Operating cost per year, reference (EUR/year)", "{:,.0f}"),
    KpiSpec("saving_year_eur", "Operating cost saved per year (EUR/year)", "{:,.0f}"),
    KpiSpec("battery_years_to_eol", "Battery life at the measured fade (years)", "{:,.1f}"),
    KpiSpec("replacement_pv_eur", "Battery replacements, present value (EUR)", "{:,.0f}"),
    KpiSpec("annualised_cost_eur_year", "Annualised investment cost (EUR/year)", "{:,.0f}"),
    KpiSpec("npv_eur", "Net present value vs reference (EUR)", "{:,.0f}"),
    KpiSpec("payback_simple_years", "Simple payback (years)", "{:,.1f}"),
    KpiSpec("payback_discounted_years", "Discounted payback (years)", "{:,.1f}"),
    KpiSpec("co2_kg", "Grid emissions (kgCO2)", "{:,.1f}"),
    KpiSpec("co2_year_kg", "Grid emissions per year (kgCO2/year)", "{:,.0f}"),
    KpiSpec("co2_reference_kg", "Grid emissions, reference (kgCO2)", "{:,.1f}"),
    KpiSpec("co2_avoided_kg", "Avoided emissions vs reference (kgCO2)", "{:,.1f}"),
    KpiSpec("co2_avoided_year_kg", "Avoided emissions per year (kgCO2/year)", "{:,.0f}"),
    KpiSpec("carbon_intensity_mean_g_kwh", "Mean grid carbon intensity (gCO2/kWh)", "{:,.0f}"),
)


#: Frequency deviation (Hz) beyond which a step counts as an excursion.
FREQUENCY_BAND_HZ = 0.2


#: A window's time x asset table of a kind and quantity (the twin's, :func:`_tables`).
Tables = Callable[[str, str], pd.DataFrame]

#: The (kind, quantity) tables the KPIs read, fetched together from lazy results.
KPI_TABLES = (
    ("grid", "p_kw"),
    ("grid", "losses_kw"),
    ("grid", "unserved_kw"),
    ("grid", "curtailed_kw"),
    ("grid", "f_hz"),
    ("tariff", "price_import_eur_kwh"),
    ("tariff", "price_export_eur_kwh"),
    ("pv", "p_kw"),
    ("load", "p_kw"),
    ("battery", "p_kw"),
    ("ev", "p_kw"),
    ("bus", "v_pu"),
    ("line", "loading_pct"),
    ("battery", "e_kwh"),
    ("battery", "soh"),
    ("battery", "tripped"),
    ("battery", "t_c"),
    ("ev_park", "e_unmet_kwh"),
    ("ev_park", "e_delivered_kwh"),
    ("ev_park", "n_departed"),
    ("ev_park", "n_turned_away"),
)


def _tables(results: pd.DataFrame | Results, kinds: list[str]) -> Tables:
    """The twin's tables of ``results``, each made once.

    Lazy results give :data:`KPI_TABLES` and the ``p_kw`` of ``kinds`` in one read of the
    file (:meth:`twin.results.Results.wides`); others are made when first asked for.
    """
    made: dict[tuple[str, str, str], pd.DataFrame] = {}
    if isinstance(results, Results):
        wanted = [*KPI_TABLES, *((kind, "p_kw") for kind in kinds)]
        made.update(results.wides([(kind, quantity, "twin") for kind, quantity in wanted]))

    def table(kind: str, quantity: str) -> pd.DataFrame:
        key = (kind, quantity, "twin")
        if key not in made:
            made[key] = wide(results, kind, quantity)
        return made[key]

    return table


def _poc_series(tables: Tables, quantity: str, index: pd.Index, default: float = 0.0) -> pd.Series:
    """A point-of-connection quantity (``default`` for runs that did not record it)."""
    table = tables("grid", quantity)
    if "poc" not in table:
        return pd.Series(default, index=index)
    return table["poc"].reindex(index)


def _total(tables: Tables, kind: str, quantity: str, index: pd.Index) -> pd.DataFrame:
    table = tables(kind, quantity)
    return table.reindex(index) if not table.empty else pd.DataFrame(index=index)


#: What injects into the grid's buses when the caller does not say (the built-in assets).
INJECTING_KINDS = ("pv", "load", "battery", "ev")


def compute_kpis(
    results: pd.DataFrame | Results,
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
    With EVs, the energy they still needed at departure counts in it too
    (``ev_unmet_eur``: grid side, ``e_ev_unmet_kwh`` over the charger's efficiency, at
    :data:`twin.objective.UNMET_EV_EUR_KWH`, the price the dispatch LP puts on it).
    ``cost_scored_no_wear_eur`` leaves the wear out. A controller that empties the
    battery is credited what the energy saved and debited what refilling it costs, so it
    gains only what a real arbitrage gains, and no controller scores below the oracle,
    which minimises the same :math:`J` (beyond the grid losses its plan leaves out).
    ``throughput_cell_kwh`` is the energy through the cells, from the battery's power and
    its efficiencies (:func:`cell_energy_kwh`; what wears the cells); the terminal value
    prices the net energy put into the cells the same way, so capacity fade (stored
    energy shrinking at constant SoC) is neither wear nor lost value, and an idle
    battery scores zero for both. ``e_battery_delta_kwh`` is the stored energy's change,
    fade included.

    Parameters
    ----------
    results : pandas.DataFrame or twin.results.Results
        Tidy results of the run; lazy results (:func:`twin.results.open_results`) are
        summed :data:`KPI_WINDOW_STEPS` steps at a time (sums, extremes and end states
        combined, :class:`Totals`), so memory holds a window, not the run.
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
    clock = scenario.clock()
    parts = Totals()
    for window in _windows(results, clock):
        parts.add(_window_totals(window, scenario, injecting, clock.dt_h))
    return _kpis(parts, scenario, clock.dt_h)


def _windows(results: pd.DataFrame | Results, clock: Clock) -> Iterator[pd.DataFrame | Results]:
    """The results :data:`KPI_WINDOW_STEPS` steps at a time: lazy views, or a frame whole.

    Windows follow the clock; the last is open-ended, so it holds the states' end row.
    """
    if not isinstance(results, Results):
        yield results
        return
    steps = KPI_WINDOW_STEPS
    starts = [
        clock.start + pd.Timedelta(seconds=k * clock.step_s) for k in range(0, clock.n_steps, steps)
    ]
    for i, start in enumerate(starts):
        first = None if i == 0 else start
        yield results.between(first, starts[i + 1] if i + 1 < len(starts) else None)


class Totals:
    """Sums, extremes and last values of a run's windows (what every KPI is made of).

    ``sum`` entries add, ``max``/``min`` keep the extreme of the windows that have one
    (NaN-skipping as pandas), ``peak`` keeps numpy's max (NaN propagates, as the scored
    cost's demand charge did on the whole run), ``last`` keeps the last window's value.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, window: dict[str, tuple[str, Any]]) -> None:
        """Fold one window's ``{key: (how, value)}`` in (``value`` None: none there)."""
        for key, (how, value) in window.items():
            if value is None:
                continue
            if key not in self.values or how == "last":
                self.values[key] = value
            elif how == "sum":
                self.values[key] = self.values[key] + value
            elif how == "max":
                self.values[key] = _skipping_nan(max, self.values[key], value)
            elif how == "min":
                self.values[key] = _skipping_nan(min, self.values[key], value)
            else:  # "peak"
                self.values[key] = float(np.max([self.values[key], value]))

    def get(self, key: str, default: Any = None) -> Any:
        """The combined value of ``key`` (``default`` when no window had one)."""
        return self.values.get(key, default)


def _skipping_nan(pick: Any, old: float, new: float) -> float:
    """``pick(old, new)`` where a NaN stands for no value."""
    if old != old:
        return new
    if new != new:
        return old
    return pick(old, new)


def _window_totals(
    results: pd.DataFrame | Results,
    scenario: ScenarioBase,
    injecting: dict[str, list[str]] | None,
    dt_h: float,
) -> dict[str, tuple[str, Any]]:
    """What the KPIs need from one window of the results (or the whole frame)."""
    tables = _tables(results, list(injecting or INJECTING_KINDS))
    grid = tables("grid", "p_kw")
    poc = grid["poc"] if "poc" in grid else pd.Series(dtype=float, index=grid.index)
    index = poc.index
    imp, exp = poc.clip(lower=0.0), (-poc).clip(lower=0.0)
    prices = tables("tariff", "price_import_eur_kwh").iloc[:, 0]
    export_prices = tables("tariff", "price_export_eur_kwh").iloc[:, 0]
    pv = _total(tables, "pv", "p_kw", index)
    load = _total(tables, "load", "p_kw", index)
    battery = _total(tables, "battery", "p_kw", index)
    ev = _total(tables, "ev", "p_kw", index)
    losses = tables("grid", "losses_kw")["poc"]
    voltages = tables("bus", "v_pu").to_numpy()
    lines = tables("line", "loading_pct").to_numpy()
    ev_kw = -ev.sum(axis=1)
    throughput = battery.abs().sum() * dt_h
    batteries = scenario.units("battery")
    flows = [
        cell_energy_kwh(battery[u["name"]].to_numpy(), u["eta_ch"], u["eta_dis"], dt_h)
        if u["name"] in battery
        else np.zeros(0)
        for u in batteries
    ]
    out: dict[str, tuple[str, Any]] = {
        "e_import_kwh": ("sum", imp.sum() * dt_h),
        "e_export_kwh": ("sum", exp.sum() * dt_h),
        "e_pv_kwh": ("sum", pv.sum(axis=1).sum() * dt_h),
        "e_load_kwh": ("sum", -load.sum(axis=1).sum() * dt_h),
        "e_ev_kwh": ("sum", ev_kw.sum() * dt_h),
        "losses_kwh": ("sum", float(losses.sum() * dt_h)),
        "throughput": ("sum", float(throughput.sum())),
        "throughput_by_battery": (
            "sum",
            np.array([throughput.get(u["name"], 0.0) for u in batteries], dtype=float),
        ),
        "throughput_cell": ("sum", np.array([np.abs(f).sum() for f in flows], dtype=float)),
        "delta_cell": ("sum", np.array([f.sum() for f in flows], dtype=float)),
        "peak_import_kw": ("max", float(imp.max())),
        "energy_eur": (
            "sum",
            float(imp.to_numpy() @ prices.to_numpy() - exp.to_numpy() @ export_prices.to_numpy()),
        ),
        "peak": ("peak", float(imp.to_numpy().max()) if len(imp) else None),
        "price_min": ("min", float(prices.min()) if len(prices) else None),
        "price_max": ("max", float(prices.max()) if len(prices) else None),
        "prices": ("sum", len(prices)),
        "prices_not_finite": ("sum", int((~np.isfinite(prices.to_numpy())).sum())),
        "v_min_pu": ("min", float(np.nanmin(voltages)) if voltages.size else None),
        "v_max_pu": ("max", float(np.nanmax(voltages)) if voltages.size else None),
        "line_loading_max_pct": ("max", float(np.nanmax(lines)) if lines.size else None),
    }
    v_lo, v_hi = scenario.grid.v_min_pu, scenario.grid.v_max_pu
    out["voltage_violations"] = ("sum", int(((voltages < v_lo) | (voltages > v_hi)).sum()))
    if batteries:
        stored = tables("battery", "e_kwh")
        soh = tables("battery", "soh")
        for u in batteries:
            name = u["name"]
            if name in stored and len(stored):
                out[f"e_end:{name}"] = ("last", float(stored[name].to_numpy()[-1]))
            if name in soh and len(soh):
                out[f"soh_end:{name}"] = ("last", float(soh[name].iloc[-1]))
    if injecting is None:
        injecting = {kind: list(tables(kind, "p_kw").columns) for kind in INJECTING_KINDS}
    injections = pd.Series(0.0, index=index)
    for kind, names in injecting.items():
        table = _total(tables, kind, "p_kw", index)
        injections += table[[n for n in names if n in table.columns]].sum(axis=1)
    unserved = _poc_series(tables, "unserved_kw", index)
    curtailed = _poc_series(tables, "curtailed_kw", index)
    # Islanded, the unserved load and the curtailed generation close the balance.
    residual = (poc + unserved - curtailed + injections - losses).abs().sum() * dt_h
    tripped = _total(tables, "battery", "tripped", index)
    t_cells = tables("battery", "t_c")  # a state: from the start to the end of the run
    freq = _poc_series(tables, "f_hz", index, default=50.0)
    out.update(
        balance_residual_kwh=("sum", float(residual)),
        unserved_kwh=("sum", float(unserved.sum() * dt_h)),
        curtailed_kwh=("sum", float(curtailed.sum() * dt_h)),
        thermal_trip_steps=("sum", tripped.to_numpy().sum() if not tripped.empty else None),
        battery_t_max_c=("max", float(np.nanmax(t_cells.to_numpy())) if t_cells.size else None),
        frequency_excursion_steps=(
            "sum",
            int((freq.sub(50.0).abs() > FREQUENCY_BAND_HZ).sum()),
        ),
    )
    if scenario.units("ev"):
        out.update(_ev_totals(tables, scenario, ev_kw, prices, dt_h))
    return out


def _kpis(totals: Totals, scenario: ScenarioBase, dt_h: float) -> dict[str, float]:
    """The KPIs from the run's :class:`Totals`."""
    get = totals.get
    e_import, e_export = get("e_import_kwh", 0.0), get("e_export_kwh", 0.0)
    e_pv, e_load, e_losses = get("e_pv_kwh", 0.0), get("e_load_kwh", 0.0), get("losses_kwh", 0.0)
    e_consumed = e_load + get("e_ev_kwh", 0.0) + e_losses
    batteries = scenario.units("battery")
    n = len(batteries)
    by_battery = get("throughput_by_battery", np.zeros(n))
    efc = sum(by_battery[i] / (2.0 * u["e_kwh"]) for i, u in enumerate(batteries))
    delta_e = np.array(
        [
            get(f"e_end:{u['name']}", float("nan")) - u["soc_init"] * u["e_kwh"] * u["soh_init"]
            for u in batteries
        ]
    )
    soh_change = 0.0
    if batteries:
        soh_change = min(
            get(f"soh_end:{u['name']}", float("nan")) - u["soh_init"] for u in batteries
        )
    throughput_cell = get("throughput_cell", np.zeros(n))
    scored = _scored(
        scenario,
        totals,
        throughput_cell,
        get("delta_cell", np.zeros(n)),
        get("ev_unmet_grid_kwh", 0.0),
    )
    trips = get("thermal_trip_steps")
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
        "peak_import_kw": float(get("peak_import_kw", float("nan"))),
        "battery_throughput_kwh": float(get("throughput", 0.0)),
        "battery_efc": float(efc),
        "throughput_cell_kwh": float(np.sum(throughput_cell)),
        "soh_change": float(soh_change),
        "v_min_pu": float(get("v_min_pu", float("nan"))),
        "v_max_pu": float(get("v_max_pu", float("nan"))),
        "voltage_violations": int(get("voltage_violations", 0)),
        "line_loading_max_pct": float(get("line_loading_max_pct", 0.0)),
        "losses_kwh": float(e_losses),
        "balance_residual_kwh": float(get("balance_residual_kwh", 0.0)),
        "unserved_kwh": float(get("unserved_kwh", 0.0)),
        "curtailed_kwh": float(get("curtailed_kwh", 0.0)),
        "thermal_trip_steps": int(trips) if trips is not None else 0,
        "battery_t_max_c": float(get("battery_t_max_c", float("nan"))),
        "frequency_excursion_steps": int(get("frequency_excursion_steps", 0)),
    }
    if scenario.units("ev"):
        kpis.update(
            {
                "e_ev_delivered_kwh": float(get("e_ev_delivered_kwh", 0.0)),
                "e_ev_unmet_kwh": float(get("e_ev_unmet_kwh", 0.0)),
                "ev_served": float(get("ev_served", 0.0)),
                "ev_turned_away": float(get("ev_turned_away", 0.0)),
                "ev_charging_cost_eur": float(get("ev_charging_cost_eur", 0.0)),
            }
        )
        kpis["ev_unmet_eur"] = scored.ev_unmet
    return kpis


def _ev_totals(
    tables: Tables,
    scenario: ScenarioBase,
    ev_kw: pd.Series,
    prices: pd.Series,
    dt_h: float,
) -> dict[str, tuple[str, Any]]:
    """EV sums of a window; charging cost prices every kWh an EV draws at the import price."""

    def park_total(quantity: str) -> tuple[str, float]:
        return ("sum", float(tables("ev_park", quantity).to_numpy().sum()))

    # EV energy still needed at departure, grid side (over each park's efficiency)
    unmet = tables("ev_park", "e_unmet_kwh")
    grid_side = sum(
        unmet[p["name"]].sum() / p["efficiency"] for p in scenario.units("ev") if p["name"] in unmet
    )
    return {
        "ev_unmet_grid_kwh": ("sum", float(grid_side)),
        "e_ev_delivered_kwh": park_total("e_delivered_kwh"),
        "e_ev_unmet_kwh": park_total("e_unmet_kwh"),
        "ev_served": park_total("n_departed"),
        "ev_turned_away": park_total("n_turned_away"),
        "ev_charging_cost_eur": ("sum", float((ev_kw * prices).sum() * dt_h)),
    }


def cell_energy_kwh(p_kw: np.ndarray, eta_ch: float, eta_dis: float, dt_h: float) -> np.ndarray:
    """Energy into the cells per step (kWh, < 0 out) from bus-side power (> 0 discharge).

    The battery model's own equation: ``-P / eta_dis`` discharging, ``-P eta_ch``
    charging. Unlike differences of the stored energy, it leaves out the capacity fade
    (a fading battery's stored energy shrinks at constant SoC): no dispatch, no wear.
    """
    p = np.nan_to_num(np.asarray(p_kw, dtype=float))
    return np.where(p > 0.0, -p / eta_dis, -p * eta_ch) * dt_h


def _scored(
    scenario: ScenarioBase,
    totals: Totals,
    throughput_cell: np.ndarray,
    delta_e: np.ndarray,
    ev_unmet_kwh: float = 0.0,
) -> ScoredCost:
    """The run's scored cost (:func:`twin.objective.scored_cost`) over its own prices."""
    control = getattr(scenario, "control", None)
    override = getattr(control, "terminal_price_eur_kwh", None)
    count, bad = int(totals.get("prices", 0)), int(totals.get("prices_not_finite", 0))
    if count and not bad:  # the terminal value needs the cheapest and dearest price only
        prices = np.array([totals.get("price_min"), totals.get("price_max")])
    else:  # what the whole series would say: how many prices, how many not finite
        prices = np.concatenate([np.full(bad, np.nan), np.zeros(count - bad)])
    objective = objective_for(scenario.units("battery"), prices, override)
    peak = totals.get("peak")
    return scored_cost_of(
        totals.get("energy_eur", 0.0) * scenario.clock().dt_h,
        0.0 if peak is None else peak,
        scenario.tariff.demand_charge_eur_kw,
        throughput_cell,
        delta_e,
        objective,
        ev_unmet_kwh,
    )


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
