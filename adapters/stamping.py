"""Time stamps of what the sinks (MQTT publisher, InfluxDB) send: one rule for both.

A message or point stamped ``t`` describes the step ``[t, t + dt)``: interval values
(powers, prices, voltages) are those of the step; state values (``Port.state``: SoC,
stored energy, temperature) are the state *at* ``t``. mosaik hands a sink each step's
outputs, in which a state is the value at the step's *end*; so a sink holds the
states back one step and sends them with the next step's stamp, and sends the last
ones, the states at the end of the run, when it finalizes. The initial states (at the
run's start) come with the sink's configuration.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["StateStamper"]

#: ``{attribute: {source full id: value}}``, as a mosaik sink receives its inputs.
Values = dict[str, dict[str, float]]


class StateStamper:
    """Delays state values by one step so that each is stamped with its instant.

    Parameters
    ----------
    states : iterable of (str, str)
        ``(source full id, attribute)`` pairs that are states.
    initial : dict, optional
        ``{source full id: {attribute: value}}``: the states at the run's start, sent
        with the first step.
    """

    def __init__(
        self,
        states: Iterable[tuple[str, str] | list[str]],
        initial: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.states = {(str(source), str(attr)) for source, attr in states}
        self._held: Values = {}
        for source, attrs in (initial or {}).items():
            for attr, value in attrs.items():
                if (source, attr) in self.states:
                    self._held.setdefault(attr, {})[source] = value

    def restamp(self, values: Values) -> Values:
        """Return the step's interval values plus the states held from the previous step.

        The result is what belongs to this step's start time; the states received now
        (values at the step's end) are held for the next call or :meth:`flush`.
        """
        if not self.states:
            return values
        out: Values = {}
        fresh: Values = {}
        for attr, by_source in values.items():
            for source, value in by_source.items():
                target = fresh if (source, attr) in self.states else out
                target.setdefault(attr, {})[source] = value
        for attr, by_source in self._held.items():
            out.setdefault(attr, {}).update(by_source)
        self._held = fresh
        return out

    def flush(self) -> Values:
        """The states held back: those at the end of the last step (the run's end)."""
        held, self._held = self._held, {}
        return held
