"""Schema of the ``estimation`` section: state estimation on the ingested sensors."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from twin.bounds import bounded
from twin.scenario import Strict

__all__ = ["EstimationSpec"]


class EstimationSpec(Strict):
    """Weighted-least-squares state estimation every step, with bad-data detection.

    It needs an ``ingest`` section: its measurements are the field sensors the twin
    ingests (bus voltages, line and transformer flows and currents, the assets' powers,
    summed per bus into injections).

    - ``rn_threshold``: a sensor whose normalised residual is the largest and exceeds it
      is taken out of the step's estimate (Abur & Exposito 2004, section 5.7). ``auto``
      (the default) is the Bonferroni bound ``max(3, z(alpha_rn / 2m))`` over the m
      sensors of the step, so a step of healthy sensors loses one with probability about
      ``alpha_rn``; pandapower's fixed 3.0 takes out 0.27 % of healthy sensors per step,
      several per step at plant scale.
    - ``persistence``: a sensor is *flagged* (inconsistent with the rest: a
      sensor-health alert) after that many consecutive steps out; one step out is a
      *suspect*.
    - ``chi2_alpha``: false-alarm probability of the step's chi-square test;
      ``max_removals``: sensors taken out per step at most.
    - ``zero_injection``: buses without any element are exact zero injections (they are
      known, and they make feeders observable).
    """

    rn_threshold: bounded(1.0, 100.0) | Literal["auto"] = "auto"
    alpha_rn: bounded(0.0, 0.5, low_open=True) = 0.05
    persistence: Annotated[int, Field(ge=1, le=100)] = 3
    chi2_alpha: bounded(0.0, 0.5, low_open=True) = 0.05
    max_removals: Annotated[int, Field(ge=0, le=1000)] = 10
    zero_injection: bool = True
