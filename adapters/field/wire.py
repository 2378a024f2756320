"""Payloads of the three wire formats (live15 design), encoded without a JSON library.

- ``topic``: one message per sensor, ``{"t": <epoch s>, "v": <value>, "u": "<unit>",
  "q": <quality>}`` on ``<prefix>/<element>/<channel>``.
- ``json``: one JSON array per gateway and interval on ``<prefix>/gw/<gateway>``, records
  ``{"n": "<element>/<channel>", "t", "v", "u", "q"}`` (sensor key = ``<prefix>/<n>``).
- ``senml``: an RFC 8428 pack per gateway and interval on ``<prefix>/gw/<gateway>/senml``;
  the first record carries ``"bn": "<prefix>/"`` and ``"bt"`` (the interval's time), every
  record ``n``, ``u``, ``v``, ``t`` (relative to ``bt``) and the extension ``q``.

Numbers are Python's shortest round-trip ``repr`` (valid JSON for finite values).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["json_batch", "senml_pack", "topic_payload"]

GOOD = 1


def _text(value: str) -> str:
    return json.dumps(value)


def topic_payload(t: float, v: float, unit: str, q: int = GOOD) -> bytes:
    """A per-sensor payload."""
    return f'{{"t":{t!r},"v":{v!r},"u":{_text(unit)},"q":{q}}}'.encode()


def json_batch(
    names: Sequence[str],
    t: Sequence[float],
    v: Sequence[float],
    units: Sequence[str],
    quality: Sequence[int] | None = None,
) -> bytes:
    """A gateway's JSON array (``n`` relative to the prefix; quality 1 unless given)."""
    q = [GOOD] * len(names) if quality is None else quality
    records = ",".join(
        f'{{"n":{_text(n)},"t":{tt!r},"v":{vv!r},"u":{_text(u)},"q":{qq}}}'
        for n, tt, vv, u, qq in zip(names, t, v, units, q, strict=True)
    )
    return f"[{records}]".encode()


def senml_pack(
    prefix: str,
    bt: float,
    names: Sequence[str],
    t: Sequence[float],
    v: Sequence[float],
    units: Sequence[str],
    quality: Sequence[int] | None = None,
) -> bytes:
    """A gateway's SenML pack: ``bn`` = ``<prefix>/``, ``bt``, record times relative."""
    q = [GOOD] * len(names) if quality is None else quality
    records = []
    for i, (n, tt, vv, u, qq) in enumerate(zip(names, t, v, units, q, strict=True)):
        head = f'"bn":{_text(prefix + "/")},"bt":{bt!r},' if i == 0 else ""
        records.append(
            f'{{{head}"n":{_text(n)},"u":{_text(u)},"v":{vv!r},"t":{tt - bt!r},"q":{qq}}}'
        )
    return f"[{','.join(records)}]".encode()
