"""State estimation as a mosaik simulator: the grid's state from the field, every step.

One entity, ``estimator``. Inputs each step, from the ingest's entity: ``readings``
(one closed window of field values: ``t_s``, ``ids``, ``values`` in twin units,
``quality``, ``flags``) and ``sensors`` (the ingest's table ``(key, asset,
quantity)``, index = id; it grows as sensors appear, and the estimator is rebuilt for
the new table). A value with quality 0 or a flag (outside its plausibility limits) is
kept out of the estimate.

Per window (each one the ingest closed since the last step, under ``windows``) it lays
the readings out as measurements (:class:`twin.estimation.layout.
Layout`), runs :class:`models.estimation.WLSEstimator` (warm-started) and

- records the estimate as ``source=estimate`` rows (buses ``v_pu``, ``va_deg``; lines
  and transformers their flows and currents at both ends) at the window's time;
- follows every sensor's normalised residual: a sensor the bad-data loop takes out of a
  window is a *suspect*; after ``persistence`` windows in a row it is *flagged*
  (inconsistent with the rest of the plant's sensors) until a window keeps it again.
  Every change, and each suspect window, is a row of ``sensor_health.parquet``
  (time, sensor, asset, quantity, rn, state); sensors that no other measurement can
  check (critical measurements) are counted as unverifiable, never as healthy;
- serves ``lines`` (line protocol for the InfluxDB sink: the estimate, measurement =
  element kind with ``source=estimate``; ``sensor_health`` points for suspects and
  state changes) and ``health`` (``{sensor key: {"asset", "quantity"}}`` of the flagged
  sensors: the diagnostics engine's sensor-health signal).

At the end it writes its counters to ``stats_path`` (``run.json`` ``estimation``).
"""

from __future__ import annotations

import json
import time as _time
from pathlib import Path
from typing import Any

import mosaik_api_v3
import numpy as np
import pandas as pd

from models.base import Clock
from twin.results import ResultBuffer

__all__ = ["EstimationSimulator"]

ENTITY = "estimator"
#: Convergence of the Gauss-Newton steps (largest state change, pu or rad): pandapower's
#: ``estimate`` default. The weights span 1e-5 pu to percent-level sensors, so a tighter
#: tolerance can stall at the floating-point floor of the gain matrix.
TOLERANCE = 1e-6
#: Branch results of the estimator -> twin quantities (kW, kvar, kA).
BRANCH_FIELDS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "line": (
        ("p_from_mw", "p_from_kw", 1e3),
        ("q_from_mvar", "q_from_kvar", 1e3),
        ("i_from_ka", "i_from_ka", 1.0),
        ("p_to_mw", "p_to_kw", 1e3),
        ("q_to_mvar", "q_to_kvar", 1e3),
        ("i_to_ka", "i_to_ka", 1.0),
    ),
    "trafo": (
        ("p_hv_mw", "p_hv_kw", 1e3),
        ("q_hv_mvar", "q_hv_kvar", 1e3),
        ("i_hv_ka", "i_hv_ka", 1.0),
        ("p_lv_mw", "p_lv_kw", 1e3),
        ("q_lv_mvar", "q_lv_kvar", 1e3),
        ("i_lv_ka", "i_lv_ka", 1.0),
    ),
}


def branch_ratings_ka(net: Any) -> dict[tuple[str, int, str], float]:
    """Rated current (kA) of every branch side, as pandapower's loading uses it.

    Lines ``max_i_ka * df * parallel``; transformers ``sn_mva / (sqrt(3) vn_kv)`` of
    the side.
    """
    ratings: dict[tuple[str, int, str], float] = {}
    line = net.line
    rated = line["max_i_ka"] * line["df"] * line["parallel"]
    for index, value in zip(line.index, rated, strict=True):
        ratings[("line", int(index), "from")] = ratings[("line", int(index), "to")] = float(value)
    trafo = net.trafo
    for side in ("hv", "lv"):
        rated = trafo["sn_mva"] / (np.sqrt(3.0) * trafo[f"vn_{side}_kv"])
        for index, value in zip(trafo.index, rated, strict=True):
            ratings[("trafo", int(index), side)] = float(value)
    return ratings


