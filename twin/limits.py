"""Bounds on what a scenario may ask for: safe names and paths, and the size of a run.

A scenario comes from a file someone wrote, perhaps someone else. Names become
directories, MQTT topics and InfluxDB tags, so they must be plain identifiers; an
output directory must stay below the working directory (``twin run --out`` may point
anywhere); and a run must fit in memory and on disk, which is checked before it starts
from its steps and series (:func:`run_size`). Recorded results stream to disk in chunks
(:mod:`twin.recorder`), so they take disk in proportion to the steps but memory only a
chunk per simulator. What takes memory per step is the KPIs' time x asset tables and the
exogenous series the models compute, and both are bounded by windows: the KPIs read
:data:`KPI_WINDOW_STEPS` steps at a time, the models compute a window of
:func:`models.window.window_steps` at a time. So a run's memory grows with its steps up to
a window and then stays flat: a month at 1 s needs what a day does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "ASSET_NAME_MAX",
    "BYTES_PER_UNIT_STEP",
    "BYTES_PER_VALUE_DISK",
    "BYTES_PER_VALUE_MEMORY",
    "KPI_WINDOW_STEPS",
    "NAME_MAX",
    "RunSize",
    "asset_name_problems",
    "name_problems",
    "output_dir_problems",
    "run_size",
]

#: Longest scenario name (it names the run directory and the InfluxDB ``site`` tag).
NAME_MAX = 100
#: Longest asset name (MQTT topic level, InfluxDB tag, results column).
ASSET_NAME_MAX = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
#: Peak memory per value of a series the KPIs read (its time x asset table, what
#: :meth:`twin.results.Results.wide` reads to build it and the KPIs' temporaries),
#: measured on these machines, with some margin. Other recorded series take no memory
#: per step (they stream to disk).
BYTES_PER_VALUE_MEMORY = 48
#: Memory per step and asset unit of the series models precompute over the whole run
#: (load profiles, PV, tariff: about 21 B measured on the demo site), with a margin.
BYTES_PER_UNIT_STEP = 32
#: The KPIs of lazy results are summed this many steps at a time (18 h at 1 s; a year at
#: 15 min in one window, as fast as one table): a window's tables, never the run's
#: (:func:`twin.kpi.compute_kpis`).
KPI_WINDOW_STEPS = 65_536
#: Disk per recorded value in ``results.parquet`` (dictionary-encoded tags), generous.
BYTES_PER_VALUE_DISK = 12


def name_problems(value: Any, max_length: int = NAME_MAX) -> list[str]:
    """What is wrong with ``value`` as a name that becomes one path component.

    Accepted: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or a digit
    (so never ``.``, ``..``, ``~``, a hidden file or an option), at most ``max_length``.
    """
    if not isinstance(value, str):
        return [f"expected a name (text), got {type(value).__name__}"]
    if not 1 <= len(value) <= max_length:
        return [f"expected 1..{max_length} characters, got {len(value)}"]
    if not _NAME.match(value):
        return [
            f"expected letters, digits, '_', '.' or '-', starting with a letter or digit "
            f"(a safe directory name), got {value!r}"
        ]
    return []


def asset_name_problems(value: str) -> list[str]:
    """What is wrong with an asset name (an identifier: no ``.``, ``/``, spaces)."""
    if not 1 <= len(value) <= ASSET_NAME_MAX:
        return [f"expected 1..{ASSET_NAME_MAX} characters, got {len(value)}"]
    if not _ASSET_NAME.match(value):
        return [f"expected letters, digits, '_' or '-' (an identifier), got {value!r}"]
    return []


def output_dir_problems(template: str) -> list[str]:
    """What is wrong with ``outputs.dir``: it must be a relative path below the working dir.

    ``{name}`` is the only placeholder. ``..``, absolute paths, ``~`` and backslashes
    are refused: a scenario file must not write outside the directory it runs in
    (``twin run --out`` chooses any directory explicitly).
    """
    try:
        text = template.format(name="name")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        return [f"expected a path whose only placeholder is {{name}}, got {template!r} ({exc!r})"]
    if "\x00" in text or "\\" in text:
        return [f"expected a path without NUL or backslash characters, got {template!r}"]
    path = PurePosixPath(text)
    if path.is_absolute() or text.startswith("~"):
        return [
            f"expected a path relative to the working directory, got {template!r} "
            "(use `twin run --out DIR` to write elsewhere)"
        ]
    if ".." in path.parts:
        return [f"expected a path below the working directory (no '..'), got {template!r}"]
    if not path.parts:
        return [f"expected a run directory, got {template!r} (the working directory itself)"]
    return []


@dataclass(frozen=True)
class RunSize:
    """What a run needs: steps, recorded series and values, memory and disk (bytes).

    ``series`` are recorded (disk); ``kpi_series`` of them are read whole by the KPIs
    and ``units`` precompute exogenous series (memory per step).
    """

    steps: int
    series: int
    kpi_series: int = 0
    units: int = 0
    kpi_window_steps: int | None = None
    unit_window_steps: int | None = None

    @property
    def values(self) -> int:
        """Recorded values (steps x series)."""
        return self.steps * self.series

    @property
    def memory_bytes(self) -> int:
        """Peak memory that grows with the steps (up to a window): KPI tables, exogenous series.

        ``kpi_window_steps`` and ``unit_window_steps`` bound the steps each holds at once
        (None: the whole run).
        """
        kpi_steps = min(self.steps, self.kpi_window_steps or self.steps)
        unit_steps = min(self.steps, self.unit_window_steps or self.steps)
        return (
            kpi_steps * self.kpi_series * BYTES_PER_VALUE_MEMORY
            + unit_steps * self.units * BYTES_PER_UNIT_STEP
        )

    @property
    def disk_bytes(self) -> int:
        """Size of ``results.parquet``, an upper estimate."""
        return self.values * BYTES_PER_VALUE_DISK


def _outputs(kind: str) -> tuple[int, int]:
    """Outputs of a registered model: (per element of its fleet, per unit)."""
    from twin.registry import get_model

    outputs = get_model(kind).outputs
    per_element = sum(1 for port in outputs.values() if port.group == kind)
    return per_element, len(outputs) - per_element


def run_size(scenario: Any, n_buses: int, n_lines: int, n_trafos: int) -> RunSize:
    """An upper estimate of the series a resolved scenario records, and so its size.

    Counts every output of every asset model (twice: true and measured values), the
    grid's per-bus, per-line and per-transformer outputs and their sensors' measurements,
    and a margin for the tariff, controller, faults and adapters. The KPIs read every
    asset's power (and a battery's five states), every bus voltage and line loading,
    and a dozen site series; every asset unit holds exogenous series.
    """
    series = 0
    kpi_series = 16  # point of connection, tariff, margin
    units = 0
    for kind in ("pv", "battery", "load", "ev"):
        per_element, per_unit = _outputs(kind)
        for unit in scenario.units(kind):
            elements = int(unit.get("chargers") or 1)
            series += 2 * (per_element * elements + per_unit)
            kpi_series += elements + (5 if kind == "battery" else 0)
            units += 1
    # per bus v_pu and va_deg, per line and transformer its loading; measured v_pu and loading
    series += 3 * n_buses + 2 * n_lines + 2 * n_trafos + 32
    kpi_series += n_buses + n_lines
    from models.window import window_steps

    clock = scenario.clock()
    unit_window = window_steps(clock, BYTES_PER_UNIT_STEP)  # 6 h, or as many as 8 MiB hold
    return RunSize(clock.n_steps, series, kpi_series, units, KPI_WINDOW_STEPS, unit_window)
