"""The diagnostics engine as a mosaik simulator: health and alerts in the loop.

One entity, ``engine``. Inputs each step: ``measured`` from every model simulator's
parent entity (``{output: [reading per element]}``, NaN where nothing was reported)
and ``p_set_kw`` from the controller's elements (the EMS's setpoints), and, in a live
twin, ``sensor_health`` from the state estimate (``{sensor key: {"asset", "quantity"}}``
of the sensors it flags as inconsistent with the rest: see
:meth:`~twin.diagnostics.engine.Engine.set_inconsistent`). It steps the
same :class:`~twin.diagnostics.engine.Engine` as the offline ``twin diagnose``, so
both give the same indices and alerts, and serves:

- ``lines``: line protocol of the step's health indices (measurement ``health``, tags
  site, run_id, asset, kind, index; field ``value``) and alert changes (measurement
  ``alert``, tags site, run_id, asset, alert_id, kind; fields severity, confidence,
  open (1/0), evidence), for the InfluxDB sink;
- ``messages``: MQTT messages for the publisher: ``<asset>/health/<index>`` per index
  (a value payload) and ``alerts/<alert_id>`` (retained JSON while open; an empty
  retained payload once cleared, which deletes it on the broker);
- ``health``: ``{asset: {index: value}}`` of the step, for a controller that uses it.

At the end it writes ``health.parquet`` and ``alerts.parquet``/``alerts.json`` into the
run directory and its counters to ``stats_path``.
"""

from __future__ import annotations

import json
import time as _time
from pathlib import Path
from typing import Any

import mosaik_api_v3
import numpy as np

from models.base import Clock
from twin.diagnostics.indices import INDEX_NAMES

__all__ = ["DiagnosticsSimulator"]

ENTITY = "engine"


