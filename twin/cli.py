"""The ``twin`` command line."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import TwinError

HELP = "Microgrid digital twin."
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
console = Console()
err_console = Console(stderr=True)

# The broker login and TLS options of the commands that connect to MQTT.
PasswordEnv = Annotated[str | None, typer.Option(help="Environment variable holding the password.")]
PasswordFile = Annotated[Path | None, typer.Option(help="File whose first line is the password.")]
CaFile = Annotated[Path | None, typer.Option(help="TLS: CA of the broker.")]
CertFile = Annotated[Path | None, typer.Option(help="TLS: client certificate.")]
KeyFile = Annotated[Path | None, typer.Option(help="TLS: client key.")]


def _fail(exc: Exception) -> None:
    if isinstance(exc, OSError):
        exc = _file_error(exc)
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _file_error(exc: OSError) -> TwinError:
    """A file-system error (an unwritable --out, say) as a named error, path first."""
    where = f"{exc.filename}: " if exc.filename else ""
    return TwinError(f"{where}{exc.strerror or exc}")


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
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Pace the run in real time (mosaik rt_factor).")
    ] = False,
    rt_factor: Annotated[
        float,
        typer.Option(min=1e-9, max=1e6, help="Wall seconds per simulated second with --realtime."),
    ] = 1.0,
    influx: Annotated[
        str | None,
        typer.Option(help="Also write to InfluxDB 1.x at this URL (outputs.influx.url)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=1024, help="A fleet in mode split: worker processes."),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="What steps the world: auto (direct where every simulator allows it), "
            "mosaik or direct; default $TWIN_EXECUTOR or auto."
        ),
    ] = None,
) -> None:
    """Run a scenario or a fleet of sites; write results, run metadata and KPIs.

    A fleet file (``kind: fleet`` or a ``sites`` list, :mod:`twin.fleet`) runs every
    site on one clock, in one world or split; ``--set`` then overrides fleet fields.
    """
    from twin.inputs import read_yaml
    from twin.run import RunCheckError, run_scenario
    from twin.scenario import load_scenario

    try:
        if executor is not None:  # this process's runs: the fleet's world, comparison runs
            from twin.executor import EXECUTOR_ENV, requested_executor

            os.environ[EXECUTOR_ENV] = requested_executor(executor)
        raw = read_yaml(scenario, "scenario")
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    from twin.fleet.spec import is_fleet

    if is_fleet(raw):
        if realtime or influx:
            _fail(TwinError("a fleet runs neither --realtime nor --influx"))
        _run_fleet(scenario, raw, out, list(set_ or []), workers, progress)
        return
    overrides = list(set_ or [])
    if influx:
        overrides.append(f"outputs.influx.url={influx}")
    failures = []
    try:
        sc = load_scenario(scenario, overrides)
        _start_up_done()
        result = run_scenario(sc, out, progress=progress, rt_factor=rt_factor if realtime else None)
    except RunCheckError as exc:
        result, failures = exc.result, exc.failures
    except (TwinError, OSError) as exc:  # ConnectionError is an OSError
        _fail(exc)
        return
    console.print(kpi_table(result.kpis, f"{sc.name}: KPIs"))
    stored = result.metadata.get("influx")
    if stored:
        from adapters.influx.outputs import summary_line

        console.print(f"InfluxDB: {summary_line(stored)}", highlight=False)
    if result.metadata.get("ingest"):
        from adapters.ingest.stats import summary_line as ingest_line

        console.print(ingest_line(result.metadata["ingest"]), highlight=False)
    rt = result.metadata.get("realtime")
    if rt and rt.get("steps"):
        console.print(
            f"real time x{rt['rt_factor']:g}: step lateness"
            f" p50 {rt['lateness_p50_s'] * 1e3:.1f} ms,"
            f" p99 {rt['lateness_p99_s'] * 1e3:.1f} ms, max {rt['lateness_max_s'] * 1e3:.1f} ms"
            f" (span p99 {rt['span_p99_s'] * 1e3:.1f} ms);"
            f" {rt['steps_late']} of {rt['steps']} steps later than {rt['warn_after_s']:g} s"
        )
    wall = result.metadata["wall_s"]
    console.print(f"results in [bold]{result.out_dir}[/] ({wall:.1f} s wall)")
    if failures:
        for failure in failures:
            err_console.print(f"[bold red]check failed:[/] {failure}", highlight=False)
        err_console.print(
            f"[bold red]run FAILED[/] {len(failures)} check(s): status 'failed' in "
            f"{result.out_dir / 'run.json'}",
            highlight=False,
        )
        raise typer.Exit(code=1)


def _run_fleet(
    path: Path,
    raw: dict[str, Any],
    out: Path | None,
    overrides: list[str],
    workers: int | None,
    progress: bool,
) -> None:
    """``twin run FLEET.yaml``: every site, a table of sites, the fleet's totals."""
    _start_up_done()
    from twin.fleet import FleetError, run_fleet, validate_fleet
    from twin.scenario import apply_overrides

    try:
        fleet = validate_fleet(apply_overrides(raw, overrides), path.parent, str(path))
        result = run_fleet(fleet, out, n_workers=workers, progress=progress)
        failed = None
    except FleetError as exc:
        result, failed = exc.result, exc
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    table = Table(title=f"fleet {fleet.name} ({result.metadata['mode']}): sites")
    shown = ("e_import_kwh", "cost_eur", "peak_import_kw")
    for column in ("site", "status", *shown):
        table.add_column(column, justify="left" if column in ("site", "status") else "right")
    for name, site in result.metadata["sites"].items():
        site_kpis = result.kpis["sites"].get(name, {})
        values = [f"{site_kpis[k]:,.2f}" if k in site_kpis else "-" for k in shown]
        table.add_row(name, site["status"], *values)
    console.print(table)
    console.print(kpi_table(result.kpis["fleet"], f"fleet {fleet.name}: totals"))
    wall = result.metadata["wall_s"]
    console.print(f"results in [bold]{result.out_dir}[/] ({wall:.1f} s wall)")
    if failed is not None:
        err_console.print(f"[bold red]fleet FAILED[/] {failed}", highlight=False)
        raise typer.Exit(code=1)


