"""Grafana dashboards over the twin's InfluxDB schema, generated from code.

Built with grafana-foundation-sdk (its typed builders are the schema the dashboards are
validated against). Every panel is raw InfluxQL, which InfluxDB 1.x, 2.x (with a DBRP
mapping) and 3.x all serve. Template variables come from the data:

- ``site`` and ``run_id``: ``SHOW TAG VALUES``; ``kind``: ``SHOW MEASUREMENTS``;
- ``asset``: ``SHOW TAG VALUES`` of the chosen kind; ``quantity``: ``SHOW FIELD KEYS``,

so a new plant, run or sensor appears without editing a dashboard. :func:`write_all`
writes the dashboards and the provisioning files (``twin grafana --out grafana/``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

__all__ = ["DATASOURCE_UID", "InfluxQLQuery", "dashboards", "write_all"]

DATASOURCE_UID = "twin-influxdb"
DATASOURCE = model.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
RUN = "site =~ /^$site$/ AND run_id =~ /^$run_id$/"


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target of Grafana's InfluxDB datasource."""

    def __init__(self, ref_id: str = "A", query: str = "", result_format: str = "time_series"):
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        return {
            "refId": self.ref_id,
            "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Parse a stored target; anything but raw InfluxQL is refused."""
        if not data.get("rawQuery") or not isinstance(data.get("query"), str):
            raise ValueError(f"target {data.get('refId')!r} is not raw InfluxQL")
        return cls(data["refId"], data["query"], data.get("resultFormat", "time_series"))


cogruntime.Runtime().register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier="influxdb", from_json_hook=InfluxQLQuery.from_json)
)


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of :class:`InfluxQLQuery`."""

    def __init__(self, query: str, ref_id: str = "A", result_format: str = "time_series"):
        self._query = InfluxQLQuery(ref_id, query, result_format)

    def build(self) -> InfluxQLQuery:
        """The query."""
        return self._query


def _series(
    measurement: str, field: str, where: str = "", by: str = "asset", agg: str = "mean"
) -> str:
    extra = f" AND {where}" if where else ""
    group = f', "{by}"' if by else ""
    return (
        f'SELECT {agg}("{field}") AS "{field}" FROM "{measurement}" WHERE {RUN}{extra} '
        f"AND $timeFilter GROUP BY time($__interval){group} fill(none)"
    )


def _variable(name: str, query: str, *, multi: bool, label: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(multi)
        .include_all(multi)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def _run_variables(board: db.Dashboard) -> db.Dashboard:
    return board.with_variable(
        _variable("site", 'SHOW TAG VALUES WITH KEY = "site"', multi=False, label="Site")
    ).with_variable(
        _variable(
            "run_id",
            'SHOW TAG VALUES WITH KEY = "run_id" WHERE site =~ /^$site$/',
            multi=False,
            label="Run",
        )
    )


@dataclass(frozen=True)
class PanelSpec:
    """One panel: a title, its InfluxQL queries, its unit and how it is drawn."""

    title: str
    queries: tuple[str, ...]
    unit: str = "none"
    style: str = "timeseries"  # timeseries | stat | table
    span: int = 12


def _panel(spec: PanelSpec) -> cogbuilder.Builder[model.Panel]:
    fmt = "table" if spec.style == "table" else "time_series"
    targets = [InfluxQL(q, chr(ord("A") + i), fmt) for i, q in enumerate(spec.queries)]
    kind = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}[spec.style]
    panel = kind().title(spec.title).datasource(DATASOURCE).unit(spec.unit).span(spec.span)
    panel = panel.height(4 if spec.style == "stat" else 8)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _board(
    uid: str, title: str, description: str, rows: dict[str, list[PanelSpec]]
) -> db.Dashboard:
    board = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["twin"])
        .editable()
        .time("2016-06-21T00:00:00Z", "2016-06-22T00:00:00Z")
        .timezone("utc")
        .refresh("30s")
    )
    board = _run_variables(board)
    for row, panels in rows.items():
        board = board.with_row(db.Row(row))
        for spec in panels:
            board = board.with_panel(_panel(spec))
    return board


def _kpi(name: str, unit: str) -> PanelSpec:
    return PanelSpec(
        name.replace("_", " "),
        (f'SELECT last("{name}") FROM "kpi" WHERE {RUN}',),
        unit,
        style="stat",
        span=4,
    )


def overview() -> db.Dashboard:
    """Generation, load, grid exchange, SoC, prices and the run's KPIs."""
    twin = "source = 'twin'"
    rows = {
        "KPIs": [
            _kpi("cost_eur", "currencyEUR"),
            _kpi("e_import_kwh", "kwatth"),
            _kpi("e_export_kwh", "kwatth"),
            _kpi("self_sufficiency", "percentunit"),
            _kpi("peak_import_kw", "kwatt"),
            _kpi("voltage_violations", "none"),
        ],
        "Power": [
            PanelSpec("PV generation", (_series("pv", "p_kw", twin),), "kwatt"),
            PanelSpec("Load", (_series("load", "p_kw", twin, by="", agg="sum"),), "kwatt"),
            PanelSpec("Grid exchange (import > 0)", (_series("grid", "p_kw", twin),), "kwatt"),
            PanelSpec(
                "Battery power (discharge > 0)", (_series("battery", "p_kw", twin),), "kwatt"
            ),
        ],
        "Storage and prices": [
            PanelSpec("Battery SoC", (_series("battery", "soc", twin),), "percentunit"),
            PanelSpec(
                "Prices",
                (
                    _series("tariff", "price_import_eur_kwh", twin, by=""),
                    _series("tariff", "price_export_eur_kwh", twin, by=""),
                ),
                "currencyEUR",
            ),
        ],
    }
    return _board(
        "twin-overview", "twin: overview", "Generation, load, exchange, storage, KPIs", rows
    )


