"""Naming the suspected fault kind of an alert: the diagnoser protocol and the physics rules.

A :class:`Diagnoser` takes an asset's kind and its feature vector
(:func:`twin.diagnostics.features.feature_names`) and returns a fault kind of
:data:`models.faults.FAULT_KINDS` (or ``"anomaly"``) with a confidence 0..1. The engine
calls it only when an alert opens and every few steps while it is open, so a learned
classifier costs nothing on healthy steps. :class:`RuleDiagnoser` is the default: the
physical signature of every kind the sensors reveal.

Ambiguities the physics cannot resolve (said here, not hidden):

- ``pv_shading`` and ``pv_string_outage`` both scale the plant's output by
  ``1 - severity``: the same signature; the rules report ``pv_shading``.
- a SoC misreport in ``stuck`` mode looks like a stuck SoC sensor (``sensor_stuck``).
- a capacity fade first shows as a SoC jump (the model keeps the stored energy and
  rescales the SoC), named ``soc_misreport`` unless the converter then delivers only
  part of its command (the SoC window ends sooner than the nameplate says) or a SoC
  swing has been measured and the capacity estimate is low.
- a drift of a PV or load power sensor and a physical change of the asset are told
  apart by the site's balance at the POC (:mod:`twin.diagnostics.balance`); without a
  POC power sensor a load's p and q moving together mean a spike, and a negative PV
  sensor drift looks like shading.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["AnomalyScorer", "Diagnoser", "RuleDiagnoser"]


class Diagnoser(Protocol):
    """Names the suspected fault kind of an asset from its features."""

    def diagnose(
        self, asset_kind: str, features: np.ndarray, names: list[str]
    ) -> tuple[str, float]:
        """Return ``(fault kind or "anomaly", confidence 0..1)``."""
        ...


class AnomalyScorer(Protocol):
    """Scores how unusual an asset's features are (0 normal .. 1 anomalous)."""

    def score(self, asset_kind: str, features: np.ndarray, names: list[str]) -> float:
        """Return the anomaly score of one feature vector."""
        ...


def _get(f: dict[str, float], name: str, default: float = np.nan) -> float:
    value = f.get(name, default)
    return default if value is None else float(value)


