"""``twin compare``: several controllers on the same scenario, the same physics and KPIs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from twin.errors import TwinError
from twin.run import run_scenario
from twin.scenario import ScenarioBase

__all__ = ["COMPARE_COLUMNS", "compare_controllers"]

#: Column -> short header; ``cost*`` is the energy cost with the change of stored battery
#: energy valued at the terminal price.
COMPARE_COLUMNS = {
    "controller": "controller",
    "cost_scored_eur": "cost* EUR",
    "savings_eur": "saved EUR",
    "oracle_share": "of oracle",
    "peak_import_kw": "peak kW",
    "battery_efc": "cycles",
    "voltage_violations": "V viol.",
    "e_ev_unmet_kwh": "EV unmet kWh",
    "ms_per_step": "ms/step",
}


def compare_controllers(
    scenario: ScenarioBase,
    controllers: list[str],
    out_dir: str | Path,
    *,
    policy: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run ``scenario`` once per controller and tabulate the comparison.

    Every run is scored under the same terminal rule (``cost_scored_eur``: the change
    of stored battery energy valued at the terminal price). Savings are against
    ``none`` and the share is of the oracle's savings, when those are in the list.
    Controller compute time includes its set-up (an oracle solves its LP there).
    """
    if "rl" in controllers and not (policy or scenario.control.policy):
        raise TwinError("controller 'rl' needs --policy (a file from `twin train`)")
    rows = []
    for name in controllers:
        control = scenario.control
        if policy:
            control = control.model_copy(update={"policy": policy})
        variant = scenario.model_copy(update={"controller": name, "control": control})
        result = run_scenario(
            variant, Path(out_dir) / name, progress=progress, compare_uncontrolled=False
        )
        parts = result.metadata["component_s"]
        spent = sum(
            v
            for k, v in parts.items()
            if k.split(":")[0] == name and k.split(":")[-1] in (name, "setup")
        )
        rows.append(
            {
                "controller": name,
                **{k: result.kpis.get(k, 0.0) for k in COMPARE_COLUMNS if k in result.kpis},
                "e_ev_unmet_kwh": result.kpis.get("e_ev_unmet_kwh", 0.0),
                "ms_per_step": 1000 * spent / scenario.clock().n_steps if name != "none" else 0.0,
            }
        )
    table = pd.DataFrame(rows).set_index("controller")
    if "none" in table.index:
        table["savings_eur"] = table.loc["none", "cost_scored_eur"] - table["cost_scored_eur"]
        if "oracle" in table.index and table.loc["oracle", "savings_eur"] > 0:
            table["oracle_share"] = table["savings_eur"] / table.loc["oracle", "savings_eur"]
    columns = [c for c in COMPARE_COLUMNS if c in table.columns or c == "controller"]
    return table.reset_index()[columns]
