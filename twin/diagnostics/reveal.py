"""Which injected faults the sensors can reveal at all: the scorer's fairness rule.

A fault only counts against a detector when it changed something a plant's sensors
report. The scorer (unlike the detectors) may read the run's true rows
(``source=twin``), so it decides this per event: :func:`revealable` compares the fault's
target during the fault's window with its fault-free expectation, by the rule of the
fault kind in :data:`NOT_REVEALABLE` (which says, per kind, when its events cannot be
seen and why). Events that are not revealable are listed, not scored: they count neither
as missed nor as detected, and an alert that matches one is no false alarm.

The thresholds are deliberately small (a few per cent of the asset's own range, about
the default sensor noise): a fault is excused only when its effect is within what the
sensors cannot tell from normal operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "NOT_REVEALABLE",
    "POWER_REL",
    "POWER_TOL_KW",
    "Reveal",
    "label_asset",
    "revealable",
]

#: Smallest power effect (kW) a power sensor can tell from noise.
POWER_TOL_KW = 0.2
#: ... and as a fraction of the asset's own peak power in the run.
POWER_REL = 0.05
#: Smallest SoC error (0..1) the SoC reading can show.
SOC_TOL = 0.02
#: Smallest extra temperature (K) a lost cooling must cause.
TEMP_TOL_K = 1.0
#: Smallest POC voltage change (pu) and frequency deviation (Hz).
VOLTAGE_TOL_PU = 0.01
FREQ_TOL_HZ = 0.02
#: A line that carried less than this (% of its rating) changes nothing when it opens.
LINE_TOL_PCT = 1.0
#: A sensor fault must push the error this many robust standard deviations of the
#: sensor's own error outside the window (noise, resolution).
SENSOR_K = 4.0
#: A dropout must swallow at least this many of the sensor's expected reports.
DROPOUT_REPORTS = 2.0

#: Kinds of twin rows that name no asset's own physics (an EMS setpoint of ``bess`` is
#: ``kind=controller``).
NOT_ASSET_KINDS = frozenset({"controller", "fault", "modifier", "tariff", "sensor"})

#: Per fault kind: when its events are NOT revealable by the sensors, and why. The
#: scorer applies the matching rule per event (:func:`revealable`) using the true rows.
NOT_REVEALABLE: dict[str, str] = {
    "pv_shading": (
        "no sun: a derate of a plant that produces (almost) nothing changes no reading; "
        f"not revealable when the true output stays within max({POWER_TOL_KW} kW, "
        f"{POWER_REL:.0%} of the plant's peak) of its available output in the window"
    ),
    "pv_string_outage": (
        "same physics as pv_shading (a derate, models/faults.py): not revealable at night "
        "or when the lost output stays within the power tolerance; diagnosis counts the two "
        "kinds as one group, no sensor can tell them apart"
    ),
    "inverter_trip": (
        "a converter that would not have delivered power anyway (a PV plant at night, a "
        "battery the EMS keeps idle) trips unseen: not revealable when the true output "
        "stays within the power tolerance of what it would have delivered (PV: available "
        "output; battery: the EMS setpoint)"
    ),
    "battery_cooling_failure": (
        "an idle battery makes no heat to remove: not revealable when the extra "
        "temperature due to the lost cooling ((t_c - t_rest) x severity, steady state) "
        f"stays below {TEMP_TOL_K} K in the window"
    ),
    "capacity_fade": (
        "a fade shows only through the SoC (the same kWh in a smaller capacity: a SoC jump, "
        "then faster swings); the BMS SoH does not include it: not revealable when the "
        f"true SoC never departs by {SOC_TOL} from stored energy / pre-fault capacity"
    ),
    "soc_misreport": (
        "a stuck or offset SoC reading that equals the true SoC within its own noise "
        f"({SENSOR_K:g} robust std of the reading's error outside the window) is invisible"
    ),
    "sensor_drift": (
        "a drift still within the sensor's own noise (error below "
        f"{SENSOR_K:g} robust std of its error outside the window) is invisible"
    ),
    "sensor_noise": (
        f"extra noise below {SENSOR_K:g} robust std of the sensor's normal error is invisible"
    ),
    "sensor_dropout": (
        f"a gap shorter than {DROPOUT_REPORTS:g} of the sensor's expected reports cannot be "
        "told from its ordinary dropouts and reporting interval"
    ),
    "sensor_stuck": (
        "a reading stuck while the true value does not move (PV at night, an idle "
        "battery's SoC) is correct: not revealable when the error stays within "
        f"{SENSOR_K:g} robust std of the sensor's normal error"
    ),
    "voltage_sag": (
        f"a sag below {VOLTAGE_TOL_PU} pu is within the voltage sensors' noise "
        "(the POC voltage scales every bus voltage: models/grid.py)"
    ),
    "voltage_spike": f"a spike below {VOLTAGE_TOL_PU} pu is within the voltage sensors' noise",
    "frequency_event": f"a deviation below {FREQ_TOL_HZ} Hz is within the frequency meter's noise",
    "line_outage": (
        f"a line that carried less than {LINE_TOL_PCT} % of its rating outside the window "
        "changes no flow or voltage when it opens"
    ),
    "grid_outage": (
        "islanding a site whose exchange is (nearly) zero changes nothing: not revealable "
        "when the unserved plus curtailed power stays within the power tolerance"
    ),
    "load_spike": (
        "a spike of a load that draws (almost) nothing: not revealable when the extra "
        "power |p| x severity / (1 + severity) stays within the power tolerance"
    ),
}


@dataclass(frozen=True)
class Reveal:
    """Whether one event is revealable, and the measured effect that decided it."""

    revealable: bool
    why: str


def label_asset(target: str) -> str:
    """The asset an alert names for a fault target (``grid`` -> ``poc``, ``x.q`` -> ``x``)."""
    if target in ("grid", "poc"):
        return "poc"
    return target.split(".", 1)[0]


class _Truth:
    """The rows of one run, indexed for quick look-ups of one series."""

    def __init__(self, results: pd.DataFrame) -> None:
        frame = results[["time", "source", "asset", "kind", "quantity", "value"]]
        self.groups = {
            tuple(str(v) for v in key): group.set_index("time")["value"].sort_index()
            for key, group in frame.groupby(
                ["source", "asset", "kind", "quantity"], observed=True, sort=False
            )
        }
        self.kind_of = {
            key[1]: key[2]
            for key in self.groups
            if key[0] == "twin" and key[2] not in NOT_ASSET_KINDS
        }

    def series(self, asset: str, quantity: str, source: str = "twin") -> pd.Series | None:
        kind = self.kind_of.get(asset)
        if kind is None:
            return None
        return self.groups.get((source, asset, kind, quantity))


def _window(series: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    return series[(series.index >= start) & (series.index < end)]


def _outside(series: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    return series[(series.index < start) | (series.index >= end)]


def _power_tol(series: pd.Series) -> float:
    peak = float(np.nanmax(np.abs(series.to_numpy()))) if len(series) else 0.0
    return max(POWER_TOL_KW, POWER_REL * peak)


def _decide(effect: float, tol: float, what: str) -> Reveal:
    effect = 0.0 if not np.isfinite(effect) else effect
    return Reveal(effect >= tol, f"{what} {effect:.3g} (revealable from {tol:.3g})")


Rule = Callable[[_Truth, dict[str, Any], pd.Timestamp, pd.Timestamp], Reveal | None]


def _pv_shortfall(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    asset = label_asset(label["target"])
    p, avail = truth.series(asset, "p_kw"), truth.series(asset, "p_avail_kw")
    if p is None or avail is None:
        return None
    lost = _window(avail - p, t0, t1)
    return _decide(float(lost.max()) if len(lost) else 0.0, _power_tol(avail), "lost output kW")


def _battery_shortfall(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    asset = label_asset(label["target"])
    p = truth.series(asset, "p_kw")
    setpoint = truth.groups.get(("twin", asset, "controller", "p_set_kw"))
    if p is None:
        return None
    if setpoint is None:  # no EMS: the battery idles, a trip changes nothing
        setpoint = pd.Series(0.0, index=p.index)
    gap = _window((setpoint - p).abs(), t0, t1)
    return _decide(float(gap.max()) if len(gap) else 0.0, _power_tol(setpoint), "undelivered kW")


def _inverter_trip(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    if truth.kind_of.get(label_asset(label["target"])) == "pv":
        return _pv_shortfall(truth, label, t0, t1)
    return _battery_shortfall(truth, label, t0, t1)


def _cooling(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    t_c = truth.series(label_asset(label["target"]), "t_c")
    if t_c is None:
        return None
    rise = _window(t_c, t0, t1) - float(t_c.min())
    excess = float(rise.max()) * min(float(label.get("severity", 1.0)), 0.95) if len(rise) else 0
    return _decide(excess, TEMP_TOL_K, "extra temperature K")


def _fade(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    asset = label_asset(label["target"])
    soc, energy = truth.series(asset, "soc"), truth.series(asset, "e_kwh")
    if soc is None or energy is None:
        return None
    before = (soc.index < t0) & (soc > 0.05)
    if not before.any():
        return None
    capacity = float((energy[before] / soc[before]).iloc[-1])
    error = _window((soc - energy / capacity).abs(), t0, t1 + pd.Timedelta(microseconds=1))
    return _decide(float(error.max()) if len(error) else 0.0, SOC_TOL, "SoC error")


def _sensor(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    asset, _, quantity = label["target"].partition(".")
    quantity = quantity or "soc"  # soc_misreport targets the battery
    true, measured = truth.series(asset, quantity), truth.series(asset, quantity, "measured")
    if true is None or measured is None:
        return None
    if label["kind"] == "sensor_dropout":
        out = _outside(measured, t0, t1)
        present = float(out.notna().mean()) if len(out) else 1.0
        expected = present * len(_window(measured, t0, t1))
        return _decide(expected, DROPOUT_REPORTS, "missed reports")
    error = (measured - true.reindex(measured.index)).dropna()
    normal = _outside(error, t0, t1)
    sigma = 1.4826 * float((normal - normal.median()).abs().median()) if len(normal) else 0.0
    scale = float(np.nanmax(np.abs(true.to_numpy()))) if len(true) else 0.0
    tol = max(SENSOR_K * sigma, 1e-3 * scale, 1e-9)
    inside = _window(error - (normal.median() if len(normal) else 0.0), t0, t1).abs()
    return _decide(float(inside.max()) if len(inside) else 0.0, tol, "reading error")


def _voltage(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    return _decide(abs(float(label.get("severity", 0.0))), VOLTAGE_TOL_PU, "POC voltage change pu")


def _frequency(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    f = truth.series("poc", "f_hz")
    if f is None:
        return None
    out = _outside(f, t0, t1)
    nominal = float(out.median()) if len(out) else 50.0
    dev = _window((f - nominal).abs(), t0, t1)
    return _decide(float(dev.max()) if len(dev) else 0.0, FREQ_TOL_HZ, "frequency deviation Hz")


def _line(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    loading = truth.series(label_asset(label["target"]), "loading_pct")
    if loading is None:
        return None
    out = _outside(loading, t0, t1)
    return _decide(float(out.median()) if len(out) else 0.0, LINE_TOL_PCT, "usual loading %")


def _islanding(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    unserved, curtailed = truth.series("poc", "unserved_kw"), truth.series("poc", "curtailed_kw")
    if unserved is None or curtailed is None:
        return None
    lost = _window(unserved.abs() + curtailed.abs(), t0, t1)
    p = truth.series("poc", "p_kw")
    tol = _power_tol(p) if p is not None else POWER_TOL_KW
    return _decide(float(lost.max()) if len(lost) else 0.0, tol, "islanded kW")


def _load_spike(truth: _Truth, label: dict[str, Any], t0: pd.Timestamp, t1: pd.Timestamp):
    p = truth.series(label_asset(label["target"]), "p_kw")
    if p is None:
        return None
    severity = float(label.get("severity", 0.0))
    extra = _window(p.abs(), t0, t1) * abs(severity) / max(1.0 + severity, 1e-9)
    return _decide(float(extra.max()) if len(extra) else 0.0, _power_tol(p), "extra load kW")


_RULES: dict[str, Rule] = {
    "pv_shading": _pv_shortfall,
    "pv_string_outage": _pv_shortfall,
    "inverter_trip": _inverter_trip,
    "battery_cooling_failure": _cooling,
    "capacity_fade": _fade,
    "soc_misreport": _sensor,
    "sensor_drift": _sensor,
    "sensor_noise": _sensor,
    "sensor_dropout": _sensor,
    "sensor_stuck": _sensor,
    "voltage_sag": _voltage,
    "voltage_spike": _voltage,
    "frequency_event": _frequency,
    "line_outage": _line,
    "grid_outage": _islanding,
    "load_spike": _load_spike,
}


def revealable(labels: list[dict[str, Any]], results: pd.DataFrame | None) -> list[Reveal]:
    """Per label, whether the sensors could reveal it (the rule of its kind).

    Parameters
    ----------
    labels : list of dict
        The faults of ``labels.json`` (``kind``, ``target``, ``start``, ``end``,
        ``severity``).
    results : pandas.DataFrame, optional
        The run's tidy rows (``source=twin`` true, ``source=measured``). Without them
        (or without the series a rule needs) every event counts as revealable.

    Returns
    -------
    list of Reveal
        One per label, in order.
    """
    if results is None or results.empty:
        return [Reveal(True, "no true rows to judge by: counted") for _ in labels]
    truth = _Truth(results)
    out = []
    for label in labels:
        t0, t1 = pd.Timestamp(label["start"]), pd.Timestamp(label["end"])
        rule = _RULES.get(label["kind"])
        decided = rule(truth, label, t0, t1) if rule is not None else None
        out.append(decided or Reveal(True, "the rows its rule needs are missing: counted"))
    return out
