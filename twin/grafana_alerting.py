"""Grafana alert rules on the health indices, as a file-provisioning document.

Grafana unified alerting reads ``provisioning/alerting/*.yaml`` at start (format
``apiVersion: 1``, ``groups:`` of rules; the fields are Grafana's ``AlertRuleGroupV1``,
``AlertRuleV1`` and ``QueryV1`` in pkg/services/provisioning/alerting/rules_types.go).
Each rule here is three steps on the twin datasource:

- ``A``: InfluxQL, the **last** reported value of every health index per (site, run,
  asset, asset kind, index) in the last :data:`WINDOW_S` seconds;
- ``B``: server-side expression *reduce* ``last`` (one number per series);
- ``C``: *threshold* ``B < level``: the rule's condition.

A series whose condition holds for ``for`` (15 min) fires, labelled with its tags and a
``severity`` label. No data (no run writing health indices now) is OK, not an alert.

Grafana evaluates rules against **now**: they see live and real-time runs (or a
hardware-in-the-loop plant), not a finished run of a past period written afterwards.
"""

from __future__ import annotations

from typing import Any

import yaml

from twin.grafana_health import HEALTH_ALERT_BELOW, HEALTH_WARN_BELOW

__all__ = ["FOLDER", "PENDING", "RULES", "WINDOW_S", "alert_rules", "alert_rules_yaml"]

FOLDER = "twin"  # the dashboards' folder (provisioning/dashboards/twin.yaml)
GROUP = "twin health indices"
INTERVAL = "1m"
PENDING = "15m"  # below the level for this long before the rule fires
WINDOW_S = 1800  # last report within 30 min: longer than a 15 min reporting step
EXPRESSIONS = "__expr__"  # Grafana's server-side expressions datasource
SERIES_TAGS = ("site", "run_id", "asset", "kind", "index")

# (uid, severity label, the index is below this level)
RULES = (
    ("twin-health-critical", "critical", HEALTH_ALERT_BELOW),
    ("twin-health-warning", "warning", HEALTH_WARN_BELOW),
)


def index_query() -> str:
    """InfluxQL of step A: the last value of every index series in the window."""
    tags = ", ".join(f'"{tag}"' for tag in SERIES_TAGS)
    return f'SELECT last("value") AS "value" FROM "health" WHERE $timeFilter GROUP BY {tags}'


def _rule(uid: str, severity: str, level: float, datasource_uid: str) -> dict[str, Any]:
    source = {
        "refId": "A",
        "relativeTimeRange": {"from": WINDOW_S, "to": 0},
        "datasourceUid": datasource_uid,
        "model": {
            "refId": "A",
            "query": index_query(),
            "rawQuery": True,
            "resultFormat": "time_series",
            "intervalMs": 60000,
            "maxDataPoints": 43200,
        },
    }
    reduce = {
        "refId": "B",
        "datasourceUid": EXPRESSIONS,
        "model": {
            "refId": "B",
            "type": "reduce",
            "expression": "A",
            "reducer": "last",
            "settings": {"mode": "dropNN"},
        },
    }
    threshold = {
        "refId": "C",
        "datasourceUid": EXPRESSIONS,
        "model": {
            "refId": "C",
            "type": "threshold",
            "expression": "B",
            "conditions": [{"evaluator": {"type": "lt", "params": [level]}}],
        },
    }
    return {
        "uid": uid,
        "title": f"Health index below {level} ({severity})",
        "condition": "C",
        "data": [source, reduce, threshold],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": PENDING,
        "labels": {"severity": severity, "source": "twin-diagnostics"},
        "annotations": {
            "summary": (
                "{{ $labels.asset }} ({{ $labels.kind }}): {{ $labels.index }} = "
                f"{{{{ $values.B.Value }}}} below {level} for {PENDING}"
            ),
            "description": (
                "Health index of the twin's diagnostics engine, site {{ $labels.site }}, "
                "run {{ $labels.run_id }}. Open the asset health dashboard (twin-health)."
            ),
        },
        "isPaused": False,
    }


def alert_rules(datasource_uid: str) -> dict[str, Any]:
    """The provisioning document: one group of :data:`RULES` on ``datasource_uid``."""
    rules = [_rule(uid, severity, level, datasource_uid) for uid, severity, level in RULES]
    group = {"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": INTERVAL, "rules": rules}
    return {"apiVersion": 1, "groups": [group]}


def alert_rules_yaml(datasource_uid: str) -> str:
    """:func:`alert_rules` as the YAML file Grafana provisions."""
    header = "# Grafana alert rules on the twin's health indices (written by `twin grafana`).\n"
    return header + yaml.safe_dump(alert_rules(datasource_uid), sort_keys=False, width=1000)
