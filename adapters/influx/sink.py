"""The mosaik sink that writes a run to InfluxDB as it runs.

One entity, ``sink``, accepts any attribute from any source. Each step it turns what it
received into one line per element (measurement = kind, tags site/asset/run_id/source,
fields = quantities, see :mod:`adapters.influx.lineprotocol`) and hands them to an
:class:`~adapters.influx.writer.InfluxWriter`, which batches, retries and spools in the
background: the run never waits for the database.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import mosaik_api_v3

from adapters.influx.lineprotocol import escape_key, line_prefix
from adapters.influx.writer import InfluxConfig, InfluxError, InfluxWriter
from adapters.stamping import StateStamper
from models.base import Clock

__all__ = ["InfluxSink"]

log = logging.getLogger(__name__)
ENTITY = "sink"
#: The input through which other simulators hand finished line-protocol lines.
LINES_ATTR = "lines"


class InfluxSink(mosaik_api_v3.Simulator):
    """mosaik sink writing its inputs as line protocol.

    ``init`` parameters: ``clock`` and ``config`` with ``influx`` (the
    :class:`~adapters.influx.writer.InfluxConfig` fields), ``tags`` (``site``,
    ``run_id``), ``routes`` (``{source full id: {"kind", "asset", "fields": {attr:
    [source tag, field]}, "measured": [attrs written only when quality is 1]}}``),
    ``states`` (``[source full id, attribute]`` pairs that are states, stamped with
    their instant: see :mod:`adapters.stamping`), ``initial_states`` (``{source full
    id: {attribute: value}}`` at the start) and ``stats_path``.
    """

    def __init__(self) -> None:
        super().__init__(
            {
                "type": "time-based",
                "models": {"Sink": {"public": True, "params": [], "attrs": [], "any_inputs": True}},
            }
        )
        self.writer: InfluxWriter | None = None

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any], config: dict
    ) -> dict[str, Any]:
        """Open the writer (raises with the server's message on bad credentials)."""
        self.clock = Clock.from_dict(clock)
        self.config = config
        self.start_s = int(self.clock.start.timestamp())
        self.stamper = StateStamper(config.get("states", []), config.get("initial_states"))
        self.prefixes: dict[tuple[str, str], str] = {}
        # field names are escaped once: attr -> (source tag, "escaped_name=")
        self.routes = {
            full_id: {
                **route,
                "fields": {
                    a: (src, f"{escape_key(name)}=") for a, (src, name) in route["fields"].items()
                },
            }
            for full_id, route in config["routes"].items()
        }
        try:
            self.writer = InfluxWriter(InfluxConfig(**config["influx"])).open()
        except InfluxError as exc:
            raise ConnectionError(str(exc)) from exc
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """The one sink entity."""
        return [{"eid": ENTITY, "type": model, "rel": []}]

    def _prefix(self, full_id: str, source: str) -> str:
        key = (full_id, source)
        prefix = self.prefixes.get(key)
        if prefix is None:
            route = self.routes[full_id]
            tags = {**self.config["tags"], "asset": route["asset"], "source": source}
            prefix = self.prefixes[key] = line_prefix(route["kind"], tags)
        return prefix

    def step(self, time_s: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Encode this step's values and hand them to the writer.

        An input ``lines`` (from any source: a list of line-protocol lines, time stamps
        in seconds) is written as it is: how a component stores points of its own schema
        (diagnostics' ``health`` and ``alert``) through the run's one writer and spool.
        """
        received = dict(inputs.get(ENTITY, {}))
        lines = received.pop(LINES_ATTR, {})
        values = self._without_silent(received)
        self._write(self.stamper.restamp(values), time_s)
        for batch in lines.values():
            if batch:
                assert self.writer is not None
                self.writer.write(list(batch))
        return time_s + self.clock.step_s

    def _without_silent(self, values: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """Drop the measured values of devices that were silent this step (quality 0).

        Done before states are held back, so that a measured state keeps the verdict of
        the step it was measured in, also when it is written a step later.
        """
        quality = values.get("quality", {})
        out: dict[str, dict[str, float]] = {}
        for attr, by_source in values.items():
            kept = {
                full_id: value
                for full_id, value in by_source.items()
                if attr not in self.routes[full_id].get("measured", ())
                or quality.get(full_id, 0.0) >= 0.5
            }
            if kept:
                out[attr] = kept
        return out

    def _write(self, values: dict[str, dict[str, float]], time_s: int) -> None:
        """Encode the values that belong to time stamp ``time_s``; hand them to the writer."""
        assert self.writer is not None
        stamp = self.start_s + time_s
        fields: dict[tuple[str, str], list[str]] = {}
        for attr, by_source in values.items():
            for full_id, value in by_source.items():
                target = self.routes[full_id]["fields"].get(attr)
                if target is None or value is None or math.isnan(value):
                    continue
                source, key = target  # key: the escaped field name and "="
                fields.setdefault((full_id, source), []).append(f"{key}{float(value)!r}")
        self.writer.write(
            [f"{self._prefix(fid, src)} {','.join(f)} {stamp}" for (fid, src), f in fields.items()]
        )

    def finalize(self) -> None:
        """Flush, wait for the writer (and the spool), record the counters."""
        if self.writer is None:
            return
        end_states = self.stamper.flush()
        if end_states:  # the states at the end of the run, stamped with the end time
            self._write(end_states, self.clock.end_s)
        error = None
        try:
            stats = self.writer.close()
        except InfluxError as exc:
            stats, error = self.writer.stats, str(exc)
            log.error("%s", exc)
        out = stats.as_dict()
        out["error"] = error
        path = self.config.get("stats_path")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(out, indent=2))
        self.writer = None
