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


# ---- tables, transformations, annotations, alert rules ------------------------------
# Sources: grafana/packages/grafana-data/src/transformations/transformers/groupBy.ts and
# organize.ts (fields named "<field> (<reducer>)", renamed and ordered by name),
# fieldReducer.ts (firstNotNull skips null and NaN), the InfluxDB datasource's
# response_parser.ts (transformAnnotationResponse) and pkg/expr (reduce, threshold).


def table_rows(series: list[dict]) -> list[dict]:
    """A table-format answer as Grafana's rows: ``Time``, the series tags, the columns."""
    rows = []
    for s in series:
        tags = s.get("tags") or {}
        for values in s["values"]:
            row = dict(zip(s["columns"], values, strict=True))
            rows.append({"Time": pd.Timestamp(row.pop("time")), **tags, **row})
    return rows


def _present(values: list) -> list:
    return [v for v in values if v is not None and v == v]


REDUCERS = {
    "min": lambda v: min(_present(v), default=None),
    "max": lambda v: max(_present(v), default=None),
    "firstNotNull": lambda v: (_present(v) or [None])[0],
    "lastNotNull": lambda v: (_present(v) or [None])[-1],
}


def group_by(rows: list[dict], options: dict) -> list[dict]:
    """Grafana's *Group by*: one row per group key, ``<field> (<reducer>)`` per calculation."""
    fields = options["fields"]
    keys = [name for name, f in fields.items() if f["operation"] == "groupby"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        new = dict(zip(keys, key, strict=True))
        for name, f in fields.items():
            if f["operation"] == "aggregate":
                for reducer in f["aggregations"]:
                    new[f"{name} ({reducer})"] = REDUCERS[reducer]([m.get(name) for m in members])
        out.append(new)
    return out


def organize(rows: list[dict], options: dict) -> list[dict]:
    """Grafana's *Organize fields*: drop excluded fields, order by index, rename."""
    order = options.get("indexByName", {})
    rename = options.get("renameByName", {})
    excluded = {k for k, v in options.get("excludeByName", {}).items() if v}
    out = []
    for row in rows:
        names = sorted(
            (n for n in row if n not in excluded), key=lambda n: order.get(n, len(order))
        )
        out.append({rename.get(n, n): row[n] for n in names})
    return out


def transform(rows: list[dict], transformations: list[dict]) -> list[dict]:
    """Apply a panel's transformations in order."""
    steps = {"groupBy": group_by, "organize": organize}
    for t in transformations:
        rows = steps[t["id"]](rows, t["options"])
    return rows


def annotation_events(series: list[dict], annotation: dict) -> list[dict]:
    """The events Grafana draws from an InfluxQL annotation's answer."""
    tags = [t for t in annotation.get("tagsColumn", "").replace(" ", "").split(",") if t]
    text = annotation.get("textColumn", "")
    events = []
    for row in table_rows(series):
        event: dict = {"time": row.pop("Time"), "title": None, "tags": [], "text": None}
        if any(v is None for v in row.values()):
            continue  # rows with a missing value are dropped
        for column, value in row.items():
            if column == annotation.get("titleColumn"):
                event["title"] = value
            elif any(t in column for t in tags):
                event["tags"] += str(value).split(",")
            elif text and text in column:
                event["text"] = value
            elif event["title"] is None:
                event["title"] = value
        events.append(event)
    return events


THRESHOLDS = {"lt": lambda v, p: v < p[0], "gt": lambda v, p: v > p[0]}


def evaluate_rule(rule: dict, answers: dict[str, list[dict]]) -> dict[tuple, tuple[float, bool]]:
    """Server-side expressions of a rule on its queries' answers, per series labels.

    ``answers`` maps a datasource query's refId to its InfluxDB series. A *reduce* with
    ``dropNN`` drops null and NaN values (a series left empty gives no number); a
    *threshold* compares the number. Returns {labels: (number, condition holds)}.
    """
    results: dict[str, dict] = {}
    for step in rule["data"]:
        ref, model = step["refId"], step["model"]
        if step["datasourceUid"] != "__expr__":
            results[ref] = {}
            for s in answers[ref]:
                labels = tuple(sorted((s.get("tags") or {}).items()))
                results[ref][labels] = [row[-1] for row in s["values"]]  # time, value
        elif model["type"] == "reduce":
            assert model["reducer"] == "last" and model["settings"]["mode"] == "dropNN"
            source = results[model["expression"]]
            results[ref] = {k: _present(v)[-1] for k, v in source.items() if _present(v)}
        elif model["type"] == "threshold":
            (condition,) = model["conditions"]
            evaluator = condition["evaluator"]
            test = THRESHOLDS[evaluator["type"]]
            source = results[model["expression"]]
            results[ref] = {k: (v, test(v, evaluator["params"])) for k, v in source.items()}
        else:
            raise ValueError(f"expression type {model['type']!r} not emulated")
    return results[rule["condition"]]
