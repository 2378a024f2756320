"""Alert episodes: one open alert per asset, opened on evidence, cleared on recovery.

Every step the engine tells the :class:`AlertBook`, per asset, whether it is *firing*
(a residual chart alarmed, an index stayed below its threshold, a data-quality flag)
and whether it is *healthy* (no firing condition and no residual beyond its EWMA
limit). An asset without an open alert that fires opens one (``start`` = this step);
while open, its evidence and severity follow the worst seen, and the diagnoser is asked
again every ``rediagnose_steps`` while it fires (a more confident answer replaces the
kind: a fading signature does not overwrite a clear one); after ``clear_steps``
healthy steps in a row it is cleared (``end`` = the first of them) and the asset's
charts restart.

:data:`ALERT_COLUMNS` is the schema of ``alerts.parquet``/``alerts.json`` (see the
issue's design notes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ALERT_COLUMNS", "Alert", "AlertBook", "AlertSettings"]

ALERT_COLUMNS = (
    "alert_id",
    "asset",
    "asset_kind",
    "kind",
    "severity",
    "confidence",
    "evidence",
    "start",
    "end",
    "status",
    "detector",
)


@dataclass(frozen=True)
class AlertSettings:
    """Episode rules: steps below a threshold to open, healthy steps to clear, re-diagnosis."""

    open_steps: int = 2
    clear_steps: int = 4
    rediagnose_steps: int = 4
    #: At short steps clearing takes at least this long (s): several reports.
    clear_min_s: float = 60.0


@dataclass
class Alert:
    """One alert episode of one asset."""

    alert_id: str
    asset: str
    asset_kind: str
    kind: str
    severity: float
    confidence: float
    evidence: list[str]
    start: pd.Timestamp
    detector: str
    end: pd.Timestamp | None = None
    opened_step: int = 0
    healthy_since: int | None = None
    healthy_time: pd.Timestamp | None = None
    _last_diagnosis: int = field(default=0, repr=False)

    @property
    def status(self) -> str:
        """``open`` or ``cleared``."""
        return "open" if self.end is None else "cleared"

    def record(self) -> dict[str, Any]:
        """The alert as a record of :data:`ALERT_COLUMNS` (times as UTC ISO strings)."""
        return {
            "alert_id": self.alert_id,
            "asset": self.asset,
            "asset_kind": self.asset_kind,
            "kind": self.kind,
            "severity": round(float(self.severity), 6),
            "confidence": round(float(self.confidence), 6),
            "evidence": list(self.evidence),
            "start": self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "status": self.status,
            "detector": self.detector,
        }


#: ``diagnose(asset_index) -> (kind, confidence)``; ``evidence(asset_index) -> list``.
Diagnose = Callable[[int], tuple[str, float]]
Evidence = Callable[[int], tuple[list[str], float]]


class AlertBook:
    """The open and closed alerts of a run's assets.

    Parameters
    ----------
    assets : list of str
        Asset names (the engine's asset order).
    kinds : list of str
        Asset kind of each.
    settings : AlertSettings
        Episode rules.
    detector : str
        What raises the alerts: ``residual`` (the engine) or ``threshold`` (the
        static-threshold baseline).
    """

    def __init__(
        self, assets: list[str], kinds: list[str], settings: AlertSettings, detector: str
    ) -> None:
        self.assets, self.kinds, self.s, self.detector = assets, kinds, settings, detector
        self.open: dict[int, Alert] = {}
        self.closed: list[Alert] = []
        self.counts = [0] * len(assets)
        self.clear_steps = settings.clear_steps

    def update(
        self,
        k: int,
        time: pd.Timestamp,
        firing: np.ndarray,
        healthy: np.ndarray,
        diagnose: Diagnose,
        evidence: Evidence,
    ) -> tuple[list[Alert], list[Alert], list[Alert]]:
        """One step; return the alerts opened, updated (kind or severity) and cleared."""
        opened, updated, cleared = [], [], []
        for a in np.flatnonzero(firing):
            a = int(a)
            alert = self.open.get(a)
            notes, severity = evidence(a)
            if alert is None:
                self.counts[a] += 1
                kind, confidence = diagnose(a)
                alert = Alert(
                    f"{self.assets[a]}-{self.counts[a]}",
                    self.assets[a],
                    self.kinds[a],
                    kind,
                    severity,
                    confidence,
                    notes,
                    time,
                    self.detector,
                    opened_step=k,
                    _last_diagnosis=k,
                )
                self.open[a] = alert
                opened.append(alert)
                continue
            alert.healthy_since = alert.healthy_time = None
            changed = severity > alert.severity
            if changed:
                alert.severity, alert.evidence = severity, notes
            if k - alert._last_diagnosis >= self.s.rediagnose_steps:
                alert._last_diagnosis = k
                kind, confidence = diagnose(a)
                if kind != alert.kind and confidence > alert.confidence:
                    alert.kind, alert.confidence, changed = kind, confidence, True
            if changed:
                updated.append(alert)
        for a, alert in list(self.open.items()):
            if firing[a]:
                continue
            if not healthy[a]:
                alert.healthy_since = alert.healthy_time = None
                continue
            if alert.healthy_since is None:
                alert.healthy_since, alert.healthy_time = k, time
            if k - alert.healthy_since + 1 >= self.clear_steps:
                alert.end = alert.healthy_time
                del self.open[a]
                self.closed.append(alert)
                cleared.append(alert)
        return opened, updated, cleared

    def all(self) -> list[Alert]:
        """Every alert, closed and open, by start then asset."""
        return sorted([*self.closed, *self.open.values()], key=lambda x: (x.start, x.asset))
