"""The streaming diagnostics engine: one :meth:`Engine.step` per simulation step.

The same step runs offline (:func:`twin.diagnostics.run.diagnose_run` loops it over a
run's measured rows) and online (a simulator in the world calls it every step), so
both give the same indices and alerts. Per step it

1. holds every sensor's last report and computes the twin's expectation (precomputed
   exogenous series, PV corrected for the measured module temperature, the battery's
   commanded power, SoC and temperature from :class:`BatteryTracker`);
2. updates the residual charts (:class:`Residuals`) and the data-quality checks
   (:class:`Quality`) of every sensor, vectorised;
3. computes the seven health indices per asset (:mod:`twin.diagnostics.indices`);
4. decides per asset whether it fires (a chart alarm, an index below its threshold for
   ``open_steps`` steps, a data-quality flag, a signature: POC outage, dead line) or is
   healthy, and updates the alert episodes (:class:`AlertBook`), asking the diagnoser
   for the kind only when an alert opens or is re-diagnosed.

Inputs of step ``k``: every sensor's report of that step (NaN: none); a state's (SoC,
temperature) is its value at the *end* of step ``k`` (the results row at ``k + 1``);
and the EMS's setpoints of step ``k`` (``(battery, "controller", "p_set_kw")``).

``mode="threshold"`` is the static-threshold baseline: an alert while any index is
below its threshold in this step, cleared at the first step it is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from twin.diagnostics.alerts import Alert, AlertBook, AlertSettings
from twin.diagnostics.arrays import fill_nan, pad, ratio
from twin.diagnostics.balance import Balance
from twin.diagnostics.battery import BatteryTracker
from twin.diagnostics.catalogue import Catalogue, sensor_sigma
from twin.diagnostics.detectors import DetectorSettings, Residuals
from twin.diagnostics.diagnosis import Diagnoser, RuleDiagnoser
from twin.diagnostics.expected import Expectations, temperature_corrected
from twin.diagnostics.features import (
    EXTRA_NAMES,
    KIND_INDICES,
    FeatureLayout,
)
from twin.diagnostics.indices import (
    INDEX_NAMES,
    converter_availability_battery,
    converter_availability_pv,
    pv_performance,
    soc_consistency,
    soh_estimate,
    thermal_stress,
    voltage_band,
)
from twin.diagnostics.quality import Quality, QualitySettings

__all__ = ["Engine", "Settings", "StepOutput"]

_I = {name: i for i, name in enumerate(INDEX_NAMES)}
_X = {name: i for i, name in enumerate(EXTRA_NAMES)}


@dataclass(frozen=True)
class Settings:
    """Everything tunable of the engine (defaults documented in each part's module).

    ``thresholds``: an index below it is evidence (the static baseline's alert level
    too); ``soh_drop``: estimated SoH this far below the commissioning SoH is a fade;
    ``line_dead_pct``/``line_typical_pct``: a line below the first that usually carries
    more than the second is out; ``outage_kw``: POC exchange below it while the site's
    injections are unbalanced by more than ``unbalance_kw`` is an outage.
    """

    detectors: DetectorSettings = DetectorSettings()
    quality: QualitySettings = QualitySettings()
    alerts: AlertSettings = AlertSettings()
    mode: str = "residual"
    thresholds: dict[str, float] = field(
        default_factory=lambda: {
            "pv_performance": 0.9,
            "converter_availability": 0.5,
            "thermal_stress": 0.5,
            "soc_consistency": 0.5,
            "voltage_band": 0.5,
            "data_quality": 0.5,
        }
    )
    soh_drop: float = 0.08
    # 0.7, not 0.5 (the training rows' 99.9 % quantile): at 0.5 the anomaly model raised
    # 1.25 false alarms per site-week on the benchmark's fault-free weeks (BENCHMARKS.md)
    anomaly_score: float = 0.7
    anomaly_steps: int = 2
    anomaly_kinds: tuple[str, ...] = ("battery", "load")
    line_dead_pct: float = 0.1
    line_typical_pct: float = 1.0
    outage_kw: float = 0.5
    unbalance_kw: float = 2.0
    balance_floor_kw: float = 0.2


@dataclass
class StepOutput:
    """What one step gives.

    Indices ``(n_assets, 7)`` in the engine's asset order (``Engine.assets``), features
    per asset kind ``(n, F)``, and the alerts opened, updated and cleared.
    """

    indices: np.ndarray
    features: dict[str, np.ndarray]
    opened: list[Alert]
    updated: list[Alert]
    cleared: list[Alert]


def _pad(groups: list[list[int]]) -> np.ndarray:
    """Ragged index lists as a matrix padded with -1 (gathers a trailing NaN)."""
    width = max([1, *(len(g) for g in groups)])
    out = np.full((len(groups), width), -1, dtype=int)
    for i, g in enumerate(groups):
        out[i, : len(g)] = g
    return out


def _nanmin_rows(values: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(values), np.inf, values)
    low = filled.min(axis=1)
    return np.where(np.isinf(low), np.nan, low)


#: Confidence of a ``sensor_drift`` diagnosis from the state estimate's bad-data test.
INCONSISTENT_CONFIDENCE = 0.9


class Engine:
    """Streaming health indices, residual detection and alert episodes of one run.

    Parameters
    ----------
    catalogue : Catalogue
        The run's sensors and assets.
    expectations : Expectations
        The exogenous expectation of every sensor for every step.
    settings : Settings, optional
        Parameters (defaults: :class:`Settings`).
    diagnoser : Diagnoser, optional
        Names the fault kind of an alert (default :class:`RuleDiagnoser`).
    scorer : AnomalyScorer, optional
        Learned anomaly scores (``scores(kind, X, names)``, vectorised per asset kind):
        a battery or load scoring above ``anomaly_score`` for ``anomaly_steps`` steps
        in a row fires. Default: the anomaly model of a learned diagnoser's ``model``
        (none with the rules).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        expectations: Expectations,
        settings: Settings | None = None,
        diagnoser: Diagnoser | None = None,
        scorer: Any = None,
    ) -> None:
        self.cat, self.exp = catalogue, expectations
        self.settings = s = settings or Settings()
        if s.mode == "threshold":
            s = replace(s, alerts=AlertSettings(open_steps=1, clear_steps=1, clear_min_s=0.0))
            self.settings = s
        self.diagnoser = diagnoser or RuleDiagnoser(
            h=s.detectors.h,
            ewma_limit=s.detectors.ewma_limit,
            noise_ratio=s.quality.noise_ratio,
            soh_drop=s.soh_drop,
        )
        if scorer is None and getattr(self.diagnoser, "model", None) is not None:
            from twin.diagnostics.learned import LearnedAnomalyScorer  # scikit-learn

            scorer = LearnedAnomalyScorer(self.diagnoser.model)
        self.scorer = scorer if s.mode != "threshold" else None
        sensors = catalogue.sensors
        self.keys = [x.key for x in sensors]
        self.n_sensors = n = len(sensors)
        where = {x.key: j for j, x in enumerate(sensors)}
        self.assets = sorted(catalogue.assets)
        self.asset_kinds = [catalogue.assets[a].kind for a in self.assets]
        ai = {a: i for i, a in enumerate(self.assets)}
        self.n_assets = len(self.assets)
        #: Assets a sensor of which the state estimate found inconsistent with the rest
        #: of the plant's sensors (:meth:`set_inconsistent`), and those quantities.
        self._inconsistent = np.zeros(self.n_assets, dtype=bool)
        self._inconsistent_q: dict[int, list[str]] = {}
        self._asset_index = ai
        grid = catalogue.assets["poc"].ratings
        slack = where.get((grid.get("slack_bus", ""), "bus", "v_pu"), -1)

        def sensor(asset: str, kind: str, quantity: str) -> int:
            if kind == "grid" and quantity == "v_pu":
                return slack
            return where.get((asset, kind, quantity), -1)

        # ownership: data quality by the sensor's asset, residuals by the asset they reveal
        own = [[] for _ in self.assets]
        reveal = [[] for _ in self.assets]
        for j, x in enumerate(sensors):
            own[ai[x.asset]].append(j)
            reveal[ai["poc" if j == slack else x.asset]].append(j)
        self._own, self._reveal = _pad(own), _pad(reveal)
        self._noise = params = catalogue.noise_params()
        self._resolution = params[:, 2]
        self._has_noise = (params[:, 0] > 0) | (params[:, 1] > 0)
        self._q = np.array([x.quantity for x in sensors], dtype=object)

        def kind_index(kind: str) -> tuple[np.ndarray, list[Any]]:
            names = [a for a in self.assets if catalogue.assets[a].kind == kind]
            return np.array([ai[a] for a in names], dtype=int), [catalogue.assets[a] for a in names]

        self._pv_a, pv = kind_index("pv")
        self._pv_p = np.array([sensor(a.name, "pv", "p_kw") for a in pv], dtype=int)
        self._pv_t = np.array([sensor(a.name, "pv", "t_cell_c") for a in pv], dtype=int)
        self._pv_ac = np.array([float(a.ratings.get("p_ac_kw", np.nan)) for a in pv])
        self._pv_gamma = np.array([float(a.ratings.get("gamma_pdc", 0.0)) for a in pv])
        self._pv_ok = self._pv_p >= 0
        self._pv_p_ok = self._pv_p[self._pv_ok]
        self._bat_a, bats = kind_index("battery")
        self._bat_p = np.array([sensor(a.name, "battery", "p_kw") for a in bats], dtype=int)
        self._bat_soc = np.array([sensor(a.name, "battery", "soc") for a in bats], dtype=int)
        self._bat_t = np.array([sensor(a.name, "battery", "t_c") for a in bats], dtype=int)
        self.command_keys = [(a.name, "controller", "p_set_kw") for a in bats]
        # (sensor positions, which batteries have them, 0 power / 1 SoC / 2 temperature)
        self._bat_slots = [
            (idx[idx >= 0], idx >= 0, which)
            for which, idx in enumerate((self._bat_p, self._bat_soc, self._bat_t))
        ]
        self.tracker = BatteryTracker([a.ratings for a in bats], catalogue.step_s)
        r = [a.ratings for a in bats]
        self._bat_e = np.array([float(x.get("e_kwh", np.nan)) for x in r])
        self._bat_pmax = np.array([float(x.get("p_max_kw", np.nan)) for x in r])
        self._bat_soh0 = np.array([float(x.get("soh_init", 1.0)) for x in r])
        self._bat_tder = np.array([float(x.get("t_derate_c", 45.0)) for x in r])
        self._bat_ttrip = np.array([float(x.get("t_trip_c", 55.0)) for x in r])
        self._load_a, loads = kind_index("load")
        self._load_p = np.array([sensor(a.name, "load", "p_kw") for a in loads], dtype=int)
        self._load_rating = np.array([float(a.ratings.get("p_kw", np.nan)) for a in loads])
        self._bus_a, buses = kind_index("bus")
        self._bus_v = np.array([sensor(a.name, "bus", "v_pu") for a in buses], dtype=int)
        self._band_rows = np.append(self._bus_a, ai["poc"]).astype(int)
        self._band_v = np.append(self._bus_v, slack).astype(int)
        self._line_a, lines = kind_index("line")
        self._line_l = np.array([sensor(a.name, "line", "loading_pct") for a in lines], dtype=int)
        self._line_typical = np.zeros(len(lines))
        self._line_from = np.array(
            [where.get((a.ratings.get("from_bus", ""), "bus", "v_pu"), -1) for a in lines],
            dtype=int,
        )
        self._line_to = np.array(
            [where.get((a.ratings.get("to_bus", ""), "bus", "v_pu"), -1) for a in lines], dtype=int
        )
        self._poc = ai["poc"]
        self._poc_p, self._poc_q = sensor("poc", "grid", "p_kw"), sensor("poc", "grid", "q_kvar")
        self._poc_v = slack
        self._inject = np.array(
            [
                j
                for j, x in enumerate(sensors)
                if x.quantity == "p_kw" and x.kind in ("pv", "battery", "load", "ev")
            ],
            dtype=int,
        )
        self._inject_q = np.array(
            [j for j, x in enumerate(sensors) if x.quantity == "q_kvar" and x.kind != "grid"],
            dtype=int,
        )
        self.balance = Balance(catalogue.step_s)
        self._has_exp = np.zeros(n, dtype=bool)
        self._has_exp[np.isfinite(expectations.values).any(axis=0)] = True
        for idx in (self._bat_p, self._bat_soc, self._bat_t):
            self._has_exp[idx[idx >= 0]] = True
        # thresholds per asset and index (-inf: not evidence for that asset)
        self._thr = np.full((self.n_assets, len(INDEX_NAMES)), -np.inf)
        for a, kind in enumerate(self.asset_kinds):
            for name in KIND_INDICES.get(kind, ()):
                if name in s.thresholds and not (kind == "bus" and name == "voltage_band"):
                    if name == "data_quality" and s.mode != "threshold":
                        continue  # the residual mode reads the flags themselves
                    self._thr[a, _I[name]] = s.thresholds[name]
        self._thr[self._bat_a, _I["soh_estimate"]] = self._bat_soh0 - s.soh_drop
        self._applicable = np.zeros_like(self._thr, dtype=bool)
        for a, kind in enumerate(self.asset_kinds):
            for name in KIND_INDICES.get(kind, ()):
                self._applicable[a, _I[name]] = True
        # the energy balance of a battery (SoC expectation, temperature, capacity) needs
        # its power every step, or held between reports at most a minute apart (a 1 s run's
        # power reported every 5 s): without such a power sensor that evidence is not
        # defined (no expectation, no threshold) rather than a false alarm
        every = catalogue.report_steps() * catalogue.step_s <= max(catalogue.step_s, 60)
        self._bat_blind = blind = ~((self._bat_p >= 0) & every[np.maximum(self._bat_p, 0)])
        self._blind = np.zeros(n, dtype=bool)
        for idx in (self._bat_soc, self._bat_t):
            self._blind[idx[blind & (idx >= 0)]] = True
        self._has_exp &= ~self._blind
        self._blind_idx = np.flatnonzero(self._blind)
        self._bat_blind_rows = self._bat_a[blind]
        for name in ("soh_estimate", "soc_consistency"):
            self._thr[self._bat_a[blind], _I[name]] = -np.inf
        self.residuals = Residuals(list(self._q), s.detectors)
        self.quality = Quality(catalogue.report_steps(), s.quality, catalogue.step_s)
        self.book = AlertBook(
            self.assets,
            self.asset_kinds,
            s.alerts,
            "threshold" if s.mode == "threshold" else "residual",
        )
        self.book.clear_steps = max(
            s.alerts.clear_steps, int(np.ceil(s.alerts.clear_min_s / catalogue.step_s))
        )
        self._hx = np.full(n + 1, np.nan)
        self.held = self._hx[:n]  # the last report of every sensor
        self._xx = np.full(n + 1, np.nan)
        self._ex = np.full(n + 1, np.nan)
        self._sx = np.full(n + 1, np.nan)
        self._t_model = np.concatenate(
            [expectations.t_model, np.full((expectations.n_steps, 1), np.nan)], axis=1
        )
        self._low = np.zeros(self.n_assets, dtype=int)
        self._anomalous = np.zeros(self.n_assets, dtype=int)
        self._soc_res = np.full(len(bats), np.nan)
        self.layout = FeatureLayout(self.assets, self.asset_kinds, self.keys, self._poc_v)
        self.indices = np.full((self.n_assets, len(INDEX_NAMES)), np.nan)
        self.extras = np.full((self.n_assets, len(EXTRA_NAMES)), np.nan)
        self._pool: np.ndarray | None = None
        #: Collect every asset's features each step (``StepOutput.features``, for
        #: training); off (the default) they are gathered only for the assets the
        #: diagnoser is asked about.
        self.collect_features = False

    # --- layout of the per-asset features ----------------------------------------------

    def feature_names(self) -> dict[str, list[str]]:
        """The feature names per asset kind present in this run."""
        return {kind: names for kind, (_, _, names) in self.layout.kinds.items()}

    # --- the step ----------------------------------------------------------------------

    def step(
        self, k: int, time: pd.Timestamp, measured: Mapping[tuple[str, str, str], float]
    ) -> StepOutput:
        """One step from a mapping ``(asset, kind, quantity) -> reading`` (NaN/absent: none).

        The EMS setpoints are read from the same mapping under
        ``(battery, "controller", "p_set_kw")``.
        """
        x = np.array([measured.get(key, np.nan) for key in self.keys], dtype=float)
        cmd = np.array([measured.get(key, np.nan) for key in self.command_keys], dtype=float)
        return self.step_array(k, time, x, cmd)

    def set_inconsistent(self, sensors: dict[str, list[str]]) -> None:
        """Sensors the state estimate flags as inconsistent, ``{asset: [quantity, ...]}``.

        A sensor-health signal from outside the engine (:mod:`twin.estimation`): while
        a sensor of an asset is flagged, the asset fires (an alert episode of kind
        ``sensor_drift``, evidence ``inconsistent:<quantity>``) and its data-quality
        index is 0. Holds until the next call; unknown assets are ignored.
        """
        self._inconsistent[:] = False
        self._inconsistent_q = {}
        for asset, quantities in sensors.items():
            a = self._asset_index.get(asset)
            if a is not None:
                self._inconsistent[a] = True
                self._inconsistent_q[a] = sorted(quantities)

    def step_array(self, k: int, time: pd.Timestamp, x: np.ndarray, cmd: np.ndarray) -> StepOutput:
        """One step from the readings in sensor order and the setpoints in battery order."""
        n = self.n_sensors
        fresh = x == x  # not NaN
        # padded buffers: index -1 (a sensor the run does not have) reads NaN
        hx, xx, ex, sx = self._hx, self._xx, self._ex, self._sx
        hx[:n][fresh] = x[fresh]
        xx[:n] = x
        ex[:n] = self.exp.values[k]
        sx[:n] = sensor_sigma(self._noise, hx[:n])
        self._held_idx = self.indices
        self.indices = np.full((self.n_assets, len(INDEX_NAMES)), np.nan)
        self.extras = np.full((self.n_assets, len(EXTRA_NAMES)), np.nan)
        if len(self._pv_a):
            self._pv(k)
        if len(self._bat_a):
            self._battery(cmd)
        self._site()
        if len(self._blind_idx):
            ex[self._blind_idx] = np.nan
        alarm = self._sensors(x)
        if len(self._line_a):
            self._dead_lines(hx, self.extras)
        self._pool = None
        firing, healthy = self._decide(alarm)
        if self.collect_features and self._pool is None:
            self._pool = self._make_pool()
        opened, updated, cleared = self.book.update(
            k, time, firing, healthy, self._diagnose, self._evidence
        )
        for alert in cleared:
            a = self.assets.index(alert.asset)
            mask = np.zeros(self.n_sensors + 1, dtype=bool)
            mask[self._reveal[a]] = True
            self.residuals.reset(mask[:-1])
            self._low[a] = 0
        features = self.layout.all(self._pool) if self.collect_features else {}
        return StepOutput(self.indices, features, opened, updated, cleared)

    def _pv(self, k: int) -> None:
        """PV: temperature-corrected expectation, performance and availability."""
        hx, ex, n_idx = self._hx, self._ex, self.indices
        p_exp = temperature_corrected(
            ex[self._pv_p], self._t_model[k, self._pv_p], hx[self._pv_t], self._pv_gamma
        )
        ex[self._pv_p_ok] = p_exp[self._pv_ok]
        # a reading against the expectation of its own report time; held between reports
        p_meas = self._xx[self._pv_p]
        fresh = p_meas == p_meas
        perf = pv_performance(p_meas, p_exp, self._pv_ac)
        avail = converter_availability_pv(p_meas, p_exp, self._pv_ac)
        held = self._held_idx[self._pv_a]
        perf = np.where(fresh, perf, held[:, _I["pv_performance"]])
        n_idx[self._pv_a, _I["pv_performance"]] = perf
        n_idx[self._pv_a, _I["converter_availability"]] = np.where(
            fresh, avail, held[:, _I["converter_availability"]]
        )
        self.extras[self._pv_a, _X["daylight"]] = (perf == perf).astype(float)

    def _battery(self, cmd: np.ndarray) -> None:
        """Batteries: commanded power, Coulomb counting, thermal model, capacity."""
        hx, xx, ex, n_idx, extras = self._hx, self._xx, self._ex, self.indices, self.extras
        tr = self.tracker
        p_cmd = tr.commanded(cmd)
        p_meas = hx[self._bat_p]
        # the energy of the step: the reading, or without one the EMS's command
        fresh_p = xx[self._bat_p]
        p_step = np.where(fresh_p == fresh_p, fresh_p, np.where(p_cmd == p_cmd, p_cmd, p_meas))
        soc_exp, t_exp = tr.update(p_step, xx[self._bat_soc], xx[self._bat_t])
        for idx, ok, values in self._bat_slots:
            ex[idx] = (p_cmd, soc_exp, t_exp)[values][ok]
        self._soc_res = np.where(tr.soc_residual == tr.soc_residual, tr.soc_residual, self._soc_res)
        soh = soh_estimate(tr.capacity_kwh, self._bat_e)
        rows = self._bat_a
        n_idx[rows, _I["soh_estimate"]] = soh
        n_idx[rows, _I["thermal_stress"]] = thermal_stress(
            hx[self._bat_t], self._bat_tder, self._bat_ttrip
        )
        n_idx[rows, _I["soc_consistency"]] = soc_consistency(self._soc_res)
        fresh = fresh_p == fresh_p
        n_idx[rows, _I["converter_availability"]] = np.where(
            fresh,
            converter_availability_battery(fresh_p, p_cmd, self._bat_pmax),
            self._held_idx[rows, _I["converter_availability"]],
        )
        if len(self._bat_blind_rows):
            n_idx[self._bat_blind_rows, _I["soh_estimate"]] = np.nan
            n_idx[self._bat_blind_rows, _I["soc_consistency"]] = np.nan
        extras[rows, _X["soc_jump"]] = tr.jump.astype(float)
        extras[rows, _X["soc_residual"]] = self._soc_res
        extras[rows, _X["soh_drop"]] = self._bat_soh0 - soh

    def _site(self) -> None:
        """The site's balance, load ratios, voltage bands and the POC outage signature."""
        s = self.settings
        hx, ex, sx, extras = self._hx, self._ex, self._sx, self.extras
        # the site's balance: a sensor's residual shows in it, a physical change does not
        inject = hx[self._inject]
        p_sum = float(inject[inject == inject].sum())
        inject_q = hx[self._inject_q]
        q_sum = float(inject_q[inject_q == inject_q].sum())
        self.balance.update(hx[self._poc_p], p_sum)
        for rows, idx in ((self._pv_a, self._pv_p), (self._load_a, self._load_p)):
            if len(rows):
                floor = np.maximum(s.balance_floor_kw, 3.0 * sx[idx])
                extras[rows, _X["balance_share"]] = self.balance.share(hx[idx] - ex[idx], floor)
        if len(self._load_a):
            e_p = ex[self._load_p]
            big = np.abs(e_p) >= 0.05 * self._load_rating
            extras[self._load_a, _X["ratio_p"]] = np.where(
                big, ratio(hx[self._load_p], e_p), np.nan
            )
        # voltage band of the buses and of the POC (its bus) in one call
        self.indices[self._band_rows, _I["voltage_band"]] = voltage_band(
            hx[self._band_v], self.cat.v_min_pu, self.cat.v_max_pu
        )
        quiet = abs(hx[self._poc_p]) < s.outage_kw and abs(hx[self._poc_q]) < s.outage_kw
        unbalance = max(abs(p_sum), abs(q_sum))
        extras[self._poc, _X["outage"]] = float(quiet and unbalance > s.unbalance_kw)

    def _sensors(self, x: np.ndarray) -> np.ndarray:
        """Residual charts and data quality of every sensor; return the chart alarms."""
        n = self.n_sensors
        expected, sigma = self._ex[:n], self._sx[:n]
        alarm = self.residuals.update(x, expected, sigma)
        window = self.quality.window(sigma, self._resolution, self._has_noise)
        self.quality.update(x, window, expected, sigma)
        self._spread = np.where(self._has_exp, self.residuals.spread, np.nan)
        dq = self.quality.index(self._spread)
        self.indices[:, _I["data_quality"]] = _nanmin_rows(pad(dq, np.nan)[self._own])
        self.indices[self._inconsistent, _I["data_quality"]] = 0.0
        return alarm

    def _decide(self, alarm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per asset: firing (evidence of a fault) and healthy (none, residuals back)."""
        s, extras = self.settings, self.extras
        low = np.any(self.indices < self._thr, axis=1)
        self._low = np.where(low, self._low + 1, 0)
        if s.mode == "threshold":
            return low, ~low
        flagged = self.quality.stale | self.quality.gap
        sig = fill_nan(extras[:, [_X["outage"], _X["dead"]]]).max(axis=1) >= 0.5
        res_alarm = pad(alarm, False)[self._reveal].any(axis=1)
        # back to health: the latest residual of every sensor within clear_z sigma and
        # its EWMA within its limit (a small sustained shift is not health)
        ew = self.residuals.ewma
        out_z = (np.abs(self.residuals.z_last) > s.detectors.clear_z) | (np.abs(ew.mean) > ew.limit)
        beyond = pad(out_z, False)[self._reveal].any(axis=1)
        # an open alert is held by current evidence, not by the CUSUM's memory
        held_open = list(self.book.open)
        res_alarm[held_open] = beyond[held_open]
        dq_flag = pad(flagged, False)[self._own].any(axis=1)
        firing = res_alarm | dq_flag | (self._low >= s.alerts.open_steps) | sig
        firing |= self._inconsistent
        if self.scorer is not None:
            firing |= self._anomaly()
        if len(self._line_a) and (
            extras[self._line_a, _X["dead"]].max() >= 0.5
            or any(self.asset_kinds[a] == "line" for a in self.book.open)
        ):
            firing[self._bus_a] = False  # buses cut off by the line: its evidence
        return firing, ~(firing | beyond | low)

    def _anomaly(self) -> np.ndarray:
        """Assets whose learned anomaly score stayed high ``anomaly_steps`` steps."""
        s = self.settings
        high = np.zeros(self.n_assets, dtype=bool)
        self._pool = self._make_pool()
        for kind in s.anomaly_kinds:
            if kind not in self.layout.kinds:
                continue
            rows, gather, names = self.layout.kinds[kind]
            high[rows] = self.scorer.scores(kind, self._pool[gather], names) > s.anomaly_score
        self._anomalous = np.where(high, self._anomalous + 1, 0)
        return self._anomalous >= s.anomaly_steps

    def _make_pool(self) -> np.ndarray:
        """Every feature value of this step in one vector (see :class:`FeatureLayout`)."""
        stats = (
            self.residuals.z,
            self.residuals.cusum.statistic,
            self.residuals.ewma.mean,
            self._spread,
            self.quality.stale.astype(float),
            self.quality.gap.astype(float),
        )
        return self.layout.pool(self.indices, stats, self.extras)

    def _dead_lines(self, hx: np.ndarray, extras: np.ndarray) -> None:
        """Flag lines out of service.

        A line is out when it reads nothing though it carried power recently and one of
        its end buses went silent (cut off) while the other reports; the typical
        loading is a slowly decaying maximum (time constant one day).
        """
        s = self.settings
        loading = hx[self._line_l]
        zero = (np.abs(loading) <= s.line_dead_pct) & (self._line_typical > s.line_typical_pct)
        gap = pad(self.quality.gap, True)
        silent_from, silent_to = gap[self._line_from], gap[self._line_to]
        measured = (self._line_from >= 0) & (self._line_to >= 0)
        cut = measured & (silent_from != silent_to)
        dead = zero & cut
        decay = 1.0 - min(1.0, self.cat.step_s / 86400.0)
        self._line_typical = np.fmax(fill_nan(loading), self._line_typical * decay)
        extras[self._line_a, _X["dead"]] = dead.astype(float)

    def features_of(self, a: int) -> tuple[np.ndarray, list[str]]:
        """The current feature vector of asset ``a`` (engine order) and its names."""
        if self._pool is None:
            self._pool = self._make_pool()
        return self.layout.of(self._pool, a, self.asset_kinds[a])

    def _diagnose(self, a: int) -> tuple[str, float]:
        if self._inconsistent[a]:  # the other sensors of the plant contradict this one
            return "sensor_drift", INCONSISTENT_CONFIDENCE
        values, names = self.features_of(a)
        kind, confidence = self.diagnoser.diagnose(self.asset_kinds[a], values, names)
        return kind, float(np.clip(confidence, 0.0, 1.0))

    def _evidence(self, a: int) -> tuple[list[str], float]:
        """Evidence strings of asset ``a`` and its severity 0..1."""
        notes = []
        row, thr = self.indices[a], self._thr[a]
        for i, name in enumerate(INDEX_NAMES):
            if row[i] < thr[i]:
                notes.append(f"{name}={row[i]:.3g}")
        cus = self.residuals.cusum.statistic
        h = self.settings.detectors.h
        for j in self._reveal[a][self._reveal[a] >= 0]:
            quantity = self._q[j]
            if abs(cus[j]) > h:
                notes.append(f"cusum:{quantity}={cus[j]:.3g}")
            if abs(self.residuals.ewma.mean[j]) > self.residuals.ewma.limit:
                notes.append(f"ewma:{quantity}={self.residuals.ewma.mean[j]:.3g}")
        for j in self._own[a][self._own[a] >= 0]:
            if self.quality.stale[j]:
                notes.append(f"stale:{self._q[j]}")
            if self.quality.gap[j]:
                notes.append(f"gap:{self._q[j]}")
        for name in ("outage", "dead"):
            if self.extras[a, _X[name]] >= 0.5:
                notes.append(name)
        notes += [f"inconsistent:{q}" for q in self._inconsistent_q.get(a, [])]
        defined = row[self._applicable[a]]
        defined = defined[np.isfinite(defined)]
        severity = 1.0 - float(defined.min()) if len(defined) else 0.0
        reveal = self._reveal[a][self._reveal[a] >= 0]
        if len(reveal):
            z = fill_nan(np.abs(self.residuals.ewma.mean[reveal])).max()
            severity = max(severity, min(1.0, float(z) / (4.0 * self.residuals.ewma.limit)))
        if not notes:
            notes.append("recovering")
        return notes, float(np.clip(severity, 0.0, 1.0))

    def finish(self) -> list[Alert]:
        """Every alert of the run (open ones stay open: ``end`` None)."""
        return self.book.all()
