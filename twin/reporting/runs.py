"""One run as a report sees it: metadata, outcome, KPIs, series in site time, faults, alerts.

:func:`load_run` reads a run directory once (:func:`twin.reporting.outcome.check_run_dir`
for ``run.json``, ``kpis.json`` and ``results.parquet``; ``labels.json`` for the ground
truth of its faults; ``health.parquet`` and ``alerts.parquet`` where ``twin diagnose``
or the online diagnostics ran). :func:`label_runs` names runs for a comparison after
what differs between them: the controller (with its forecaster or policy), the scenario.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from twin.errors import ResultsError
from twin.reporting.outcome import RunOutcome, check_run_dir
from twin.results import wide

__all__ = ["RunData", "controller_text", "label_runs", "load_run"]


@dataclass
class RunData:
    """A run read for a report.

    Attributes
    ----------
    run_dir : Path
        Its directory.
    meta : dict
        ``run.json``.
    outcome : RunOutcome
        How it ended.
    kpis : dict or None
        ``kpis.json`` (None: the run ended before it wrote it).
    results : pandas.DataFrame
        The tidy results (times in UTC).
    faults : list of dict
        Ground truth of its faults: ``kind``, ``target``, ``start``, ``end`` (UTC).
    health : pandas.DataFrame or None
        ``health.parquet`` (tidy, ``kind`` the asset kind, ``quantity`` the index).
    alerts : pandas.DataFrame or None
        ``alerts.parquet``: ``asset``, ``kind``, ``severity``, ``start``, ``end``, ...
    label : str
        The run's name on the page.
    """

    run_dir: Path
    meta: dict[str, Any]
    outcome: RunOutcome
    kpis: dict[str, Any] | None
    results: pd.DataFrame
    faults: list[dict[str, Any]] = field(default_factory=list)
    health: pd.DataFrame | None = None
    alerts: pd.DataFrame | None = None
    label: str = ""
    _cache: dict[tuple[str, str, str], pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def scenario(self) -> dict[str, Any]:
        """The resolved scenario (``run.json``'s ``scenario``)."""
        return self.meta["scenario"]

    @property
    def tz(self) -> str:
        """The site's time zone: the x axes are in its local time."""
        return str(self.scenario["site"]["tz"])

    def units(self, kind: str) -> list[dict[str, Any]]:
        """The scenario's assets of ``kind`` (battery, pv, ev, ...)."""
        return list((self.scenario.get("assets") or {}).get(kind) or [])

    @cached_property
    def standard_offset(self) -> pd.Timedelta | None:
        """The site's standard UTC offset if the run crosses a DST change (else None).

        Wall-clock time repeats an hour in autumn and skips one in spring; a run that
        crosses such a change is drawn in the site's standard time (one fixed offset), so
        no two instants share an x value. A run within one offset keeps wall-clock time.
        """
        return _standard_offset(self.results, self.tz)

    @property
    def time_title(self) -> str:
        """What the x axes show: the site's wall-clock time, or its standard time."""
        offset = self.standard_offset
        if offset is None:
            return self.tz
        hours = offset.total_seconds() / 3600
        return f"{self.tz} standard time, UTC{hours:+g} h, no DST shift"

    def local(self, times: pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
        """UTC times as site times for the x axes (naive: plotly shows them as they are).

        Wall-clock time, or the site's standard time where the run crosses a DST change
        (:attr:`standard_offset`): never two instants at one x value.
        """
        index = pd.DatetimeIndex(times)
        if index.tz is None:
            index = index.tz_localize("UTC")
        offset = self.standard_offset
        if offset is not None:
            return index.tz_convert("UTC").tz_localize(None) + offset
        return index.tz_convert(self.tz).tz_localize(None)

    def series(self, kind: str, quantity: str, source: str = "twin") -> pd.DataFrame:
        """A time x asset table of one quantity (empty if the run has none), in site time."""
        key = (kind, quantity, source)
        if key not in self._cache:
            table = wide(self.results, kind, quantity, source)
            table.index = self.local(table.index)
            self._cache[key] = table
        return self._cache[key]

    def has(self, kind: str, quantity: str, source: str = "twin") -> bool:
        """Whether the run recorded ``quantity`` of ``kind`` under ``source``."""
        return not self.series(kind, quantity, source).empty

    def controller(self) -> str:
        """The controller with what it ran with (``mpc (persistence, 24h horizon)``)."""
        return controller_text(self.scenario)


def _standard_offset(results: pd.DataFrame, tz: str) -> pd.Timedelta | None:
    """The standard UTC offset of ``tz`` if the results' times cross a DST change."""
    if results.empty or "time" not in results:
        return None
    times = pd.DatetimeIndex(results["time"].unique())
    if times.tz is None:
        times = times.tz_localize("UTC")
    local = times.tz_convert(tz)
    hourly = pd.date_range(times.min(), times.max(), freq="h").tz_convert(tz)
    offsets = {stamp.utcoffset() for stamp in local} | {stamp.utcoffset() for stamp in hourly}
    if len(offsets) <= 1:
        return None
    first = local.min()
    return pd.Timedelta(first.utcoffset() - first.dst())


def controller_text(scenario: dict[str, Any]) -> str:
    """``name (detail)`` of a scenario's controller (:func:`twin.compare.controller_detail`)."""
    from twin.compare import controller_detail

    name = str(scenario.get("controller") or "none")
    control = SimpleNamespace(
        **{
            "forecaster": None,
            "horizon": None,
            "resolve_every": None,
            "history_days": None,
            "policy": None,
            "schedule_csv": None,
            **(scenario.get("control") or {}),
        }
    )
    detail = controller_detail(name, control)
    return f"{name} ({detail})" if detail else name


def _read_table(path: Path) -> pd.DataFrame | None:
    """A diagnostics table, None if the run has none.

    Raises
    ------
    ResultsError
        If it exists and cannot be read.
    """
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        detail = str(exc).split("\n")[0]
        raise ResultsError(f"{path} is corrupt or not written by twin: {detail}") from None


def _faults(run_dir: Path) -> list[dict[str, Any]]:
    """The fault windows: ``labels.json`` (the ground truth the run wrote).

    Raises
    ------
    ResultsError
        If ``labels.json`` exists and cannot be read.
    """
    path = run_dir / "labels.json"
    if not path.is_file():
        return []
    try:
        faults = json.loads(path.read_text())["faults"]
        return [
            {**f, "start": pd.Timestamp(f["start"]), "end": pd.Timestamp(f["end"])} for f in faults
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{path} is corrupt or not written by twin run: {exc}") from None


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory for a report (a failed run too: what it left).

    Raises
    ------
    TwinError
        If it holds no run or lacks its results (:func:`check_run_dir`), or a file is
        corrupt (:class:`~twin.errors.ResultsError`, naming it).
    """
    run_dir = Path(run_dir)
    meta, outcome, kpis, results = check_run_dir(run_dir)
    run = RunData(
        run_dir=run_dir,
        meta=meta,
        outcome=outcome,
        kpis=kpis,
        results=results,
        faults=_faults(run_dir),
        health=_read_table(run_dir / "health.parquet"),
        alerts=_read_table(run_dir / "alerts.parquet"),
    )
    run.label = str(meta["scenario"]["name"])
    return run


def label_runs(runs: list[RunData]) -> None:
    """Name every run after what differs: controller, scenario, else its directory.

    Labels are unique: a name two runs share gets the directory name appended.
    """
    controllers = [run.controller() for run in runs]
    names = [str(run.scenario["name"]) for run in runs]
    if len(runs) == 1:
        labels = names
    elif len(set(names)) == 1:
        labels = controllers
    elif len(set(controllers)) == 1:
        labels = names
    else:
        labels = [f"{n} / {c}" for n, c in zip(names, controllers, strict=True)]
    for i, run in enumerate(runs):
        label = labels[i]
        if labels.count(label) > 1:
            label = f"{label} [{run.run_dir.name}]"
        run.label = label
    seen: dict[str, int] = {}
    for run in runs:  # still shared (directories of the same name): number them
        seen[run.label] = seen.get(run.label, 0) + 1
        if [r.label for r in runs].count(run.label) > 1 or seen[run.label] > 1:
            run.label = f"{run.label} #{seen[run.label]}"
