"""Schema of the ``faults`` section: one entry per injected fault."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from twin.bounds import (
    SEVERITY_RANGES,
    bounded,
)
from twin.errors import did_you_mean
from twin.scenario import Duration, Strict

__all__ = ["FaultSpec"]


class FaultSpec(Strict):
    """One fault: what, where, when and how hard (``models.faults.FAULT_KINDS``).

    ``target``: an asset name (pv, battery, load faults), ``grid`` (the point of
    connection: voltage sag/spike, frequency event, grid outage), a line (``line_3``) or a
    measured quantity ``<asset>.<quantity>`` (sensor faults). ``start``: a duration after
    the scenario start (``6h``) or a tz-aware timestamp. ``duration``: default, to the
    end of the run. ``restart_delay`` (inverter trip) keeps the converter off after the
    window; ``mode`` (SoC misreport) is ``offset`` (severity added) or ``stuck``.
    """

    kind: str
    target: str
    start: str
    duration: Duration | None = None
    severity: bounded(-1000.0, 1000.0) = 1.0
    restart_delay: Duration | None = None
    mode: Literal["offset", "stuck"] = "offset"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        from models.faults import FAULT_KINDS

        if value not in FAULT_KINDS:
            hint = did_you_mean(value, list(FAULT_KINDS), lead=True)
            raise ValueError(f"unknown fault kind {value!r}; {hint}known: {', '.join(FAULT_KINDS)}")
        return value

    @model_validator(mode="after")
    def _severity_inbounded(self) -> FaultSpec:
        low, high = SEVERITY_RANGES.get(self.kind, (-1000.0, 1000.0))
        if not low <= self.severity <= high:
            raise ValueError(
                f"expected severity of {self.kind} within {low:g}..{high:g}, got {self.severity:g}"
            )
        return self
