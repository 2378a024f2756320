"""What one run owns: its simulators' timings, recordings and its lateness meter.

Nothing of a run lives in a module: a :class:`RunState` is made per run from the run's
mosaik world. It finds the simulators of that world that run in this process
(:func:`local_simulators`; a simulator in another process has no instance here and
keeps its own measurements), hands them the run's :class:`twin.realtime.LatenessMeter`
in a real-time run, and afterwards reads what they measured: their timings
(``component_s`` in ``run.json``) and, after a failure, the steps they recorded. Two
runs in one process (campaign runs in threads, a notebook) therefore never see each
other's numbers.

What a simulator offers, by duck typing (:class:`twin.wrapper.ModelSimulator`,
:class:`adapters.mqtt.bridge.DeviceBridge`):

- ``timings``: ``{part: wall seconds}``; reported as ``"<sid>"`` for the part
  ``"model"`` and ``"<sid>:<part>"`` for the others;
- ``recording`` (true while recorded steps wait to be saved), ``steps_done`` and
  ``save(n_steps)``;
- :class:`twin.realtime.Paced`: it reports its step starts to the run's meter.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from inspect import isgeneratorfunction
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from twin.realtime import LatenessMeter, Paced, silence_mosaik_late_steps

if TYPE_CHECKING:
    import mosaik

__all__ = ["RunState", "local_simulators", "process_age_s"]

_NONE = object()  # no attribute of that name


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None where unknown).

    Process start is what a user waits from: interpreter, imports, scenario loading.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started_s
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def local_simulators(world: mosaik.World) -> dict[str, Any]:
    """The simulator instances of ``world`` that run in this process, by simulator id.

    Simulators started with ``cmd`` or ``connect`` run elsewhere and are left out. Before
    the run this compiles the world's simulator runners, as its ``run`` does first
    (mosaik 3.6's documented way to inspect them); the run then uses those runners.
    A :class:`twin.executor.DirectWorld` holds only in-process simulators: all of them.
    """
    direct = getattr(world, "direct_simulators", None)
    if direct is not None:
        return dict(direct)
    found = {}
    for sid, runner in world.compile(use_cache=True).items():
        proxy = runner._proxy
        while proxy is not None and not hasattr(proxy, "sim"):
            proxy = getattr(proxy, "_out", None)  # an adapter to an older simulator API
        if proxy is not None:  # a LocalProxy; a RemoteProxy has no instance
            found[sid] = proxy.sim
    return found


@dataclass
class RunState:
    """The in-process simulators of one run and its lateness meter (real-time runs).

    Parameters
    ----------
    sims : dict of str to simulator
        The run's in-process simulators by simulator id.
    lateness : LatenessMeter, optional
        The run's meter (real-time runs only).
    """

    sims: dict[str, Any] = field(default_factory=dict)
    lateness: LatenessMeter | None = None
    #: ``perf_counter`` when each watched simulator finished its first step.
    first_steps: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_world(
        cls, world: mosaik.World, *, rt_factor: float | None = None, warn_after_s: float = 0.0
    ) -> RunState:
        """The state of a run of ``world``; with ``rt_factor``, its simulators are metered.

        Parameters
        ----------
        world : mosaik.World
            A built world, not yet run.
        rt_factor : float, optional
            Wall seconds per simulated second of a real-time run.
        warn_after_s : float
            Warn (once) when a step of the real-time run starts later than this.
        """
        state = cls(local_simulators(world))
        if rt_factor:
            silence_mosaik_late_steps()
            state.lateness = LatenessMeter(rt_factor, warn_after_s)
            for sim in state.sims.values():
                if isinstance(sim, Paced):
                    sim.lateness = state.lateness
        return state

    def watch_first_step(self) -> None:
        """Note when each in-process simulator finishes its first step (:meth:`first_step_at`).

        Each simulator's ``step`` is wrapped for this run (mosaik calls it by name); a
        simulator whose ``step`` is a generator (it calls back into mosaik) is left out.
        """
        for sid, sim in self.sims.items():
            step = getattr(sim, "step", None)
            if step is None or isgeneratorfunction(step):
                continue
            self._watch(sid, sim, step)

    def _watch(self, sid: str, sim: Any, step: Any) -> None:
        """Wrap ``sim.step`` until its first step is done, then give the simulator its own.

        Every later step then costs no more than without the watch (a call per step of
        every simulator of a year's run).
        """
        own = vars(sim).get("step", _NONE)  # an instance's own step, kept after the watch

        def timed(*args: Any, **kwargs: Any) -> Any:
            done = step(*args, **kwargs)
            self.first_steps.setdefault(sid, perf_counter())
            if vars(sim).get("step") is timed:  # unwrap once: the first step is timed
                if own is _NONE:
                    del sim.step
                else:
                    sim.step = own
            return done

        sim.step = timed

    def first_step_at(self) -> float | None:
        """``perf_counter`` when every watched simulator had finished its first step."""
        return max(self.first_steps.values(), default=None)

    def first_step_times(self, run_started: float) -> dict[str, float]:
        """Seconds to the end of the first step (``run.json``), empty if none was watched.

        ``first_step_s`` counts from ``run_started`` (a ``perf_counter``, the origin of
        ``setup_s``), ``first_step_process_s`` from the process's start (interpreter,
        imports and scenario loading included; where the platform tells it).
        """
        first = self.first_step_at()
        if first is None:
            return {}
        out = {"first_step_s": first - run_started}
        age = process_age_s()
        if age is not None:
            out["first_step_process_s"] = age - (perf_counter() - first)
        return out

    def component_s(self) -> dict[str, float]:
        """Wall seconds per simulator part: ``"<sid>"`` (the model), ``"<sid>:<part>"``."""
        out = {}
        for sid, sim in self.sims.items():
            for part, seconds in getattr(sim, "timings", {}).items():
                out[sid if part == "model" else f"{sid}:{part}"] = seconds
        return out

    def save_completed(self) -> int:
        """Save the steps every recording simulator completed (after a failed run).

        Returns
        -------
        int
            The steps saved: the fewest any recording simulator completed, so the
            saved results are a consistent, shorter run.
        """
        recorders = [sim for sim in self.sims.values() if getattr(sim, "recording", False)]
        completed = min((sim.steps_done for sim in recorders), default=0)
        for sim in recorders:
            sim.save(completed)
        return completed
