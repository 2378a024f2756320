"""``twin compare``: several controllers on the same scenario, the same physics and KPIs.

:func:`compare_controllers` runs the scenario once per controller and returns one row per
controller; :func:`controller_detail` names what each row ran with (forecaster, horizon,
policy); :func:`comparison_view` and :func:`write_comparison` print the rows as a table
that never truncates, or as CSV or JSON for scripts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from twin.errors import TwinError
from twin.run import run_scenario
from twin.scenario import ScenarioBase

__all__ = [
    "COMPARE_COLUMNS",
    "FORMATS",
    "compare_controllers",
    "comparison_view",
    "controller_detail",
    "controller_seconds",
    "write_comparison",
]

#: Column -> short header. ``cost*`` is the scored cost (the one objective: energy, demand
#: charge, battery wear where costed, the change of stored energy valued by the terminal
#: rule). KPIs a run does not report (wear before it is costed, say) are left out.
COMPARE_COLUMNS = {
    "controller": "controller",
    "detail": "with",
    "cost_scored_eur": "cost* EUR",
    "cost_scored_no_wear_eur": "cost* w/o wear EUR",
    "wear_eur": "wear EUR",
    "savings_eur": "saved EUR",
    "reduction_pct": "vs none %",
    "oracle_share": "of oracle",
    "peak_import_kw": "peak kW",
    "battery_efc": "cycles",
    "voltage_violations": "V viol.",
    "e_ev_unmet_kwh": "EV unmet kWh",
    "ms_per_step": "ms/step",
    "setup_s": "setup s",
}

#: KPIs taken from each run as they are (when the run reports them).
_KPI_COLUMNS = (
    "cost_scored_eur",
    "cost_scored_no_wear_eur",
    "wear_eur",
    "peak_import_kw",
    "battery_efc",
    "voltage_violations",
)

#: The output formats of :func:`write_comparison`.
FORMATS = ("table", "csv", "json")

#: Width to measure a table's natural width in (characters).
_UNBOUNDED = 100_000

#: Printed under the table.
LEGEND = (
    "cost*: the scored cost (energy, demand charge, battery wear where costed, the change "
    "of stored battery energy valued by the terminal rule, EV energy unmet); saved and vs "
    "none: against none; of oracle: share of the oracle's savings; ms/step: controller "
    "compute per step; setup s: its one-off construction (policy load, forecaster "
    "training, the oracle's LP; not the import of its module)"
)


def controller_seconds(component_s: dict[str, float], sid: str) -> tuple[float, float]:
    """Wall seconds a controller spent on its set-up and on its steps.

    The wrapper times the model's construction as ``"<sid>:setup"`` (imports the model
    makes there, a policy load, forecaster training, the oracle's whole-run LP; not the
    import of the model's module, done before) and its ``step`` calls as ``"<sid>"``
    (:meth:`twin.runstate.RunState.component_s`).

    Parameters
    ----------
    component_s : dict of str to float
        ``run.json``'s ``component_s``.
    sid : str
        The controller's simulator id (its name).

    Returns
    -------
    tuple of float
        ``(setup_s, steps_s)``; zeros for a run without that simulator.
    """
    return component_s.get(f"{sid}:setup", 0.0), component_s.get(sid, 0.0)


def controller_detail(name: str, control: Any) -> str:
    """What a controller ran with: forecaster and horizon, policy, schedule file.

    Parameters
    ----------
    name : str
        The controller (``none``, ``rule``, ``mpc``, ``oracle``, ``rl``, ``schedule``).
    control : twin.control.schema.ControlSpec
        The scenario's ``control`` section (with ``--policy`` applied).

    Returns
    -------
    str
        For example ``"persistence, 24h horizon"`` for ``mpc``, or
        ``"builtin, SAC, seed 0, day_ahead base, correction x0/1, reads day_ahead (log error
        pv 0.3, load 0.1, trust 0.5)"`` for ``rl`` (``correction x0/1``: the factors kept
        on each output of its correction, here PV's and load's, when not all 1); empty
        where there is nothing to say (``none``, ``rule``).
    """
    if name == "oracle":
        return "perfect foresight"
    if name == "mpc":
        forecaster = _day_ahead(control) if control.forecaster == "day_ahead" else None
        parts = [forecaster or control.forecaster, f"{control.horizon} horizon"]
        if control.resolve_every:
            parts.append(f"re-planned every {control.resolve_every}")
        if control.forecaster == "regression":
            parts.append(f"{control.history_days} d history")
        return ", ".join(parts)
    if name == "rl":  # the agent reads the day-ahead forecast beside its meters
        policy = _policy_detail(control.policy)
        return f"{policy}, reads {_day_ahead(control)}" if policy else ""
    if name == "schedule" and control.schedule_csv:
        return Path(control.schedule_csv).name
    return ""


def _day_ahead(control: Any) -> str:
    """The modelled day-ahead forecast and its log errors."""
    return (
        f"day_ahead (log error pv {control.day_ahead_error_pv:g}, "
        f"load {control.day_ahead_error_load:g}, trust {control.day_ahead_trust:g})"
    )


def _policy_detail(policy: str | None) -> str:
    """Policy file stem, then algorithm, seed, base and shrink from ``<stem>_train.json``."""
    if not policy:
        return ""
    if policy == "builtin":  # the policy shipped with the package, and its record
        from twin.rl.controller import BUILTIN_POLICY

        path, parts = BUILTIN_POLICY, [policy]
    else:
        path = Path(policy)
        parts = [path.stem]
    record = path.with_name(f"{path.stem}_train.json")
    try:
        meta = json.loads(record.read_text())
    except (OSError, ValueError):
        return parts[0]  # a policy without its training record: its name says enough
    if isinstance(meta, dict):
        if "algo" in meta:
            parts.append(str(meta["algo"]).upper())
        if "seed" in meta:
            parts.append(f"seed {meta['seed']}")
        if meta.get("base"):
            parts.append(f"{meta['base']} base")
        shrink = (meta.get("selection") or {}).get("chosen_shrink")
        if isinstance(shrink, list) and any(factor != 1.0 for factor in shrink):
            # the factors selection kept of each output's correction (twin.rl.selection)
            parts.append("correction x" + "/".join(f"{factor:g}" for factor in shrink))
    return ", ".join(parts)


def compare_controllers(
    scenario: ScenarioBase,
    controllers: list[str],
    out_dir: str | Path,
    *,
    policy: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run ``scenario`` once per controller and tabulate the comparison.

    Every run is scored by the same objective (``cost_scored_eur``). Savings and the
    reduction in % are against ``none``, the share is of the oracle's savings, when those
    are in the list. ``ms_per_step`` is the controller's per-step compute; its one-off
    set-up is ``setup_s`` (:func:`controller_seconds`).

    Parameters
    ----------
    scenario : ScenarioBase
        The scenario; its ``controller`` is replaced per run.
    controllers : list of str
        Controller names, in the order of the rows.
    out_dir : str or Path
        Each run goes to ``out_dir / <controller>``.
    policy : str, optional
        Policy file of the ``rl`` controller (else ``control.policy``).
    progress : bool
        Show each run's progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per controller; the columns of :data:`COMPARE_COLUMNS` that apply.
    """
    repeated = sorted({name for name in controllers if controllers.count(name) > 1})
    if repeated:
        raise TwinError(
            f"--controllers: expected each controller once (its runs share a directory), "
            f"got {', '.join(repeated)} more than once"
        )
    if "rl" in controllers and not (policy or scenario.control.policy):
        raise TwinError("controller 'rl' needs --policy (a file from `twin train`)")
    control = scenario.control
    if policy:
        control = control.model_copy(update={"policy": policy})
    n_steps = scenario.clock().n_steps
    rows = []
    for name in controllers:
        variant = scenario.model_copy(update={"controller": name, "control": control})
        result = run_scenario(
            variant, Path(out_dir) / name, progress=progress, compare_uncontrolled=False
        )
        setup_s, steps_s = controller_seconds(result.metadata["component_s"], name)
        rows.append(
            {
                "controller": name,
                "detail": controller_detail(name, control),
                **{k: result.kpis[k] for k in _KPI_COLUMNS if k in result.kpis},
                "e_ev_unmet_kwh": result.kpis.get("e_ev_unmet_kwh", 0.0),
                "ms_per_step": 1000 * steps_s / n_steps,
                "setup_s": setup_s,
            }
        )
    table = pd.DataFrame(rows).set_index("controller")
    if "none" in table.index:
        reference = table.loc["none", "cost_scored_eur"]
        table["savings_eur"] = reference - table["cost_scored_eur"]
        # a reduction in % of a cost that is an income (or nothing) says nothing
        share = table["savings_eur"] / reference if reference > 0 else math.nan
        table["reduction_pct"] = 100 * share
        if "oracle" in table.index and table.loc["oracle", "savings_eur"] > 0:
            table["oracle_share"] = table["savings_eur"] / table.loc["oracle", "savings_eur"]
    columns = [c for c in COMPARE_COLUMNS if c in table.columns or c == "controller"]
    return table.reset_index()[columns]