@app.command()
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: path=value (repeatable), as with run."),
    ] = None,
) -> None:
    """Check a scenario or fleet (with its overrides); report every problem with its path."""
    from twin.assets.schema import ASSET_KINDS
    from twin.fleet.spec import is_fleet, validate_fleet
    from twin.inputs import read_yaml
    from twin.scenario import apply_overrides, load_scenario

    try:
        raw = read_yaml(scenario, "scenario")
        if is_fleet(raw):
            fleet = validate_fleet(apply_overrides(raw, list(set_ or [])), scenario.parent)
            steps = fleet.sites[0].scenario.clock().n_steps
            console.print(
                f"[green]ok[/] fleet {fleet.name}: {len(fleet.sites)} sites, {steps} steps "
                f"of {fleet.step}, mode {fleet.mode}"
            )
            return
        sc = load_scenario(scenario, list(set_ or []))
    except TwinError as exc:
        _fail(exc)
        return
    counts = ", ".join(f"{len(getattr(sc.assets, k))} {k}" for k in ASSET_KINDS)
    console.print(f"[green]ok[/] {sc.name}: {sc.clock().n_steps} steps of {sc.step}; {counts}")


@app.command()
def plan(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    fmt: Annotated[
        str, typer.Option("--format", help="table, mermaid or dot (Graphviz).")
    ] = "table",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: path=value (repeatable), as with run."),
    ] = None,
) -> None:
    """Print the world a scenario builds (simulators, entities, connections) without running it."""
    from twin.scenario import load_scenario
    from twin.world import plan_world

    if fmt not in ("table", "mermaid", "dot"):
        _fail(TwinError(f"--format: expected table, mermaid or dot, got {fmt!r}"))
        return
    try:
        sc = load_scenario(scenario, list(set_ or []))
        world = plan_world(sc, sc.output_dir(), run_id="plan")
    except TwinError as exc:
        _fail(exc)
        return
    text = {"table": world.table, "mermaid": world.mermaid, "dot": world.dot}[fmt]()
    print(text, end="")  # plain: a table or a graph to pipe into a file or a renderer


