"""The ingest simulator: one mosaik entity ``ingest`` serving the plant's sensors per step.

The MQTT network thread (paho, inside :class:`~adapters.mqtt.link.MqttLink`) does all the
per-message work (:class:`~adapters.ingest.pipeline.Ingestor`): decode, map, check,
store, place. A step only closes the window that is due and hands its arrays on, so it
never waits on the network or the database.

Outputs of entity ``ingest`` (Python objects, in-process):

- ``readings``: ``{"t_s": <window start, scenario s>, "ids", "t", "values" (twin units),
  "quality", "flags" (0 ok, 1 implausible)}`` of the newest window closed on the plant
  clock when the step starts: window ``floor((now - late_window_s) / step) - 1`` with
  ``now`` the plant time since the start (the step's time in a run not paced in real
  time). Before the first window closes, and at a step that closes no new window, the
  same ``t_s`` comes again with empty arrays. One value per sensor and window (its
  latest sample), ordered by sensor id;
- ``sensors``: ``[(sensor key, element, quantity), ...]``, index = sensor id; it only
  grows (a new key is appended when it is first mapped).

The plant clock starts at the first step (``wall_start`` = its wall time, ``speed`` =
1/rt_factor) unless the section gives them; in a run not paced in real time, plant time
is the step's simulated time.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mosaik_api_v3

from adapters.ingest.limits import limit_of
from adapters.ingest.mapping import (
    MAX_SENSORS,
    ElementInfo,
    Mapper,
    Rule,
    read_mapping_csv,
)
from adapters.ingest.pipeline import Ingestor
from adapters.ingest.stats import summary_line
from adapters.ingest.store import RawStore
from adapters.ingest.subscribe import subscribe
from adapters.ingest.window import PlantClock, Windows
from adapters.mqtt.auth import MqttAuth
from adapters.mqtt.link import MqttLink
from models.base import Clock
from twin.realtime import Paced

__all__ = ["IngestSimulator", "build_ingestor"]

ATTRS = ["readings", "sensors"]
#: Longest wait for a ``wall_start`` ahead of the run's set-up (s).
MAX_WAIT_S = 3600.0

log = logging.getLogger(__name__)


def build_ingestor(clock: Clock, config: dict[str, Any]) -> Ingestor:
    """The :class:`Ingestor` of a simulator's ``config`` (see :class:`IngestSimulator`)."""
    rules = [
        Rule.from_spec(SimpleNamespace(**rule), f"ingest.mapping[{i}]")
        for i, rule in enumerate(config["mapping"])
    ]
    table = read_mapping_csv(config["mapping_csv"]) if config.get("mapping_csv") else {}
    elements = {
        name: ElementInfo(
            kind, frozenset(quantities), vn_kv, {q: tuple(r) for q, r in ranges.items()}
        )
        for name, (kind, quantities, vn_kv, ranges) in config["elements"].items()
    }
    start = clock.start.timestamp()
    windows = Windows(
        start,
        clock.step_s,
        config["clock_tolerance_s"],
        config["max_delay_s"],
        config["late_window_s"],
    )
    plant = PlantClock(start, config.get("wall_start"), config.get("speed") or 1.0)
    store = None
    if config.get("influx"):
        from adapters.influx.transport import InfluxConfig

        store = RawStore(
            InfluxConfig(**config["influx"]), config["site"], trace=bool(config.get("trace"))
        )
    return Ingestor(
        Mapper(rules, table, elements, limit_of, config.get("max_sensors", MAX_SENSORS)),
        windows,
        plant,
        store,
        max_bytes=config["max_payload_bytes"],
        max_records=config["max_batch_records"],
    )