def comparison_view(table: pd.DataFrame, title: str) -> Table:
    """The comparison as a rich table; a row is labelled ``name (detail)``.

    Cells fold rather than end in an ellipsis when the console is narrower than the
    table; :func:`write_comparison` gives a console that is not a terminal the table's
    full width.
    """
    view = Table(title=title)
    shown = [c for c in table.columns if c != "detail"]
    for column in shown:
        view.add_column(
            COMPARE_COLUMNS[column],
            justify="left" if column == "controller" else "right",
            overflow="fold",
        )
    for _, row in table.iterrows():
        label = row["controller"]
        if row.get("detail"):
            label = f"{label} ({row['detail']})"
        view.add_row(*[label if c == "controller" else _fmt(row[c]) for c in shown])
    return view


def write_comparison(table: pd.DataFrame, fmt: str, console: Console, title: str) -> None:
    """Print the comparison: a table (never truncated), CSV or JSON.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`compare_controllers`.
    fmt : str
        ``table``, ``csv`` (one row per controller, full precision) or ``json`` (a list
        of records; NaN as null).
    console : rich.console.Console
        Where to print. Not a terminal (piped): the table is printed at its natural
        width, whatever the console assumes (rich assumes 80 columns).
    title : str
        The table's title.
    """
    if fmt == "csv":
        console.file.write(table.to_csv(index=False))
        return
    if fmt == "json":
        records = [{k: _plain(v) for k, v in record.items()} for record in table.to_dict("records")]
        console.file.write(json.dumps(records, indent=1) + "\n")
        return
    view = comparison_view(table, title)
    if not console.is_terminal:
        natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), view)
        width = max(console.width, natural.maximum)
        console = Console(file=console.file, width=width, color_system=None)
    console.print(view)
    console.print(LEGEND, soft_wrap=True)


def _plain(value: Any) -> Any:
    """A JSON value: Python numbers, NaN as null."""
    if isinstance(value, str):
        return value
    value = float(value)
    return None if math.isnan(value) else value


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:,.3f}"
