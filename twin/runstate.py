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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.realtime import LatenessMeter, Paced, silence_mosaik_late_steps

if TYPE_CHECKING:
    import mosaik

__all__ = ["RunState", "local_simulators"]


def local_simulators(world: mosaik.World) -> dict[str, Any]:
    """The simulator instances of ``world`` that run in this process, by simulator id.

    Simulators started with ``cmd`` or ``connect`` run elsewhere and are left out. Before
    the run this compiles the world's simulator runners, as its ``run`` does first
    (mosaik 3.6's documented way to inspect them); the run then uses those runners.
    """
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