def grid_view() -> db.Dashboard:
    """Bus voltages, line and transformer loading, losses."""
    rows = {
        "Voltages": [
            PanelSpec("Bus voltages", (_series("bus", "v_pu"),), "none", span=24),
            PanelSpec(
                "Voltage band",
                (
                    _series("bus", "v_pu", by="", agg="min"),
                    _series("bus", "v_pu", by="", agg="max"),
                ),
                "none",
            ),
            PanelSpec("Grid losses", (_series("grid", "losses_kw"),), "kwatt"),
        ],
        "Loading": [
            PanelSpec("Line loading", (_series("line", "loading_pct"),), "percent"),
            PanelSpec("Transformer loading", (_series("trafo", "trafo_loading_pct"),), "percent"),
        ],
    }
    return _board("twin-grid", "twin: grid", "Voltages, loading, losses", rows)


def asset_health() -> db.Dashboard:
    """Battery state of health and temperature, PV cell temperature, device residuals."""
    rows = {
        "Batteries": [
            PanelSpec(
                "State of health", (_series("battery", "soh", "source = 'twin'"),), "percentunit"
            ),
            PanelSpec(
                "Cell temperature", (_series("battery", "t_c", "source = 'twin'"),), "celsius"
            ),
        ],
        "PV": [
            PanelSpec("PV cell temperature", (_series("pv", "t_cell_c"),), "celsius"),
            PanelSpec(
                "PV available vs delivered",
                (_series("pv", "p_avail_kw", by=""), _series("pv", "p_kw", by="")),
                "kwatt",
            ),
        ],
        "Devices (twin vs measured)": [
            PanelSpec(
                "Residuals, measured - twin",
                (
                    "SELECT mean(*) FROM /^(battery|pv|load)$/ WHERE "
                    f"{RUN} AND source = 'residual' AND $timeFilter "
                    'GROUP BY time($__interval), "asset" fill(none)',
                ),
                "none",
            ),
            PanelSpec(
                "Device data quality (1 = measured, 0 = model fallback)",
                (
                    'SELECT min("quality") FROM /^(battery|pv|load)$/ WHERE '
                    f"{RUN} AND source = 'real' AND $timeFilter "
                    'GROUP BY time($__interval), "asset" fill(none)',
                ),
                "none",
            ),
        ],
    }
    return _board("twin-health", "twin: asset health", "Ageing, temperatures, residuals", rows)


