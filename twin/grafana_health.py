"""InfluxQL of the diagnostics views: health indices, alerts, alert annotations.

The diagnostics engine writes two measurements (schema: the issue 14 design):

- ``health``: tags ``site``, ``run_id``, ``asset``, ``kind`` (asset kind), ``index``
  (``pv_performance``, ``soh_estimate`` ...); field ``value`` in [0, 1];
- ``alert``: tags ``site``, ``run_id``, ``asset``, ``alert_id``, ``kind`` (suspected fault
  kind); fields ``severity``, ``confidence``, ``open`` (1 while open, 0 once cleared),
  ``evidence`` (text).

InfluxQL has no way to read a point's time as a value, so an alert's start and end come
from the times of its points: its **first** point (the start) and its **last** point
(the end once ``open`` is 0, the latest report while it is open). The alerts table takes
both points of every alert in one query and Grafana's *Group by* transformation folds
them into one row per alert (:data:`ALERT_TABLE_TRANSFORMATIONS`). Annotations mark the
first point of every alert (opened) and its first point with ``open = 0`` (cleared).

Everything here is text and plain dicts, so the dashboard builder (:mod:`twin.grafana`)
and the alert rules (:mod:`twin.grafana_alerting`) share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twin.grafana_queries import RUN

__all__ = [
    "ALERT_ANNOTATIONS",
    "ALERT_TABLE_COLUMNS",
    "ALERT_TABLE_TRANSFORMATIONS",
    "HEALTH_ALERT_BELOW",
    "HEALTH_WARN_BELOW",
    "AnnotationSpec",
    "alert_table",
    "asset_variable",
    "health_now",
    "health_per_asset",
    "index_variable",
]

# Health index levels: below WARN the panels turn amber, below ALERT red and the
# provisioned alert rules fire (twin.grafana_alerting).
HEALTH_ALERT_BELOW = 0.5
HEALTH_WARN_BELOW = 0.7

_ASSETS = "asset =~ /^$asset$/"


def asset_variable() -> str:
    """Assets that have health indices or alerts in the chosen run (``$asset``)."""
    return f'SHOW TAG VALUES FROM /^(health|alert)$/ WITH KEY = "asset" WHERE {RUN}'


def index_variable() -> str:
    """Health index names of the chosen run (``$index``): a new index appears unedited."""
    return f'SHOW TAG VALUES FROM "health" WITH KEY = "index" WHERE {RUN}'


def health_per_asset() -> str:
    """Bucket mean of the index ``$index``, one series per asset (the repeated panel)."""
    return (
        f'SELECT mean("value") AS "value" FROM "health" WHERE {RUN} AND {_ASSETS} '
        'AND "index" =~ /^$index$/ AND $timeFilter GROUP BY time($__interval), '
        '"asset" fill(none)'
    )


def health_now() -> str:
    """The last value of every index of the chosen assets in the time range."""
    return (
        f'SELECT last("value") AS "value" FROM "health" WHERE {RUN} AND {_ASSETS} '
        'AND $timeFilter GROUP BY "asset", "index"'
    )


def _alerts(selector: str, extra: str = "", where: str = "") -> str:
    condition = f"{RUN} AND {_ASSETS} AND $timeFilter" + (f" AND {where}" if where else "")
    columns = ", ".join(['"alert_id"', '"asset"', '"kind"', *([extra] if extra else [])])
    return f'SELECT {selector}, {columns} FROM "alert" WHERE {condition} GROUP BY "alert_id"'


# Row of the alerts table: (column shown, field in the query, Group-by reducer).
ALERT_TABLE_COLUMNS = (
    ("alert", "alert_id", "groupby"),
    ("asset", "asset", "groupby"),
    ("kind", "kind", "groupby"),
    ("start", "Time", "min"),
    ("end (or last report while open)", "Time", "max"),
    ("status", "open", "firstNotNull"),
    ("severity", "severity", "firstNotNull"),
    ("confidence", "confidence", "firstNotNull"),
    ("evidence", "evidence", "firstNotNull"),
)


def alert_table() -> str:
    """Two rows per alert: its first point (start, evidence) and its last (state).

    The first point carries ``evidence`` (what opened the alert); the last one carries
    ``open``, ``severity`` and ``confidence`` (the latest state); each field is set on
    one of the two rows only, so the *Group by* reducer ``firstNotNull`` picks it
    whatever the row order.
    """
    first = _alerts('first("evidence") AS "evidence"')
    last = _alerts('last("open") AS "open"', '"severity", "confidence"')
    fields = '"alert_id", "asset", "kind", "open", "severity", "confidence", "evidence"'
    return f"SELECT {fields} FROM ({first}), ({last}) WHERE $timeFilter"


def _group_by_options() -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {}
    for _, name, reducer in ALERT_TABLE_COLUMNS:
        if reducer == "groupby":
            fields[name] = {"operation": "groupby", "aggregations": []}
        else:
            entry = fields.setdefault(name, {"operation": "aggregate", "aggregations": []})
            entry["aggregations"].append(reducer)
    return {"fields": fields}


def _reduced_name(name: str, reducer: str) -> str:
    return name if reducer == "groupby" else f"{name} ({reducer})"


# Group by alert, then name and order the columns (Grafana transformations, in order).
ALERT_TABLE_TRANSFORMATIONS: tuple[dict[str, Any], ...] = (
    {"id": "groupBy", "options": _group_by_options()},
    {
        "id": "organize",
        "options": {
            "excludeByName": {},
            "indexByName": {
                _reduced_name(n, r): i for i, (_, n, r) in enumerate(ALERT_TABLE_COLUMNS)
            },
            "renameByName": {_reduced_name(n, r): shown for shown, n, r in ALERT_TABLE_COLUMNS},
        },
    },
)


@dataclass(frozen=True)
class AnnotationSpec:
    """A Grafana InfluxDB (InfluxQL) annotation: its query and which columns say what.

    Grafana reads the answer's ``time`` column as the event time, ``title_column`` as
    its title, every column named in ``tags_column`` as tags and ``text_column`` as the
    text (public/app/plugins/datasource/influxdb/response_parser.ts).
    """

    name: str
    color: str
    query: str
    title_column: str
    tags_column: str
    text_column: str


def _episode_marks(where: str = "") -> str:
    inner = _alerts('first("evidence") AS "evidence"', where=where)
    return f'SELECT "kind", "asset", "alert_id", "evidence" FROM ({inner}) WHERE $timeFilter'


ALERT_ANNOTATIONS = (
    AnnotationSpec("Alert opened", "red", _episode_marks(), "kind", "asset,alert_id", "evidence"),
    AnnotationSpec(
        "Alert cleared", "green", _episode_marks('"open" = 0'), "kind", "asset,alert_id", "evidence"
    ),
)