def _string_field(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DiagnosticsSimulator(mosaik_api_v3.Simulator):
    """mosaik simulator running :class:`twin.diagnostics.engine.Engine` every step."""

    def __init__(self) -> None:
        super().__init__(
            {
                "type": "time-based",
                "models": {
                    "Diagnostics": {
                        "public": True,
                        "params": [],
                        "attrs": [
                            "measured",
                            "p_set_kw",
                            "sensor_health",
                            "lines",
                            "messages",
                            "health",
                        ],
                        "any_inputs": True,  # a device bridge's readings, by quantity
                    }
                },
            }
        )
        self.engine: Any = None
        self.out: dict[str, Any] = {"lines": [], "messages": []}
        self.last: Any = None  # the engine's last StepOutput
        self._prefixes: dict[tuple[int, int], str] = {}  # line prefix per (asset, index)

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any], config: dict
    ) -> dict[str, Any]:
        """Build the engine from the run's resolved scenario and sensor layout."""
        from twin.diagnostics.catalogue import catalogue_from
        from twin.diagnostics.engine import Engine, Settings
        from twin.diagnostics.expected import expectations_from
        from twin.diagnostics.run import load_diagnoser
        from twin.scenario import validate_scenario

        started = _time.perf_counter()
        self.clock = Clock.from_dict(clock)
        self.config = config
        scenario = validate_scenario(config["scenario"], "diagnostics: scenario")
        self.scenario = scenario
        keys = {
            (name, kind, quantity)
            for arrays in config["layout"].values()
            for quantity, elements in arrays.items()
            for name, kind in elements
        }
        catalogue = catalogue_from(scenario, keys)
        diagnoser = load_diagnoser(config.get("model"), catalogue)
        self.engine = Engine(
            catalogue,
            expectations_from(scenario, catalogue),
            Settings(mode=config.get("mode", "residual")),
            diagnoser,
        )
        self._where = where = {key: j for j, key in enumerate(self.engine.keys)}
        # (parent full id, output) -> (positions in the engine's readings, of the array)
        self.slots: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for parent, arrays in config["layout"].items():
            for quantity, elements in arrays.items():
                pairs = [
                    (where[(n, k, quantity)], i)
                    for i, (n, k) in enumerate(elements)
                    if (n, k, quantity) in where
                ]
                to, of = (
                    (np.array(p, dtype=int) for p in zip(*pairs, strict=True))
                    if pairs
                    else (
                        np.array([], dtype=int),
                        np.array([], dtype=int),
                    )
                )
                self.slots[(parent, quantity)] = (to, of)
        self.commands = {key[0]: j for j, key in enumerate(self.engine.command_keys)}
        n = self.clock.n_steps
        self.indices = np.full((n, self.engine.n_assets, len(INDEX_NAMES)), np.nan)
        self.steps = 0
        self.engine_s = 0.0
        self.setup_s = _time.perf_counter() - started
        self.published = {"health_points": 0, "alert_points": 0, "messages": 0}
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """The one engine entity."""
        if num != 1:
            raise ValueError("create exactly one Diagnostics entity")
        return [{"eid": ENTITY, "type": model, "rel": []}]

    def step(self, time: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Read the step's measurements and setpoints, step the engine, format outputs."""
        engine = self.engine
        received = inputs.get(ENTITY, {})
        x = np.full(engine.n_sensors, np.nan)
        for parent, arrays in received.get("measured", {}).items():
            for quantity, values in arrays.items():
                slot = self.slots.get((parent, quantity))
                if slot is not None and len(slot[0]):
                    x[slot[0]] = np.asarray(values, dtype=float)[slot[1]]
        devices = self.config.get("devices", {})
        if devices:
            self._device_readings(received, devices, x)
        flagged: dict[str, list[str]] = {}
        for by_sensor in received.get("sensor_health", {}).values():
            for info in (by_sensor or {}).values():
                flagged.setdefault(info["asset"], []).append(info["quantity"])
        engine.set_inconsistent(flagged)
        cmd = np.full(len(self.commands), np.nan)
        for source, value in received.get("p_set_kw", {}).items():
            j = self.commands.get(source.rsplit(".", 1)[-1])
            if j is not None:
                cmd[j] = value
        k = time // self.clock.step_s
        now = self.clock.times[k]
        started = _time.perf_counter()
        out = engine.step_array(k, now, x, cmd)
        self.engine_s += _time.perf_counter() - started
        self.indices[k] = out.indices
        self.steps = k + 1
        self.last = out
        to_influx, to_mqtt = self.config.get("lines", False), self.config.get("messages", False)
        if to_influx or to_mqtt:
            self._format(now, out, to_influx, to_mqtt)
        return time + self.clock.step_s

    def _device_readings(
        self, received: dict[str, Any], devices: dict[str, list[str]], x: np.ndarray
    ) -> None:
        """A device's readings replace its asset's (none where its bridge fell back)."""
        where = self._where
        fresh = received.get("quality", {})
        for attr, by_source in received.items():
            if attr in ("measured", "p_set_kw", "quality"):
                continue
            for source, value in by_source.items():
                asset, kind = devices.get(source, (None, None))
                j = where.get((asset, kind, attr))
                if j is not None:
                    ok = fresh.get(source, 0.0) >= 0.5
                    x[j] = float(value) if ok else np.nan

    def _format(self, now: Any, out: Any, to_influx: bool, to_mqtt: bool) -> None:
        """Format the step's health and alert changes for the sinks that take them."""
        from adapters.influx.lineprotocol import line_prefix

        tags = self.config["tags"]
        stamp = int(now.timestamp())
        ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines: list[str] = []
        messages: list[list[Any]] = []
        for (a, i), value in zip(*self._defined(out.indices), strict=True):
            asset, kind, index = self.engine.assets[a], self.engine.asset_kinds[a], INDEX_NAMES[i]
            if to_influx:
                prefix = self._prefixes.get((a, i))
                if prefix is None:
                    labels = {**tags, "asset": asset, "kind": kind, "index": index}
                    prefix = self._prefixes[(a, i)] = line_prefix("health", labels)
                lines.append(f"{prefix} value={value!r} {stamp}")
            if to_mqtt:
                payload = json.dumps({"ts": ts, "value": value, "unit": "1"})
                messages.append([f"{asset}/health/{index}", payload, False])
        self.published["health_points"] += len(lines)
        for alert in [*out.opened, *out.updated, *out.cleared]:
            record = alert.record()
            is_open = record["status"] == "open"
            if to_influx:
                labels = {
                    **tags,
                    "asset": record["asset"],
                    "alert_id": record["alert_id"],
                    "kind": record["kind"],
                }
                fields = (
                    f"severity={float(record['severity'])!r},"
                    f"confidence={float(record['confidence'])!r},open={int(is_open)}i,"
                    f"evidence={_string_field('; '.join(record['evidence']))}"
                )
                lines.append(f"{line_prefix('alert', labels)} {fields} {stamp}")
                self.published["alert_points"] += 1
            if to_mqtt:
                payload = json.dumps(record) if is_open else ""
                messages.append([f"alerts/{record['alert_id']}", payload, True])
        self.published["messages"] += len(messages)
        self.out = {"lines": lines, "messages": messages}

    @staticmethod
    def _defined(indices: np.ndarray) -> tuple[list[tuple[int, int]], list[float]]:
        """(asset, index) positions of the defined (not NaN) indices, and their values."""
        rows, cols = np.nonzero(~np.isnan(indices))
        return list(zip(rows.tolist(), cols.tolist(), strict=True)), indices[rows, cols].tolist()

    def health(self) -> dict[str, dict[str, float]]:
        """The last step's defined indices, ``{asset: {index: value}}``."""
        out: dict[str, dict[str, float]] = {}
        if self.last is None:
            return out
        for (a, i), value in zip(*self._defined(self.last.indices), strict=True):
            out.setdefault(self.engine.assets[a], {})[INDEX_NAMES[i]] = value
        return out

    def get_data(self, outputs: dict[str, list[str]]) -> dict[str, Any]:
        """The step's lines, messages and health for whoever asked."""
        return {
            eid: {attr: self.health() if attr == "health" else self.out.get(attr) for attr in attrs}
            for eid, attrs in outputs.items()
        }

    def finalize(self) -> None:
        """Write health and alerts like ``twin diagnose``; record the counters."""
        from twin.diagnostics.run import alert_records, health_frame, write_diagnosis

        if self.engine is None:  # init failed: say so in run.json rather than nothing
            self._write_stats({"error": "the diagnostics engine was not initialised"})
            return

        times = self.clock.times[: self.steps]
        alerts = alert_records(self.engine.finish())
        tags = self.config["tags"]
        site, run_id = tags.get("site", self.scenario.name), tags.get("run_id", "")
        health = health_frame(self.engine, times, self.indices[: self.steps], site, run_id)
        write_diagnosis(Path(self.config["out_dir"]), health, alerts)
        stats = {
            "steps": self.steps,
            "engine_s": round(self.engine_s, 4),
            "setup_s": round(self.setup_s, 4),
            "alerts": len(alerts),
            "open_at_end": sum(a["status"] == "open" for a in alerts),
            "model": self.config.get("model") or "rules",
            "mode": self.config.get("mode", "residual"),
            **self.published,
        }
        self._write_stats(stats)

    def _write_stats(self, stats: dict[str, Any]) -> None:
        """The counters for ``run.json`` (``diagnostics``), where the component reads them."""
        config = getattr(self, "config", None)
        if config is None:  # init failed before it knew where
            return
        path = Path(config["stats_path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats))