class IngestSimulator(Paced, mosaik_api_v3.Simulator):
    """mosaik simulator of the ``ingest`` section (see the module docstring).

    ``init`` parameters: ``clock`` and ``config`` with ``broker``, ``auth``, ``client_id``,
    ``clean_session``, ``qos``, ``topics``, ``site``, ``mapping`` (rule dicts),
    ``mapping_csv``, ``elements`` (``name -> [kind, quantities, vn_kv, ranges]``),
    ``wall_start``, ``speed``, ``clock_tolerance_s``, ``max_delay_s``, ``late_window_s``,
    ``max_payload_bytes``, ``max_batch_records``, ``influx`` (an InfluxConfig as a dict,
    or None), ``trace`` (a path or None) and ``stats_path``.
    """

    def __init__(self) -> None:
        super().__init__(
            {
                "type": "time-based",
                "models": {"Ingest": {"public": True, "params": [], "attrs": ATTRS}},
            }
        )
        self.link: MqttLink | None = None
        self.ingestor: Ingestor | None = None
        self.outputs: dict[str, Any] = {}
        self._sensors: list[tuple[str, str, str]] = []
        self.steps_done = 0
        self.step_offset_s: float | None = None

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any], config: dict
    ) -> dict[str, Any]:
        """Build the ingestor, start the store, subscribe."""
        self.sid = sid
        self.clock = Clock.from_dict(clock)
        self.cfg = config
        self.ingestor = build_ingestor(self.clock, config)
        if self.ingestor.store is not None:
            self.ingestor.store.open()
        self.link = MqttLink(
            config["broker"],
            config["client_id"],
            clean_session=bool(config.get("clean_session", False)),
            auth=MqttAuth.from_dict(config.get("auth")),
        )
        try:
            self.subscriptions = subscribe(
                self.link, config["topics"], self.ingestor.on_message, int(config.get("qos", 1))
            )
        except BaseException:
            self.link = None
            if self.ingestor.store is not None:
                self.ingestor.store.close(timeout_s=1.0)
            raise
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """The one ``ingest`` entity."""
        if num != 1:
            raise ValueError("create exactly one Ingest entity")
        return [{"eid": "ingest", "type": model, "rel": []}]

    def setup_done(self) -> None:
        """Wait for the plant's first second when ``wall_start`` lies ahead.

        mosaik starts its real-time clock right after every simulator's ``setup_done``,
        so a twin set up before the plant starts talking begins stepping with it (a twin
        and a field emulator started together with one ``wall_start``).
        """
        wall_start = self.cfg.get("wall_start")
        if wall_start is None:
            return
        if not self.cfg.get("speed") and self.lateness is not None:
            # plant seconds per wall second: the run's pace unless the section says
            self.ingestor.clock.speed = 1.0 / self.lateness.rt_factor
        wait_s = float(wall_start) - time.time()
        if wait_s > MAX_WAIT_S:
            raise ValueError(
                f"ingest.wall_start is {wait_s:.0f} s ahead; expected at most {MAX_WAIT_S:.0f} s "
                "(the epoch second of the plant's first step)"
            )
        if wait_s > 0:
            log.info("ingest: waiting %.1f s for the plant's first second", wait_s)
            time.sleep(wait_s)

    def step(self, time_s: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Close the window that is due; serve its readings and the sensor table."""
        assert self.ingestor is not None
        self.step_started(time_s)
        ingestor = self.ingestor
        if self.lateness is not None or self.cfg.get("wall_start") is not None:
            if not ingestor.clock.known:
                rt = self.lateness.rt_factor if self.lateness is not None else 1.0
                speed = self.cfg.get("speed") or 1.0 / rt
                ingestor.start_clock(time.time() - time_s / speed, speed)
        else:
            ingestor.follow(float(time_s))
        if self.steps_done == 0:  # > 0: the steps run behind the plant clock
            self.step_offset_s = ingestor.clock.now() - (ingestor.clock.start + time_s)
        readings = ingestor.readings(time_s)
        if len(ingestor.mapper.sensors) != len(self._sensors):
            self._sensors = ingestor.sensor_table()
        self.outputs = {"readings": readings, "sensors": self._sensors}
        self.steps_done += 1
        return time_s + self.clock.step_s

    def get_data(self, outputs: dict[str, list[str]]) -> dict[str, Any]:
        """``readings`` and ``sensors`` of the ``ingest`` entity."""
        return {eid: {a: self.outputs.get(a) for a in attrs} for eid, attrs in outputs.items()}

    def finalize(self) -> None:
        """Stop receiving, store the rest, write the counters (and the trace)."""
        ingestor = self.ingestor
        if ingestor is None:
            return
        stats: dict[str, Any] = {}
        if self.link is not None:
            self.link.close(timeout_s=5.0)
            stats["link"] = self.link.stats.as_dict()
            stats["subscriptions_refused"] = self.subscriptions["refused"]
            stats["read_probe"] = self.subscriptions["probe"]
            self.link = None
        with ingestor.lock:
            counts = ingestor.counts.as_dict()
            sensors = len(ingestor.mapper.sensors)
            packs = ingestor.packs.stats()  # how many packs took the array path
        stats.update(
            counts,
            sensors=sensors,
            steps=self.steps_done,
            step_offset_s=self.step_offset_s,
            packs=packs,
        )
        if ingestor.store is not None:
            stats["store"] = ingestor.store.close()
            stats["handed"] = ingestor.store.submitted  # lines handed to the writer
            stats["spool_dir"] = ingestor.store.writer.config.spool_dir
            trace = self.cfg.get("trace")
            if trace:
                self._write_trace(Path(trace))
        path = self.cfg.get("stats_path")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(stats, indent=2))
        log.info("%s", summary_line(stats))
        self.ingestor = None

    def _write_trace(self, path: Path) -> None:
        import pandas as pd

        assert self.ingestor is not None and self.ingestor.store is not None
        keys = [s.key for s in self.ingestor.mapper.sensors]
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(self.ingestor.store.trace_rows(keys)).to_parquet(path, index=False)