@app.command()
def report(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directory of `twin run`; several to compare.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Page of a comparison (default: comparison.html beside the first run); "
            "a single run's page is its report.html."
        ),
    ] = None,
) -> None:
    """Write one interactive HTML page for a run, or compare runs side by side.

    One run: its report.html (plotly inline: opens offline, one file to mail). Several:
    one page with the KPI changes against the first run and the series overlaid. A run
    that failed its checks or did not end is rendered too, with a red banner on the page
    and its status, failed checks and error on stderr (the exit code stays 0: the report
    was written; `twin run` is the command that fails).
    """
    from twin.report import render_comparison, render_report, run_outcome
    from twin.results import read_run

    if out is not None and len(run_dirs) == 1:
        _fail(TwinError("--out: only when comparing runs (a run's page is its report.html)"))
        return
    try:
        if len(run_dirs) == 1:
            page = render_report(run_dirs[0])
        else:
            target = out or run_dirs[0].resolve().parent / "comparison.html"
            page = render_comparison(run_dirs, target)
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    console.print(f"report: [bold]{page}[/]", soft_wrap=True)
    for run_dir in run_dirs:
        outcome = run_outcome(read_run(run_dir), run_dir)
        if not outcome.finished:
            where = f"{run_dir}: " if len(run_dirs) > 1 else ""
            err_console.print(
                f"[bold red]{where}{outcome.headline}[/]", highlight=False, soft_wrap=True
            )
            for line in outcome.details:
                err_console.print(f"  - {line}", highlight=False, soft_wrap=True)


@app.command()
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `twin run`.")],
    model: Annotated[
        Path | None, typer.Option(help="Learned model directory (default: physics rules).")
    ] = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Static-threshold baseline instead.")
    ] = False,
) -> None:
    """Health indices and alerts from a run's measured values (health/alerts files)."""
    from twin.diagnostics.engine import Settings
    from twin.diagnostics.report import summary_line
    from twin.diagnostics.run import diagnose_run
    from twin.diagnostics.score import read_labels, score_dir

    try:
        labels = read_labels(run_dir / "labels.json")  # checked before anything is written
        settings = Settings(mode="threshold") if baseline else None
        result = diagnose_run(run_dir, model, settings, features=False)
        scores = score_dir(run_dir, result.alerts) if labels else None
    except TwinError as exc:
        _fail(exc)
        return
    console.print(
        f"{len(result.alerts)} alert(s) in {result.steps} steps "
        f"(engine {1000 * result.engine_s / max(result.steps, 1):.2f} ms/step); "
        f"wrote {run_dir / 'health.parquet'}, alerts.parquet, alerts.json"
    )
    if scores is not None:  # the ground truth: the alerts scored
        console.print(f"scores.json: {summary_line(scores)}", highlight=False, soft_wrap=True)
    console.print(_health_table(result.health))
    if result.alerts:
        alerts = Table(title="alerts")
        for column in ("alert", "kind", "severity", "confidence", "start", "end", "evidence"):
            alerts.add_column(
                column, justify="right" if column in ("severity", "confidence") else "left"
            )
        for a in result.alerts:
            alerts.add_row(
                a["alert_id"],
                a["kind"],
                f"{a['severity']:.2f}",
                f"{a['confidence']:.2f}",
                a["start"][:16],
                (a["end"] or "open")[:16],
                ", ".join(a["evidence"][:3]),
            )
        console.print(alerts)


def _health_table(health: Any, healthy: float = 0.95) -> Table:
    """The assets whose lowest health index fell below ``healthy``, worst first."""
    rows = health.dropna(subset=["value"])
    worst = rows.loc[rows.groupby(["asset"], observed=True)["value"].idxmin()]
    worst = worst.sort_values("value")
    low = worst[worst["value"] < healthy]
    table = Table(
        title=f"health: assets whose lowest index fell below {healthy:g}",
        caption=f"{len(worst) - len(low)} other asset(s): every index >= {healthy:g}",
    )
    for column in ("asset", "kind", "index", "lowest", "at (UTC)", "mean"):
        table.add_column(column, justify="right" if column in ("lowest", "mean") else "left")
    for _, row in low.iterrows():
        series = rows[(rows["asset"] == row["asset"]) & (rows["quantity"] == row["quantity"])]
        table.add_row(
            str(row["asset"]),
            str(row["kind"]),
            str(row["quantity"]),
            f"{row['value']:.3f}",
            str(row["time"])[:16],
            f"{series['value'].mean():.3f}",
        )
    return table