class RuleDiagnoser:
    """Physics signatures of the fault kinds (see the module docstring).

    Parameters
    ----------
    h : float
        CUSUM alarm level (a residual counts as shifted above it).
    ewma_limit : float
        EWMA alarm level.
    noise_ratio : float
        Residual spread that counts as excess noise.
    soh_drop : float
        Drop of the estimated SoH below the commissioning value that is a capacity fade.
    """

    def __init__(
        self,
        h: float = 10.0,
        ewma_limit: float = 2.1,
        noise_ratio: float = 4.0,
        soh_drop: float = 0.08,
    ) -> None:
        self.h, self.ewma_limit, self.noise_ratio, self.soh_drop = (
            h,
            ewma_limit,
            noise_ratio,
            soh_drop,
        )

    def shifted(self, f: dict[str, float], q: str) -> float:
        """Sign (+1/-1) of a shifted residual of quantity ``q``, 0 when not shifted."""
        cusum, ewma = _get(f, f"cusum:{q}", 0.0), _get(f, f"ewma:{q}", 0.0)
        if abs(cusum) > self.h or abs(ewma) > self.ewma_limit:
            return float(np.sign(cusum if abs(cusum) > self.h else ewma))
        return 0.0

    def _flags(self, f: dict[str, float], quantities: list[str]) -> tuple[str, float] | None:
        for q in quantities:
            if _get(f, f"stale:{q}", 0.0) >= 0.5:
                return "sensor_stuck", 0.9
            if _get(f, f"gap:{q}", 0.0) >= 0.5:
                return "sensor_dropout", 0.95
        return None

    def _noise(self, f: dict[str, float], quantities: list[str]) -> tuple[str, float] | None:
        for q in quantities:
            spread = _get(f, f"spread:{q}", 1.0)
            jump = _get(f, "soc_jump", 0.0) >= 0.5  # a SoC step, not noise
            if (
                spread > self.noise_ratio
                and abs(_get(f, f"ewma:{q}", 0.0)) < 0.5 * spread
                and not jump
            ):
                return "sensor_noise", 0.85
        return None

    def diagnose(
        self, asset_kind: str, features: np.ndarray, names: list[str]
    ) -> tuple[str, float]:
        """Return ``(fault kind or "anomaly", confidence)`` by the rules."""
        f = dict(zip(names, (float(v) for v in features), strict=True))
        quantities = sorted({n.split(":", 1)[1] for n in names if n.startswith("stale:")})
        found = self._flags(f, quantities) or self._strong(asset_kind, f)
        found = found or self._noise(f, quantities)
        if found is not None:
            return found
        rule = getattr(self, f"_{asset_kind}", None)
        found = rule(f) if rule is not None else None
        return found if found is not None else ("anomaly", 0.3)

    def _strong(self, asset_kind: str, f: dict[str, float]) -> tuple[str, float] | None:
        """Signatures no sensor fault mimics (checked before excess noise)."""
        if asset_kind == "battery":
            if self.shifted(f, "t_c") > 0 or _get(f, "thermal_stress", 1.0) < 0.5:
                return "battery_cooling_failure", 0.85
            if _get(f, "soh_drop", 0.0) > self.soh_drop:
                return "capacity_fade", 0.8
        if asset_kind == "pv" and _get(f, "converter_availability", 1.0) < 0.5:
            return "inverter_trip", 0.9
        if asset_kind == "grid" and _get(f, "outage", 0.0) >= 0.5:
            return "grid_outage", 0.9
        if asset_kind == "line" and _get(f, "dead", 0.0) >= 0.5:
            return "line_outage", 0.9
        return None

    def _pv(self, f: dict[str, float]) -> tuple[str, float] | None:
        shift = self.shifted(f, "p_kw")
        if shift > 0 or (shift < 0 and _get(f, "balance_share", 0.0) > 0.5):
            return "sensor_drift", 0.7  # more than the sun gives, or the POC disagrees
        perf = _get(f, "pv_performance")
        if _get(f, "converter_availability", 1.0) < 0.5 or perf <= 0.1:
            return "inverter_trip", 0.9
        if perf < 0.95 or self.shifted(f, "p_kw") < 0:
            return "pv_shading", 0.5  # or pv_string_outage: the same physics
        return None

    def _battery(self, f: dict[str, float]) -> tuple[str, float] | None:
        if self.shifted(f, "t_c") > 0 or _get(f, "thermal_stress", 1.0) < 0.5:
            return "battery_cooling_failure", 0.85
        if _get(f, "soh_drop", 0.0) > self.soh_drop:
            return "capacity_fade", 0.8
        if (
            _get(f, "soc_jump", 0.0) >= 0.5
            or self.shifted(f, "soc") != 0
            or _get(f, "soc_consistency", 1.0) < 0.5
        ):
            return "soc_misreport", 0.7
        available = _get(f, "converter_availability", 1.0)
        if available < 0.2:
            return "inverter_trip", 0.8
        if available < 0.9 or self.shifted(f, "p_kw") != 0:
            # part of the command delivered, cool: the SoC window ends sooner than the
            # nameplate capacity says
            return "capacity_fade", 0.75
        return None

    def _load(self, f: dict[str, float]) -> tuple[str, float] | None:
        p, q = self.shifted(f, "p_kw"), self.shifted(f, "q_kvar")
        share = _get(f, "balance_share")
        if p != 0 and np.isfinite(share):
            # the POC sees a real change of the load, not a sensor's
            return ("sensor_drift", 0.8) if share > 0.5 else ("load_spike", 0.8)
        if p != 0 and q == p:
            return "load_spike", 0.8  # the scale acts on p and q alike
        if p != 0 or q != 0:
            return "sensor_drift", 0.7  # one sensor alone
        if abs(_get(f, "ratio_p", 1.0) - 1.0) > 0.1:
            return "load_spike", 0.6
        return None

    def _grid(self, f: dict[str, float]) -> tuple[str, float] | None:
        if _get(f, "outage", 0.0) >= 0.5:
            return "grid_outage", 0.9
        if self.shifted(f, "f_hz") != 0:
            return "frequency_event", 0.95
        v = self.shifted(f, "v_pu")
        if v < 0:
            return "voltage_sag", 0.9
        if v > 0:
            return "voltage_spike", 0.9
        if _get(f, "voltage_band", 1.0) < 0.5:
            return ("voltage_sag" if _get(f, "z:v_pu", 0.0) < 0 else "voltage_spike"), 0.6
        return None

    def _line(self, f: dict[str, float]) -> tuple[str, float] | None:
        return ("line_outage", 0.9) if _get(f, "dead", 0.0) >= 0.5 else None
