"""A device's answered and missed steps: how long to wait for it, and what to say.

A device bridge asks :class:`DeviceHealth` how long to wait for this step's answer and
tells it whether the step was answered. A missed step does not disable the device: the
next step waits the full ``timeout_s`` again. Only after :data:`SILENT_AFTER_MISSES`
misses in a row does the wait shrink to a probe (:data:`PROBE_SHARE` of the timeout),
so a device that died costs little per step; any answer (even a late one) restores the
full wait. Warnings are aggregated: the first :data:`LOG_GAPS` gaps and their ends are
logged, the rest only counted, and :meth:`DeviceHealth.summary` logs one line for the run.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["LOG_GAPS", "PROBE_SHARE", "SILENT_AFTER_MISSES", "DeviceHealth"]

log = logging.getLogger("adapters.mqtt.bridge")

#: Misses in a row after which the device counts as silent (waits shrink to a probe).
SILENT_AFTER_MISSES = 3
#: Share of ``timeout_s`` waited per step while the device is silent.
PROBE_SHARE = 0.1
#: Gaps (stretches of missed steps) logged per device; all are counted.
LOG_GAPS = 5


class DeviceHealth:
    """Missed-step bookkeeping of one device.

    Parameters
    ----------
    asset : str
        The asset the device stands for (named in log lines).
    timeout_s : float
        Wall seconds to wait per step for an answer.
    """

    def __init__(self, asset: str, timeout_s: float) -> None:
        self.asset = asset
        self.timeout_s = timeout_s
        self.fallback_steps = 0
        self.gaps = 0
        self.longest_gap = 0
        self.in_gap = 0
        self.heard = False

    @property
    def silent(self) -> bool:
        """Whether the device missed :data:`SILENT_AFTER_MISSES` steps in a row."""
        return self.in_gap >= SILENT_AFTER_MISSES

    def wait_s(self) -> float:
        """Wall seconds to wait for this step's answer.

        Call it after taking what already arrived: an answer heard since the last call
        (a late one included) restores the full wait.
        """
        heard, self.heard = self.heard, False
        if self.silent and not heard:
            return self.timeout_s * PROBE_SHARE
        return self.timeout_s

    def heard_from(self) -> None:
        """The device sent an acceptable payload (for any step)."""
        self.heard = True

    def note(self, answered: bool, when: str) -> None:
        """Record whether the step at ``when`` had fresh values for every quantity."""
        if answered:
            if self.in_gap and self.gaps <= LOG_GAPS:
                log.warning(
                    "device %s answered again at %s after %d missed step(s)",
                    self.asset,
                    when,
                    self.in_gap,
                )
            self.in_gap = 0
            return
        self.fallback_steps += 1
        if self.in_gap == 0:
            self.gaps += 1
            if self.gaps <= LOG_GAPS:
                more = " (further gaps are counted, not logged)" if self.gaps == LOG_GAPS else ""
                log.warning(
                    "device %s missed the step at %s: its model's values are used (quality 0)%s",
                    self.asset,
                    when,
                    more,
                )
        self.in_gap += 1
        self.longest_gap = max(self.longest_gap, self.in_gap)

    def summary(self, steps: int) -> None:
        """Log one line for the run if any step fell back to the model."""
        if self.fallback_steps:
            log.warning(
                "device %s: %d of %d steps (%.1f %%) fell back to the model, in %d gap(s), "
                "the longest %d step(s)",
                self.asset,
                self.fallback_steps,
                steps,
                100.0 * self.fallback_steps / max(steps, 1),
                self.gaps,
                self.longest_gap,
            )

    def as_dict(self) -> dict[str, Any]:
        """The counters, for the run's metadata."""
        return {
            "fallback_steps": self.fallback_steps,
            "gaps": self.gaps,
            "longest_gap": self.longest_gap,
        }
