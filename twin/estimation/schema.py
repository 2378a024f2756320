"""Schema of the ``estimation`` section: state estimation on the ingested sensors."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from twin.bounds import bounded
from twin.scenario import Strict

__all__ = ["EstimationSpec"]


class EstimationSpec(Strict):
    """Weighted-least-squares state estimation every step, with bad-data detection.

    It needs an ``ingest`` section: its measurements are the field sensors the twin
    ingests (bus voltages, line and transformer flows and currents, the assets' powers,
    summed per bus into injections). ``rn_threshold``: a sensor whose largest normalised
    residual exceeds it is taken out of the step's estimate (Abur & Exposito 2004,
    section 5.7; 3.0 as pandapower). ``persistence``: a sensor is *flagged* (inconsistent
    with the rest: a sensor-health alert) after that many consecutive steps out; one
    step out is a *suspect*. ``chi2_alpha``: false-alarm probability of the step's
    chi-square test. ``max_removals``: sensors taken out per step at most.
    ``zero_injection``: buses without any element get exact zero-injection
    measurements (they are known, and they make feeders observable).
    ``sigma_floor_pu``: the weights' floor (pandapower clips standard deviations at
    1e-5 pu).
    """

    rn_threshold: bounded(1.0, 100.0) = 3.0
    persistence: Annotated[int, Field(ge=1, le=100)] = 3
    chi2_alpha: bounded(0.0, 0.5, low_open=True) = 0.05
    max_removals: Annotated[int, Field(ge=0, le=1000)] = 10
    zero_injection: bool = True
    sigma_floor_pu: bounded(0.0, 1.0, low_open=True) = 1e-5
