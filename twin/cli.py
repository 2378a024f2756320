"""The ``twin`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import TwinError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Microgrid digital twin.")
console = Console()
err_console = Console(stderr=True)


def _fail(exc: TwinError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def kpi_table(kpis: dict[str, float], title: str) -> Table:
    """A rich table of the KPIs."""
    from twin.kpi import kpi_rows

    table = Table(title=title)
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for label, value in kpi_rows(kpis):
        table.add_row(label, value)
    return table


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    out: Annotated[Path | None, typer.Option(help="Run directory (default: outputs.dir).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: path=value (repeatable)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a scenario; write results, run metadata and KPIs; print the KPI table."""
    from twin.run import run_scenario
    from twin.scenario import load_scenario

    try:
        sc = load_scenario(scenario, set_ or [])
        result = run_scenario(sc, out, progress=progress)
    except TwinError as exc:
        _fail(exc)
        return
    console.print(kpi_table(result.kpis, f"{sc.name}: KPIs"))
    wall = result.metadata["wall_s"]
    console.print(f"results in [bold]{result.out_dir}[/] ({wall:.1f} s wall)")


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")]) -> None:
    """Check a scenario and report every problem with its field path."""
    from twin.scenario import ASSET_KINDS, load_scenario

    try:
        sc = load_scenario(scenario)
    except TwinError as exc:
        _fail(exc)
        return
    counts = ", ".join(f"{len(getattr(sc.assets, k))} {k}" for k in ASSET_KINDS)
    console.print(f"[green]ok[/] {sc.name}: {sc.clock().n_steps} steps of {sc.step}; {counts}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="Run directory of `twin run`.")]) -> None:
    """Render plots (PNG) and one HTML page for a finished run."""
    from twin.report import render_report

    try:
        page = render_report(run_dir)
    except TwinError as exc:
        _fail(exc)
        return
    console.print(f"report: [bold]{page}[/]")


@app.command()
def train(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file (with a battery).")],
    out: Annotated[Path, typer.Option(help="Policy file to write.")] = Path("policy.zip"),
    days: Annotated[int | None, typer.Option(help="Training days to use (default all).")] = None,
    timesteps: Annotated[int, typer.Option(help="Environment steps to train for.")] = 100_000,
    algo: Annotated[str, typer.Option(help="sac or ppo.")] = "sac",
    seed: Annotated[int, typer.Option(help="Seed (training is reproducible).")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: path=value.")
    ] = None,
) -> None:
    """Train an RL dispatch policy on the scenario's year (validation days held out)."""
    from twin.rl.train import train_policy
    from twin.scenario import load_scenario

    try:
        sc = load_scenario(scenario, set_ or [])
        result = train_policy(sc, out, timesteps=timesteps, days=days, seed=seed, algo=algo)
    except (TwinError, ValueError) as exc:
        _fail(exc if isinstance(exc, TwinError) else TwinError(str(exc)))
        return
    console.print(
        f"policy [bold]{result.policy}[/] ({len(result.train_days)} training days; "
        f"{len(result.validation_days)} validation days held out); curve {result.curve_png}"
    )


@app.command()
def compare(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    controllers: Annotated[
        str, typer.Option(help="Comma-separated controllers.")
    ] = "none,rule,mpc,oracle",
    policy: Annotated[str | None, typer.Option(help="Policy file for the rl controller.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the runs.")] = Path("runs/compare"),
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: path=value.")
    ] = None,
) -> None:
    """Run each controller on the same scenario and print the comparison table."""
    from twin.compare import COMPARE_COLUMNS, compare_controllers
    from twin.scenario import load_scenario

    names = [c.strip() for c in controllers.split(",") if c.strip()]
    try:
        sc = load_scenario(scenario, set_ or [])
        table = compare_controllers(sc, names, out, policy=policy)
    except TwinError as exc:
        _fail(exc)
        return
    view = Table(title=f"{sc.name}: controllers compared")
    for column in table.columns:
        view.add_column(
            COMPARE_COLUMNS[column], justify="left" if column == "controller" else "right"
        )
    for _, row in table.iterrows():
        view.add_row(*[row[c] if c == "controller" else _fmt(row[c]) for c in table.columns])
    console.print(view)
    console.print(
        "cost*: energy cost with the change of stored battery energy valued at the terminal "
        "price; saved: vs none; of oracle: share of the oracle's savings; ms/step: controller "
        "compute time including set-up"
    )


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:,.3f}"


if __name__ == "__main__":
    app()
