"""What Grafana (11.x, InfluxDB datasource, InfluxQL) does to a query before InfluxDB sees it.

Sources: grafana/public/app/plugins/datasource/influxdb/datasource.ts (interpolateQueryExpr,
escapeRegex), pkg/tsdb/influxdb/influxql (renderTimeFilter: ``time >= {from}ms and time <=
{to}ms``; ``$__interval`` is the interval text such as ``6h``) and response_parser.ts
(variable values: the second column of each row, the first for SHOW FIELD KEYS or when a row
has one column; the variable's regex filters them).
"""

from __future__ import annotations

import re

import pandas as pd

_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def escape_regex(value: str) -> str:
    """Grafana's ``escapeRegex``: a backslash before ``\\ ^ $ * + ? . ( ) | [ ] { } /``."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_value(value: str | list[str], *, multi: bool) -> str:
    """A variable's value as interpolated into an InfluxQL regex (``=~ /^$var$/``)."""
    if isinstance(value, str):
        try:
            float(value)
            return value
        except ValueError:
            return escape_regex(value)
    if not multi:
        raise ValueError("a list value needs a multi-value variable")
    return "(" + "|".join(escape_regex(v) for v in value) + ")"


def time_filter(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """``$timeFilter`` for an absolute range."""
    return f"time >= {start.value // 10**6}ms and time <= {end.value // 10**6}ms"


def interpolate(
    query: str,
    variables: dict[str, str | list[str]],
    multi: dict[str, bool],
    *,
    interval: str = "1h",
    timefilter: str = "",
) -> str:
    """``query`` with ``$timeFilter``, ``$__interval`` and every template variable replaced."""
    query = query.replace("$timeFilter", timefilter).replace("$__interval", interval)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"unknown variable ${name} in {query}")
        return format_value(variables[name], multi=multi.get(name, False))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, query)


def variable_values(query: str, series: list[dict], regex: str = "") -> list[str]:
    """The options Grafana takes from a variable query's answer."""
    value_first = "show field keys" in query.lower()
    found: list[str] = []
    for s in series:
        for row in s.get("values", []):
            value = row[0] if value_first or len(row) < 2 else row[1]
            if str(value) not in found:
                found.append(str(value))
    if regex:
        pattern = re.compile(regex.strip("/"))
        found = [v for v in found if pattern.search(v)]
    return found
