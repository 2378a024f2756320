"""What a device may tell the twin: size, shape and plausible values of its payloads.

Every payload received from a device gets exactly one :class:`Verdict`, and judging
never raises, whatever the bytes (deep nesting, huge numbers, invalid UTF-8): the
device bridge counts and logs each rejection per topic and falls back to the model
(quality 0) rather than apply it. A payload is rejected when

- it is larger than ``max_bytes`` (:data:`MAX_PAYLOAD_BYTES` by default): ``too_large``;
- it is not a number or a JSON object with a finite numeric ``value`` (and, if present,
  an ISO 8601 ``ts`` with a time zone and a ``seq`` that is a step index): ``malformed``;
- its value lies outside the plausible range of the quantity for that asset, derived
  from the asset's ratings by :func:`plausible_ranges`: ``implausible``.

A measurement of 1,000 times a plant's rating, or ``1e308``, would otherwise reach the
power flow and make it diverge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.mqtt.topics import MalformedPayload, Measurement, decode_measurement

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "RATING_MARGIN",
    "REASONS",
    "Verdict",
    "judge",
    "plausible_ranges",
]

#: Largest device payload accepted (bytes); a measurement needs well under 200.
MAX_PAYLOAD_BYTES = 4096
#: Measured powers and energies may exceed the asset's rating by this factor
#: (metering error, irradiance enhancement at cloud edges) before they are implausible.
RATING_MARGIN = 1.2
#: Why a payload can be rejected.
REASONS = ("too_large", "malformed", "implausible")

#: Ranges that do not depend on ratings: fractions and temperatures (degC) a
#: working or failing device can report (a thermal event may exceed the trip limit).
FIXED_RANGES: dict[str, tuple[float, float]] = {
    "soc": (0.0, 1.0),
    "soh": (0.0, 1.0),
    "power_avail": (0.0, 1.0),
    "tripped": (0.0, 1.0),
    "t_c": (-50.0, 150.0),
    "t_cell_c": (-50.0, 120.0),
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging one payload: a measurement, or why there is none."""

    measurement: Measurement | None
    reason: str | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """Whether the payload may be used."""
        return self.measurement is not None


def plausible_ranges(kind: str, unit: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Plausible ``(low, high)`` of each output of an asset, from its ratings.

    Parameters
    ----------
    kind : str
        ``pv``, ``battery`` or ``load``.
    unit : mapping
        The asset's parameters as in the scenario (``p_dc_kw``; ``p_max_kw`` and
        ``e_kwh``; ``p_kw`` and ``q_kvar`` of a load).

    Returns
    -------
    dict
        Quantity -> inclusive range. Powers get :data:`RATING_MARGIN` over the rating
        (sign convention: into the bus is positive).
    """
    m = RATING_MARGIN
    ranges = dict(FIXED_RANGES)
    if kind == "pv":
        p = float(unit["p_dc_kw"])
        ranges.update(p_kw=(-0.05 * p, m * p), p_avail_kw=(-0.05 * p, m * p))
    elif kind == "battery":
        p, e = float(unit["p_max_kw"]), float(unit["e_kwh"])
        ranges.update(p_kw=(-m * p, m * p), p_loss_kw=(0.0, m * p), e_kwh=(0.0, m * e))
    elif kind == "load":  # a load's p_kw is its peak; profiles may exceed it somewhat
        p = max(float(unit.get("p_kw") or 0.0), abs(float(unit.get("q_kvar") or 0.0)), 1.0)
        ranges.update(p_kw=(-2 * m * p, 2 * m * p), q_kvar=(-2 * m * p, 2 * m * p))
    return ranges


def judge(
    payload: bytes,
    valid: tuple[float, float] | None = None,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_seq: int | None = None,
) -> Verdict:
    """Judge one device payload; never raises.

    Parameters
    ----------
    payload : bytes
        As received.
    valid : tuple of float, optional
        Inclusive plausible range of the value (see :func:`plausible_ranges`).
    max_bytes : int
        Larger payloads are rejected unread.
    max_seq : int, optional
        Largest acceptable ``seq`` (the last step index); ``seq`` must be an integer
        from 0 to it when present.
    """
    if len(payload) > max_bytes:
        return Verdict(None, "too_large", f"{len(payload)} bytes, more than {max_bytes}")
    try:
        measurement = decode_measurement(payload)
        seq = measurement.extra.get("seq")
        if seq is not None and (
            isinstance(seq, bool)
            or not isinstance(seq, int)
            or seq < 0
            or (max_seq is not None and seq > max_seq)
        ):
            raise MalformedPayload(f"'seq' {seq!r} is not a step index 0..{max_seq}")
    except MalformedPayload as exc:
        return Verdict(None, "malformed", str(exc))
    except Exception as exc:  # noqa: BLE001 - a device must never crash the twin
        return Verdict(None, "malformed", f"unreadable ({type(exc).__name__})")
    if valid is not None and not valid[0] <= measurement.value <= valid[1]:
        return Verdict(
            None,
            "implausible",
            f"value {measurement.value:.6g} outside the plausible {valid[0]:.6g}..{valid[1]:.6g}",
        )
    return Verdict(measurement)