@app.command()
def train(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML file (with a battery) to train on its own site; "
            "omitted: the generalist over the randomised domain (twin.rl.domain)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Policy file to write.")] = Path("policy.zip"),
    days: Annotated[
        int | None, typer.Option(min=1, help="Training days to use (default all).")
    ] = None,
    timesteps: Annotated[
        int | None,
        typer.Option(min=1, max=10**9, help="Environment steps (default: DEFAULT_TIMESTEPS)."),
    ] = None,
    algo: Annotated[str, typer.Option(help="sac or ppo.")] = "sac",
    seed: Annotated[int, typer.Option(help="Seed (training is reproducible).")] = 0,
    threads: Annotated[
        int, typer.Option(min=1, max=256, help="torch threads (1 is fastest on a busy machine).")
    ] = 1,
    base: Annotated[
        str,
        typer.Option(
            help=(
                "What the action corrects: MPC's day-ahead forecast (day_ahead) or "
                "persistence (forecast), or the setpoint of mpc, plan, rule."
            )
        ),
    ] = "day_ahead",
    replan: Annotated[str, typer.Option(help="How often the MPC bases re-plan.")] = "15min",
    scale: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Largest setpoint correction.")
    ] = 0.1,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: path=value.")
    ] = None,
) -> None:
    """Train an RL dispatch policy (validation days held out)."""
    from twin.rl.train import DEFAULT_TIMESTEPS, train_policy
    from twin.scenario import load_scenario

    try:
        sc = load_scenario(scenario, set_ or []) if scenario is not None else None
        result = train_policy(
            sc,
            out,
            timesteps=timesteps or DEFAULT_TIMESTEPS,
            days=days,
            seed=seed,
            algo=algo,
            threads=threads,
            base=base,
            replan=replan,
            scale=scale,
        )
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    except ValueError as exc:
        _fail(TwinError(str(exc)))
        return
    console.print(
        f"policy [bold]{result.policy}[/] ({len(result.train_days)} training days; "
        f"{len(result.validation_days)} validation days held out; {result.seconds:.0f} s); "
        f"curve {result.curve_png}"
    )


@app.command()
def compare(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    controllers: Annotated[
        str, typer.Option(help="Comma-separated controllers.")
    ] = "none,rule,mpc,oracle",
    policy: Annotated[str | None, typer.Option(help="Policy file for the rl controller.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the runs.")] = Path("runs/compare"),
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv or json (one record per controller).")
    ] = "table",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: path=value.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the runs compared as one HTML page here."),
    ] = None,
) -> None:
    """Run each controller on the same scenario and print the comparison."""
    from twin.compare import FORMATS, compare_controllers, write_comparison
    from twin.control.schema import CONTROLLERS
    from twin.scenario import load_scenario

    if fmt not in FORMATS:
        _fail(TwinError(f"--format: expected {', '.join(FORMATS)}, got {fmt!r}"))
    names = [c.strip() for c in controllers.split(",") if c.strip()]
    known = CONTROLLERS
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        _fail(
            TwinError(
                f"--controllers {controllers!r}: expected a comma-separated list of "
                f"{', '.join(known)}" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        )
    try:
        sc = load_scenario(scenario, set_ or [])
        table = compare_controllers(sc, names, out, policy=policy)
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    write_comparison(table, fmt, console, f"{sc.name}: controllers compared")
    if report is not None:
        from twin.report import render_comparison

        try:
            page = render_comparison([out / name for name in names], report)
        except (TwinError, OSError) as exc:
            _fail(exc)
            return
        (console if fmt == "table" else err_console).print(f"report: {page}", soft_wrap=True)


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:,.3f}"


