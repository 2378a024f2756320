"""Parsing of the human-friendly quantities a scenario uses (durations)."""

from __future__ import annotations

import re

__all__ = ["DURATION_UNITS", "parse_duration_s"]

DURATION_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d)\s*$")


def parse_duration_s(text: str | int) -> int:
    """Seconds in a duration such as ``"15min"``, ``"60s"``, ``"1h"`` or ``"365d"``.

    Raises
    ------
    ValueError
        With the accepted form when ``text`` is not a duration or not whole seconds.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            units = ", ".join(DURATION_UNITS)
            raise ValueError(
                f"expected a duration like '15min', '60s', '1h' or '365d' (units: {units}), "
                f"got {text!r}"
            )
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if seconds <= 0 or seconds != int(seconds):
        raise ValueError(f"expected a positive whole number of seconds, got {text!r}")
    return int(seconds)
