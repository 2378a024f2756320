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


if __name__ == "__main__":
    app()