def controller_view() -> db.Dashboard:
    """Setpoints against what the assets did, and runs (controllers) side by side."""
    rows = {
        "Setpoints vs actual": [
            PanelSpec("Battery setpoint", (_series("controller", "p_set_kw"),), "kwatt"),
            PanelSpec("Battery actual", (_series("battery", "p_kw", "source = 'twin'"),), "kwatt"),
        ],
        "Runs of this site (controllers compared)": [
            PanelSpec(
                "KPIs per run",
                (
                    'SELECT last("cost_scored_eur") AS "cost (EUR, storage valued)", '
                    'last("peak_import_kw") AS "peak import (kW)", '
                    'last("battery_efc") AS "cycles" FROM "kpi" WHERE site =~ /^$site$/ '
                    'GROUP BY "run_id", "controller"',
                ),
                "none",
                style="table",
                span=24,
            ),
        ],
    }
    return _board("twin-controller", "twin: controller", "Setpoints, actuals, runs compared", rows)


def sensor_explorer() -> db.Dashboard:
    """Any quantity of any asset: pick kind, asset(s) and quantity."""
    board = _run_variables(
        db.Dashboard("twin: sensor explorer")
        .uid("twin-sensors")
        .description("Every sensor the twin wrote, chosen by template variables")
        .tags(["twin"])
        .time("2016-06-21T00:00:00Z", "2016-06-22T00:00:00Z")
        .timezone("utc")
        .refresh("30s")
    )
    board = (
        board.with_variable(_variable("kind", "SHOW MEASUREMENTS", multi=False, label="Kind"))
        .with_variable(
            _variable(
                "asset",
                'SHOW TAG VALUES FROM /^$kind$/ WITH KEY = "asset" WHERE ' + RUN,
                multi=True,
                label="Asset",
            )
        )
        .with_variable(
            _variable("quantity", "SHOW FIELD KEYS FROM /^$kind$/", multi=False, label="Quantity")
        )
    )
    spec = PanelSpec(
        "$kind $quantity",
        (
            'SELECT mean("$quantity") FROM /^$kind$/ WHERE '
            f"{RUN} AND asset =~ /^$asset$/ AND $timeFilter "
            'GROUP BY time($__interval), "asset", "source" fill(none)',
        ),
        span=24,
    )
    return board.with_panel(_panel(spec))


def dashboards() -> dict[str, db.Dashboard]:
    """Every dashboard by file stem."""
    return {
        "overview": overview(),
        "grid": grid_view(),
        "asset_health": asset_health(),
        "controller": controller_view(),
        "sensor_explorer": sensor_explorer(),
    }


DATASOURCE_YAML = f"""\
# Grafana provisioning: the InfluxDB the twin writes to (compose.yaml's `influxdb`).
apiVersion: 1
datasources:
  - name: twin InfluxDB
    uid: {DATASOURCE_UID}
    type: influxdb
    access: proxy
    url: http://influxdb:8086
    jsonData:
      dbName: twin
      httpMode: POST
    isDefault: true
"""

DASHBOARDS_YAML = """\
# Grafana provisioning: load the generated dashboards (written by `twin grafana`).
apiVersion: 1
providers:
  - name: twin
    folder: twin
    type: file
    disableDeletion: false
    allowUiUpdates: true
    options:
      path: /var/lib/grafana/dashboards/twin
"""


def to_json(board: db.Dashboard) -> dict[str, Any]:
    """The dashboard model as Grafana's JSON."""
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def write_all(out_dir: str | Path) -> list[Path]:
    """Write ``dashboards/*.json`` and ``provisioning/`` under ``out_dir``."""
    out = Path(out_dir)
    written = []
    for stem, board in dashboards().items():
        path = out / "dashboards" / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(board), indent=2, sort_keys=True) + "\n")
        written.append(path)
    for rel, text in {
        "provisioning/datasources/influxdb.yaml": DATASOURCE_YAML,
        "provisioning/dashboards/twin.yaml": DASHBOARDS_YAML,
    }.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