@app.command()
def device(
    broker: Annotated[str, typer.Option(help="Broker URL, mqtt://host:port.")],
    site: Annotated[str, typer.Option(help="Site (the scenario's name).")],
    asset: Annotated[str, typer.Option(help="The battery asset this device stands for.")],
    param: Annotated[
        list[str] | None,
        typer.Option(help="Battery parameter key=value (repeatable), e.g. e_kwh=54."),
    ] = None,
    topic: Annotated[str, typer.Option(help="Measurement topic template.")] = (
        "field/{site}/{asset}/{quantity}"
    ),
    setpoint_topic: Annotated[str, typer.Option(help="Setpoint topic template.")] = (
        "field/{site}/{asset}/set/{quantity}"
    ),
    silent_after: Annotated[
        int | None, typer.Option(min=0, help="Stop answering after this many setpoints.")
    ] = None,
    garbage_every: Annotated[
        int | None, typer.Option(min=1, help="Send a malformed payload every N answers.")
    ] = None,
    miss_every: Annotated[
        int | None, typer.Option(min=1, help="Lose every N-th answer (intermittent misses).")
    ] = None,
    own_clock: Annotated[
        bool, typer.Option("--own-clock", help="Stamp answers with the wall clock.")
    ] = False,
    clock_skew_s: Annotated[
        float,
        typer.Option(min=-1e9, max=1e9, help="Seconds added to the answers' time stamps."),
    ] = 0.0,
    echo_seq: Annotated[
        bool, typer.Option(help="Echo the setpoint's seq in the answers (the contract).")
    ] = True,
    username: Annotated[str | None, typer.Option(help="Broker login (the asset's name).")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    ready_file: Annotated[Path | None, typer.Option(help="Touch this file once connected.")] = None,
) -> None:
    """Run an emulated field battery that answers setpoints over MQTT (for HIL)."""
    import logging
    import signal

    from adapters.mqtt.auth import MqttAuth, read_secret, redacted
    from adapters.mqtt.emulator import FieldBattery, FieldBatteryConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    params: dict[str, float] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            _fail(TwinError(f"--param {item!r}: expected key=number"))
    try:
        password = (
            read_secret(env=password_env, file=password_file, what="device password")
            if password_env or password_file
            else None
        )
    except TwinError as exc:
        _fail(exc)
        return
    tls = {k: str(v) if v else None for k, v in (("ca_file", ca_file), ("cert_file", cert_file),
                                                 ("key_file", key_file))}  # fmt: skip
    auth = MqttAuth(username, password, tls=any(tls.values()), **tls)
    config = FieldBatteryConfig(
        broker,
        site,
        asset,
        params,
        setpoint_topic=setpoint_topic,
        topic=topic,
        silent_after=silent_after,
        garbage_every=garbage_every,
        miss_every=miss_every,
        own_clock=own_clock,
        clock_skew_s=clock_skew_s,
        echo_seq=echo_seq,
        auth=auth,
    )
    try:
        emulated = FieldBattery(config).start()
    except (ValueError, ConnectionError) as exc:
        _fail(exc)
        return
    signal.signal(signal.SIGTERM, lambda *_: emulated.stop())
    if ready_file is not None:
        ready_file.touch()
    shown = redacted(broker)
    console.print(f"emulated battery {asset!r} of {site!r} on {shown}; Ctrl-C to stop")
    try:
        emulated._stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulated.link.close()


@app.command()
def field(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file (the true plant).")],
    broker: Annotated[str, typer.Option(help="Broker URL, mqtt[s]://host:port.")] = (
        "mqtt://127.0.0.1:1883"
    ),
    out: Annotated[
        Path | None, typer.Option(help="Truth directory (default runs/field/<name>).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="topic, json or senml.")] = "topic",
    groups: Annotated[str, typer.Option(help="Sensor groups.")] = "bus,line,trafo,assets,poc",
    redundancy: Annotated[int, typer.Option(help="Sensors per quantity and location.")] = 1,
    gateway_size: Annotated[int, typer.Option(help="Sensors per gateway.")] = 50,
    prefix: Annotated[str, typer.Option(help="Topic prefix.")] = "field",
    speed: Annotated[float, typer.Option(help="Plant seconds per wall second.")] = 1.0,
    wall_start: Annotated[
        float | None, typer.Option(help="Epoch s of the start (default: next second + 1).")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="Plant time to publish (10min).")] = None,
    seed: Annotated[int | None, typer.Option(help="Noise seed (default: the scenario's).")] = None,
    jitter_s: Annotated[float, typer.Option(help="Publish delay U(0, J), plant s.")] = 0.0,
    reorder: Annotated[float, typer.Option(help="Share of messages held back a step.")] = 0.0,
    duplicates: Annotated[float, typer.Option(help="Share of messages sent twice.")] = 0.0,
    dropout: Annotated[float, typer.Option(help="Share of samples not sent.")] = 0.0,
    skew_s: Annotated[float, typer.Option(help="Gateway clock skew U(-S, S), s.")] = 0.0,
    impair_seed: Annotated[int, typer.Option(help="Seed of the impairments.")] = 0,
    bad_quality: Annotated[float, typer.Option(help="Share of samples sent with q=0.")] = 0.0,
    bias: Annotated[
        list[str] | None,
        typer.Option(help="Bias: KEY=SIGMAS or KEY=SIGMAS@FROM_S (plant s); repeatable."),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a scenario field: path=value.")
    ] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id.")] = "twin-field",
    buffer: Annotated[int, typer.Option(help="Outbox (messages) while the broker is away.")] = (
        100_000
    ),
    username: Annotated[str | None, typer.Option(help="Broker login.")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    max_lateness_s: Annotated[
        float, typer.Option(help="Fail (exit 1) when publish lateness p99 exceeds this, s.")
    ] = 2.0,
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="Print the sensor counts; publish nothing.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Emulate a plant's field sensors over MQTT (ground truth to Parquet).

    Exits 1 when a message was dropped, refused or not acknowledged or publishing fell
    behind (lateness p99 > --max-lateness-s; see field.json), 2 on bad options, a refused
    login or a --wall-start more than one step in the past.
    """
    from adapters.field.cli import field_command

    field_command(locals(), console, err_console, _fail)


@app.command()
def broker(
    data_dir: Annotated[Path, typer.Option(help="Persistence and log directory.")] = Path(
        "runs/mosquitto"
    ),
    port: Annotated[int, typer.Option(help="Loopback port.")] = 1883,
    user: Annotated[
        list[str] | None,
        typer.Option(help="NAME=ENV: add user NAME, password from variable ENV (repeatable)."),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="An existing mosquitto_passwd file to start from.")
    ] = None,
    acl_file: Annotated[Path | None, typer.Option(help="ACL (default: the shipped one).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS: the broker's certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS: the broker's key.")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="TLS: CA of client certificates.")] = None,
    require_certificate: Annotated[
        bool, typer.Option("--require-certificate", help="Clients must show a certificate.")
    ] = False,
) -> None:
    """Run Mosquitto with twin's configuration (persistence, deep queues) until stopped.

    Ctrl-C, SIGTERM or SIGHUP stop the broker (SIGTERM: it saves its state) and then
    this command. With users (or a password file) it refuses anonymous clients and
    applies the ACL (a device writes only its own topics); with a certificate it speaks
    TLS.
    """
    import signal
    import time

    from adapters.mqtt.auth import read_secret
    from adapters.mqtt.broker import BrokerSecurity, Mosquitto

    mosquitto: Mosquitto | None = None
    previous: dict[int, Any] = {}  # signal -> the handler it had before

    def stop_on(signum: int, frame: object) -> None:
        for number in previous:  # a second signal must not cut the broker's shutdown short
            signal.signal(number, signal.SIG_IGN)
        raise _Stopped(signum)

    def stop_broker() -> None:
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        try:
            if mosquitto is not None:
                mosquitto.stop()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    for number in (signal.SIGTERM, signal.SIGHUP):
        previous[number] = signal.signal(number, stop_on)
    try:
        try:
            users = {}
            for item in user or []:
                name, sep, env = item.partition("=")
                if not sep or not name:
                    raise TwinError(f"--user {item!r}: expected NAME=ENV_VARIABLE")
                users[name] = read_secret(env=env, what=f"broker user {name!r}")
            security = BrokerSecurity(
                users, password_file, acl_file, tls_ca, tls_cert, tls_key, require_certificate
            )
            mosquitto = Mosquitto(data_dir, port, security)
            mosquitto.start()
        except (TwinError, OSError, ValueError, RuntimeError, TimeoutError) as exc:
            _fail(exc)
            return
        stop = "Ctrl-C or SIGTERM to stop"
        console.print(f"mosquitto on {mosquitto.url} (config {mosquitto.config}); {stop}")
        while mosquitto.process is not None and mosquitto.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except _Stopped as stopped:
        console.print(f"{signal.Signals(stopped.signum).name}: stopping mosquitto")
    finally:
        stop_broker()


class _Stopped(BaseException):  # noqa: N818 - a request, not an error (like KeyboardInterrupt)
    """SIGTERM or SIGHUP asked a long-running command to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@app.command()
def campaign(
    file: Annotated[Path, typer.Argument(help="Campaign YAML (base scenario + axes).")],
    out: Annotated[
        Path | None, typer.Option(help="Campaign directory (default runs/campaigns/<name>).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="tcp://host:port of a dask scheduler (default: local).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Local cluster worker processes (or threads); default: one per CPU.",
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(help="Where runs execute: dask (worker processes) or threads (this process)."),
    ] = "dask",
    report: Annotated[
        bool, typer.Option("--report", help="Render heat maps and the worst cases after.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    diagnose: Annotated[
        bool,
        typer.Option(
            "--diagnose",
            help="Diagnose and score every run; add the columns; write scores.json.",
        ),
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(help="Learned model for --diagnose (`twin diagnostics train`)."),
    ] = None,
) -> None:
    """Run every point of a campaign (resuming finished ones) and write its summary.

    Exits 1 when any run failed or, with --diagnose, could not be diagnosed (after
    writing the summary and, with --report, the report).
    """
    from twin.campaign import execute, load_campaign
    from twin.campaign import report as render

    directory = out
    if model is not None and not diagnose:
        _fail(TwinError("--model: only with --diagnose"))
        return
    after = None
    if diagnose:
        from functools import partial

        from twin.diagnostics.campaign import diagnose_campaign

        after = partial(diagnose_campaign, model=model)
    try:
        spec = load_campaign(file)
        directory = out or Path("runs") / "campaigns" / spec.name
        summary = execute(
            spec,
            directory,
            scheduler=scheduler,
            n_workers=workers,
            progress=progress,
            executor=executor,
            after=after,
        )
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    failed = summary[summary["status"] != "finished"]
    resumed = int(summary["resumed"].sum())
    console.print(
        f"{len(summary)} runs ({len(summary) - len(failed)} finished, {resumed} of them "
        f"resumed; {len(failed)} failed): "
        f"{directory / 'summary.parquet'}, {directory / 'summary.csv'}"
    )
    for _, row in summary[summary["rerun_reason"].notna()].iterrows():
        console.print(f"ran again {row['point_id']}: {row['rerun_reason']}", highlight=False)
    for _, row in failed.iterrows():
        err_console.print(f"[red]failed[/] {row['point_id']}: {row['error']}", highlight=False)
    refused = _print_diagnostics(summary, directory) if diagnose else 0
    if report:
        try:
            page, worst = render(directory)
        except TwinError as exc:
            _fail(exc)
            return
        table = Table(title="worst cases: extra cost against the fault-free twin")
        for column in worst.columns:
            table.add_column(str(column))
        for _, row in worst.iterrows():
            table.add_row(*[_fmt(v) if isinstance(v, float) else str(v) for v in row])
        console.print(table)
        console.print(f"report: {page}")
    if not failed.empty:
        err_console.print(f"[bold red]campaign FAILED[/]: {len(failed)} run(s) did not finish")
    if refused:
        err_console.print(f"[bold red]diagnostics FAILED[/] for {refused} run(s)")
    if refused or not failed.empty:
        raise typer.Exit(code=1)


def _print_diagnostics(summary: Any, directory: Path) -> int:
    """Print a campaign's pooled scores and the runs not diagnosed; return their count."""
    from twin.diagnostics.report import scores_table, summary_line

    refused = summary[summary["diagnose_error"].notna()]
    for _, row in refused.iterrows():
        err_console.print(
            f"[red]not diagnosed[/] {row['point_id']}: {row['diagnose_error']}",
            highlight=False,
            soft_wrap=True,
        )
    if (directory / "scores.json").is_file():
        scored = json.loads((directory / "scores.json").read_text())
        console.print(scores_table(scored, title="diagnostics: every run"))
        console.print(summary_line(scored), highlight=False, soft_wrap=True)
    return len(refused)


@app.command()
def grafana(
    out: Annotated[Path, typer.Option(help="Directory for dashboards/ and provisioning/.")] = Path(
        "grafana"
    ),
    influx_url: Annotated[
        str, typer.Option(help="InfluxDB URL as Grafana's server reaches it.")
    ] = "http://influxdb:8086",
    database: Annotated[str, typer.Option(help="InfluxDB database the runs write to.")] = "twin",
    user: Annotated[str | None, typer.Option(help="InfluxDB user (if auth is on).")] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the InfluxDB password in Grafana's "
            "environment (the password is never written to a file)."
        ),
    ] = None,
    link: Annotated[
        Path | None,
        typer.Option(
            help="Print the overview URL of this run directory (its time range).", exists=True
        ),
    ] = None,
    grafana_url: Annotated[str, typer.Option(help="Grafana's URL for --link.")] = (
        "http://localhost:3000"
    ),
) -> None:
    """Generate the Grafana dashboards, provisioning files and alert rules (InfluxQL)."""
    from twin.grafana_provision import DatasourceOptions, GrafanaConfigError, run_link, write_all

    try:
        if link is not None:
            console.print(run_link(link, grafana_url), soft_wrap=True)
            return
        options = DatasourceOptions(influx_url, database, user, password_env)
        written = write_all(out, options)
    except GrafanaConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except OSError as exc:
        _fail(exc)
        return
    for path in written:
        console.print(f"wrote {path}")


influx_app = typer.Typer(no_args_is_help=True, help="InfluxDB: replay what a run left behind.")
app.add_typer(influx_app, name="influx")


@influx_app.command("flush")
def influx_flush(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (holds run.json).")],
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: the run's outputs.influx.url).")
    ] = None,
) -> None:
    """Replay a run's InfluxDB spool (credentials: TWIN_INFLUX_USERNAME/PASSWORD/TOKEN)."""
    from adapters.influx.outputs import flush_spool

    try:
        summary = flush_spool(run_dir, url)
    except TwinError as exc:
        _fail(exc)
        return
    console.print(str(summary), highlight=False, soft_wrap=True)
    if summary.error:
        err_console.print(f"[bold red]error:[/] {summary.error}", highlight=False)
    if not summary.ok:
        raise typer.Exit(code=1)


diagnostics_app = typer.Typer(no_args_is_help=True, help="Diagnostics: learned models.")
app.add_typer(diagnostics_app, name="diagnostics")


@diagnostics_app.command("train")
def diagnostics_train(
    campaign_dir: Annotated[Path, typer.Argument(help="Directory of a finished campaign.")],
    out: Annotated[Path, typer.Option(help="Model directory to write.")] = Path("model"),
    seed: Annotated[int, typer.Option(help="Seed of the classifiers.")] = 0,
) -> None:
    """Train the anomaly models and fault classifiers on a campaign's runs and labels."""
    from twin.diagnostics.train import train_campaign

    try:
        model = train_campaign(campaign_dir, out, seed=seed)
    except (TwinError, OSError) as exc:
        _fail(exc)
        return
    training = model.meta["training"]
    console.print(
        f"model [bold]{out}[/]: {training['runs']} runs ({training['fault_free_runs']} "
        f"fault-free), {training['rows']:,} asset-steps; labels {training['labels']}",
        highlight=False,
        soft_wrap=True,
    )


def run_app() -> typer.Typer:
    """``app`` with its ``run`` command alone, for ``twin run ...``.

    typer builds every command's options before it parses the arguments (tens of ms
    for this command line); ``twin run`` needs one command. The callback (it does
    nothing) keeps the app a group as ``app`` is: usage, help and errors read the same.
    """
    single = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
    single.registered_commands = [info for info in app.registered_commands if info.callback is run]
    single.callback()(_no_options)
    return single


def _no_options() -> None:
    """The single-command app's group callback: no options of its own."""


def main() -> None:
    """The ``twin`` command: the console script and ``python -m twin.cli``.

    ``twin run`` goes through :func:`run_app`, its start-up without the cyclic garbage
    collector (see :func:`_start_up_done`); once it is done (results, ``run.json`` and
    ``kpis.json`` written and closed, the KPIs printed) the process exits without
    tearing the interpreter down (:func:`exit_now`): freeing every module of the
    scientific stack one by one takes longer than a short run's steps.
    """
    if sys.argv[1:2] != ["run"]:
        app()
        return
    gc.disable()
    try:
        run_app()()
    except SystemExit as done:
        if done.code is None or type(done.code) is int:
            exit_now(done.code or 0)
        raise


def _start_up_done() -> None:
    """The scenario is loaded: collect cyclic garbage again, from what the run makes.

    :func:`main` starts ``twin run`` with the collector off: what the start-up makes
    (modules, classes, schemas, the scenario: some 100k objects) lives until the exit,
    and collecting while it grows cost ~0.1 CPU s of a warm week's run. Those objects
    are set aside for good (:func:`gc.freeze`) and collection resumes for the run's
    own objects. A no-op where the collector runs (``app`` called from Python).
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def exit_now(code: int) -> None:
    """End the process with ``code`` once its work is done, skipping the teardown.

    What a normal exit does that matters still happens: the ``atexit`` handlers run
    (logging's flush, finalizers, coverage) and the standard streams are flushed. A
    process with a live non-daemon thread exits normally (Python joins such threads).
    """
    import atexit
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
