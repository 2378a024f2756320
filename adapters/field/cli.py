"""``twin field``: options to :class:`FieldOptions`, the run, its summary table.

The command's options are declared in :mod:`twin.cli`; this module does the work so the
command line loads the emulator only when it is used.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from rich.table import Table

from adapters.field.emulator import FieldOptions, FieldResult, run_field
from adapters.field.impair import Impairments
from adapters.field.noise import parse_bias
from adapters.field.plan import PlanOptions, Plant, sensor_plan
from adapters.mqtt.auth import MqttAuth, read_secret
from twin.errors import TwinError

__all__ = ["count_table", "field_command", "options_from", "summary_table"]


def options_from(args: dict[str, Any]) -> FieldOptions:
    """The emulator's options from the command's arguments (by option name).

    Raises
    ------
    TwinError
        For a bad option or an unreadable password.
    """
    plan = PlanOptions(
        groups=tuple(g.strip() for g in args["groups"].split(",") if g.strip()),
        redundancy=args["redundancy"],
        gateway_size=args["gateway_size"],
        fmt=args["fmt"],
        prefix=args["prefix"],
    )
    impair = Impairments(
        jitter_s=args["jitter_s"],
        reorder=args["reorder"],
        duplicates=args["duplicates"],
        dropout=args["dropout"],
        skew_s=args["skew_s"],
        seed=args["impair_seed"],
        bad_quality=args["bad_quality"],
    )
    password = None
    if args["password_env"] or args["password_file"]:
        password = read_secret(
            env=args["password_env"], file=args["password_file"], what="field password"
        )
    tls = {k: str(args[k]) if args[k] else None for k in ("ca_file", "cert_file", "key_file")}
    auth = MqttAuth(args["username"], password, tls=any(tls.values()), **tls)
    options = FieldOptions(
        plan=plan,
        impair=impair,
        speed=args["speed"],
        wall_start=args["wall_start"],
        seed=args["seed"],
        biases=tuple(parse_bias(b) for b in args["bias"] or []),
        broker=args["broker"],
        client_id=args["client_id"],
        auth=auth,
        buffer_max=args["buffer"],
        max_lateness_s=args["max_lateness_s"],
    )
    options.check()
    return options


def count_table(name: str, sensors: Any) -> Table:
    """Sensors per group and kind, gateways and values per step."""
    table = Table(title=f"{name}: field sensors")
    for column in ("kind", "elements", "sensors"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, rows in sensors.groupby("kind", sort=False):
        table.add_row(str(kind), str(rows["element"].nunique()), str(len(rows)))
    table.add_row("all", str(sensors["element"].nunique()), str(len(sensors)), style="bold")
    table.caption = f"{sensors['gateway'].nunique()} gateway(s); {len(sensors)} values per step"
    return table


def summary_table(result: FieldResult) -> Table:
    """The run's counts, rates, lateness and link statistics."""
    s = result.summary
    table = Table(title=f"{s['scenario']}: field run ({s['status']})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in s["counts"].items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    rates = s["rates"]
    table.add_row("messages/s", f"{rates['messages_per_s']:,.0f}")
    table.add_row("values/s", f"{rates['values_per_s']:,.0f}")
    late = s["lateness"]
    if late["p99_s"] is not None:
        table.add_row("lateness p50/p99/max (ms)", " / ".join(
            f"{late[k] * 1e3:.1f}" for k in ("p50_s", "p99_s", "max_s")))  # fmt: skip
    link = s["link"]
    for key in ("published", "acked", "dropped", "refused", "buffered_peak", "connects"):
        table.add_row(f"link {key}", f"{link[key]:,}")
    return table


def field_command(args: dict[str, Any], console: Any, err_console: Any, fail: Any) -> None:
    """Run ``twin field`` with the command's arguments; exit 1 on a lossy run."""
    import typer

    from twin.scenario import load_scenario

    overrides = list(args["set_"] or [])
    if args["duration"]:
        overrides.append(f"duration={args['duration']}")
    try:
        options = options_from(args)
        scenario = load_scenario(args["scenario"], overrides)
        if args["plan_only"]:
            sensors = sensor_plan(Plant.from_scenario(scenario), options.plan)
            console.print(count_table(scenario.name, sensors))
            return
        out = args["out"] or Path("runs") / "field" / scenario.name
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            if stop.is_set() or signum == signal.SIGINT and not publishing.is_set():
                raise KeyboardInterrupt  # a second Ctrl-C, or before publishing began
            stop.set()  # publishing ends; the truth says what went out

        publishing = threading.Event()
        previous = {n: signal.signal(n, request_stop) for n in (signal.SIGTERM, signal.SIGINT)}

        def ready(prepared: Any) -> None:
            publishing.set()
            console.print(count_table(scenario.name, prepared.sensors))
            console.print(
                f"publishing to {options.broker.split('@')[-1]} from wall "
                f"{prepared.wall_start:.3f} at speed {options.speed:g}; Ctrl-C stops (truth kept)",
                highlight=False,
            )

        try:
            result = run_field(
                scenario, options, out, progress=args["progress"], stop=stop, on_ready=ready
            )
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    except (TwinError, OSError) as exc:
        fail(exc)
        return
    console.print(summary_table(result))
    console.print(f"truth in [bold]{out}[/] (field.json, truth.parquet, sensors.parquet)")
    if not result.ok:
        for problem in result.summary["problems"]:
            err_console.print(f"[bold red]field run FAILED:[/] {problem}", highlight=False)
        raise typer.Exit(code=1)