def _escape_tag(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


class EstimationSimulator(mosaik_api_v3.Simulator):
    """mosaik simulator running the WLS state estimator on each ingested window."""

    def __init__(self) -> None:
        super().__init__(
            {
                "type": "time-based",
                "models": {
                    "Estimator": {
                        "public": True,
                        "params": [],
                        "attrs": ["readings", "sensors", "lines", "health"],
                    }
                },
            }
        )
        self.out: dict[str, Any] = {"lines": [], "health": {}}
        self.layout: Any = None
        self.estimator: Any = None
        self.n_known = -1
        self.last_window = -1
        self.stats: dict[str, Any] = {
            "windows": 0,
            "solved": 0,
            "failures": {},
            "iterations": 0,
            "bad_data_windows": 0,
            "suspect_windows": 0,
            "rebuilds": 0,
            "unattributed": 0,
        }
        self.seconds: list[float] = []
        self.health_rows: list[tuple[int, int, float, str]] = []
        self.flagged_at: dict[int, int] = {}
        self.max_rn: dict[int, float] = {}
        self.unverifiable: set[int] = set()

    def init(
        self, sid: str, time_resolution: float = 1.0, *, clock: dict[str, Any], config: dict
    ) -> dict[str, Any]:
        """Build the grid's estimation model (once) from the twin's grid."""
        from models.estimation import SEModel
        from models.grid import prepare_net

        started = _time.perf_counter()
        self.clock = Clock.from_dict(clock)
        self.config = config
        self.spec = config["spec"]
        net, _ = prepare_net(config["grid"])
        self.net = net
        self.model = SEModel.from_net(net)
        buses = [int(b) for b in net.bus.index[net.bus.in_service.to_numpy(bool)]]
        self.buses = buses
        solver_bus = self.model.ppci_bus(np.array(buses))
        self.joined = dict(zip(buses, (int(b) for b in solver_bus), strict=True))
        # (element, bus[, its model's outputs]) of everything that injects into a bus
        self.injectors = [(str(n), int(b), *rest) for n, b, *rest in config["injectors"]]
        self.rating_ka = branch_ratings_ka(net)
        self.buffer = ResultBuffer(self.clock.times, {**config["tags"], "source": "estimate"})
        self.streak = np.zeros(0, dtype=int)
        self.state = np.zeros(0, dtype=np.int8)  # 0 ok, 1 suspect, 2 flagged
        self.sensors: list[tuple[str, str, str]] = []
        self.setup_s = _time.perf_counter() - started
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict[str, Any]]:
        """The one estimator entity."""
        if num != 1:
            raise ValueError("create exactly one Estimator entity")
        return [{"eid": ENTITY, "type": model, "rel": []}]

    def _rebuild(self, sensors: list[tuple[str, str, str]]) -> None:
        """A new sensor table: lay it out and build its estimator (the grid stays)."""
        from models.estimation import Sensors, WLSEstimator
        from twin.estimation.layout import Layout

        spec = self.spec
        self.sensors = [tuple(s) for s in sensors]
        self.layout = layout = Layout(
            self.sensors,
            self.injectors,
            self.buses,
            spec["zero_injection"],
            self.joined,
            [int(b) for b in self.net.ext_grid.bus],
            self.rating_ka,
        )
        table = Sensors.from_records(
            (r.meas_type, r.element_type, r.element, r.side) for r in layout.rows
        )
        self.estimator = WLSEstimator(
            self.model,
            table,
            zero_injection=layout.zero_buses or None,
            tolerance=TOLERANCE,
            alpha=spec["chi2_alpha"],
            rn_threshold=spec["rn_threshold"],
            alpha_rn=spec["alpha_rn"],
            max_removals=spec["max_removals"],
        )
        grow = len(self.sensors) - len(self.streak)
        self.streak = np.r_[self.streak, np.zeros(grow, dtype=int)]
        self.state = np.r_[self.state, np.zeros(grow, dtype=np.int8)]
        self.n_known = len(self.sensors)
        self.stats["rebuilds"] += 1

    def step(self, time: int, inputs: dict[str, Any], max_advance: int) -> int:
        """Estimate every window the ingest closed since the last step, oldest first."""
        self.out = {"lines": [], "health": self.out.get("health", {})}
        received = inputs.get(ENTITY, {})
        readings = next(iter(received.get("readings", {}).values()), None)
        sensors = next(iter(received.get("sensors", {}).values()), None)
        if not readings or not sensors:
            return time + self.clock.step_s
        if len(sensors) != self.n_known:
            self._rebuild(list(sensors))
        lines: list[str] = []
        # every window the ingest closed since the last step, oldest first
        for window in readings.get("windows", [readings]):
            self._estimate_window(window)
            lines += self.out["lines"]
        self.out["lines"] = lines
        return time + self.clock.step_s

    def _estimate_window(self, readings: dict[str, Any]) -> None:
        """Estimate one closed window (a repeated or out-of-run window is skipped)."""
        self.out["lines"] = []
        k = int(readings["t_s"]) // self.clock.step_s
        if k <= self.last_window or not 0 <= k < self.clock.n_steps:
            return
        self.last_window = k
        started = _time.perf_counter()
        by_id = np.full(len(self.sensors), np.nan)
        ids = np.asarray(readings["ids"], dtype=int)
        good = (np.asarray(readings["quality"]) >= 1) & (np.asarray(readings["flags"]) == 0)
        by_id[ids[good]] = np.asarray(readings["values"], dtype=float)[good]
        window = self.layout.window(by_id)
        if not window.present.any():
            return
        estimate = self.estimator.estimate(window.values, window.std, window.present)
        self.stats["windows"] += 1
        if estimate.success:
            self.stats["solved"] += 1
            self.stats["iterations"] += int(estimate.iterations)
            self.stats["bad_data_windows"] += int(bool(estimate.bad_data))
            self._record(k, estimate)
            self._follow_sensors(k, estimate, by_id)
        else:
            reason = estimate.reason or "unknown"
            self.stats["failures"][reason] = self.stats["failures"].get(reason, 0) + 1
        self.seconds.append(_time.perf_counter() - started)

    def _record(self, k: int, estimate: Any) -> None:
        """The estimate as ``source=estimate`` rows and, for the sink, line protocol."""
        buffer = self.buffer
        lines: list[str] = []
        stamp = int(self.clock.times[k].timestamp())
        to_influx = self.config.get("lines", False)
        prefix = ",".join(
            f"{key}={_escape_tag(str(value))}"
            for key, value in sorted({**self.config["tags"], "source": "estimate"}.items())
            if value != ""
        )
        for i, bus in enumerate(self.net.bus.index):
            vm, va = float(estimate.vm_pu[i]), float(estimate.va_degree[i])
            buffer.column(f"bus_{bus}", "bus", "v_pu")[k] = vm
            buffer.column(f"bus_{bus}", "bus", "va_deg")[k] = va
            if to_influx and vm == vm:
                lines.append(f"bus,asset=bus_{bus},{prefix} v_pu={vm!r},va_deg={va!r} {stamp}")
        for table, fields in BRANCH_FIELDS.items():
            results = getattr(estimate, table)
            if not results:
                continue
            for i, index in enumerate(self.net[table].index):
                parts = []
                for source, quantity, factor in fields:
                    value = float(results[source][i]) * factor
                    buffer.column(f"{table}_{index}", table, quantity)[k] = value
                    if value == value:
                        parts.append(f"{quantity}={value!r}")
                if to_influx and parts:
                    lines.append(
                        f"{table},asset={table}_{index},{prefix} {','.join(parts)} {stamp}"
                    )
        self.out["lines"] = lines

    def _follow_sensors(self, k: int, estimate: Any, by_id: np.ndarray) -> None:
        """Suspects (taken out this window) and flagged sensors (out ``persistence`` times).

        A bus injection taken out is blamed on one of its meters where one can be named
        (:func:`twin.estimation.layout.attribute`), otherwise counted (``unattributed``).
        """
        from twin.estimation.layout import attribute

        layout = self.layout
        n_rows = len(layout.rows)
        rn_rows = np.asarray(estimate.rn, dtype=float)[:n_rows]
        out_rows = np.asarray(estimate.flagged, dtype=bool)[:n_rows]
        used_rows = np.asarray(estimate.used, dtype=bool)[:n_rows]
        n = len(self.sensors)
        out = np.zeros(n, dtype=bool)
        seen = np.zeros(n, dtype=bool)
        rn = np.full(n, np.nan)
        own = layout.row_sensor >= 0
        sensor = layout.row_sensor[own]
        out[sensor] = out_rows[own]
        seen[sensor] = used_rows[own] | out_rows[own]
        rn[sensor] = rn_rows[own]
        unverifiable = np.asarray(estimate.unverifiable, dtype=bool)[:n_rows][own]
        self.unverifiable.update(int(s) for s in sensor[unverifiable])
        for row in np.flatnonzero(used_rows & ~own):  # a kept injection clears its meters
            members = [sid for _, sid in layout.bus_row_members.get(int(row), [])]
            seen[members] = True
        for row in np.flatnonzero(out_rows & ~own):
            blamed = attribute(layout.bus_row_members.get(int(row), []), by_id)
            if blamed is None:
                self.stats["unattributed"] += 1
            else:
                out[blamed] = seen[blamed] = True
        finite = np.flatnonzero(np.isfinite(rn))
        for s in finite[rn[finite] > 0]:
            if rn[s] > self.max_rn.get(int(s), 0.0):
                self.max_rn[int(s)] = float(rn[s])
        before = self.state.copy()
        # a sensor the window did not read keeps its streak; one read and kept ends it
        self.streak = np.where(out, self.streak + 1, np.where(seen, 0, self.streak))
        persistence = int(self.spec["persistence"])
        self.state = np.where(self.streak >= persistence, 2, np.where(out, 1, 0)).astype(np.int8)
        self.state[seen & ~out] = 0
        stamp = int(self.clock.times[k].timestamp())
        names = ("ok", "suspect", "flagged")
        lines = self.out["lines"]
        for s in np.flatnonzero((self.state != before) | (self.state == 1)):
            s = int(s)
            state = int(self.state[s])
            self.health_rows.append((k, s, float(rn[s]), names[state]))
            if state == 2 and s not in self.flagged_at:
                self.flagged_at[s] = k
            if self.config.get("lines", False):
                key, asset, quantity = self.sensors[s][:3]
                tags = {**self.config["tags"], "sensor": key, "asset": asset, "source": "estimate"}
                prefix = ",".join(
                    f"{t}={_escape_tag(str(v))}" for t, v in sorted(tags.items()) if v != ""
                )
                lines.append(f"sensor_health,{prefix} state={state}i {stamp}")
        self.stats["suspect_windows"] += int(np.sum(self.state == 1))
        self.out["health"] = {
            self.sensors[int(s)][0]: {
                "asset": self.sensors[int(s)][1],
                "quantity": self.sensors[int(s)][2],
            }
            for s in np.flatnonzero(self.state == 2)
        }

    def get_data(self, outputs: dict[str, list[str]]) -> dict[str, Any]:
        """The step's lines and the flagged sensors."""
        return {eid: {a: self.out.get(a) for a in attrs} for eid, attrs in outputs.items()}

    def finalize(self) -> None:
        """Write the estimate, the sensors' health and the counters."""
        config = self.config
        n = min(self.last_window + 1, self.clock.n_steps)
        if n > 0 and self.buffer.series:
            Path(config["record"]).parent.mkdir(parents=True, exist_ok=True)
            self.buffer.write_parquet(config["record"], n_steps=n)
        times = self.clock.times
        rows = [
            {
                "time": times[k],
                "sensor": self.sensors[s][0],
                "asset": self.sensors[s][1],
                "quantity": self.sensors[s][2],
                "rn": rn,
                "state": state,
            }
            for k, s, rn, state in self.health_rows
        ]
        columns = ["time", "sensor", "asset", "quantity", "rn", "state"]
        pd.DataFrame(rows, columns=columns).to_parquet(config["health_path"], index=False)
        seconds = np.array(self.seconds) * 1e3
        solved = self.stats["solved"]
        flagged = [
            {
                "sensor": self.sensors[s][0],
                "asset": self.sensors[s][1],
                "quantity": self.sensors[s][2],
                "since": times[k].isoformat(),
                "max_rn": round(self.max_rn.get(s, float("nan")), 3),
            }
            for s, k in sorted(self.flagged_at.items(), key=lambda item: item[1])
        ]
        stats = {
            **self.stats,
            "iterations_mean": round(self.stats["iterations"] / solved, 3) if solved else None,
            "sensors": len(self.sensors),
            "rows": len(self.layout.rows) if self.layout is not None else 0,
            "unverifiable": sorted(self.sensors[s][0] for s in self.unverifiable),
            "flagged": flagged,
            "setup_s": round(self.setup_s, 3),
            "step_ms_p50": round(float(np.percentile(seconds, 50)), 3) if len(seconds) else None,
            "step_ms_p99": round(float(np.percentile(seconds, 99)), 3) if len(seconds) else None,
        }
        Path(config["stats_path"]).parent.mkdir(parents=True, exist_ok=True)
        Path(config["stats_path"]).write_text(json.dumps(stats, indent=2))
