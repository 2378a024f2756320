"""Grafana dashboards over the twin's InfluxDB schema, generated from code.

Built with grafana-foundation-sdk (its typed builders are the schema the dashboards are
validated against). Every panel is raw InfluxQL, which InfluxDB 1.x, 2.x (with a DBRP
mapping) and 3.x all serve. Template variables come from the data:

- ``site`` and ``run_id``: ``SHOW TAG VALUES``; ``kind``: ``SHOW MEASUREMENTS``;
- ``asset``: ``SHOW TAG VALUES`` of the chosen kind; ``quantity``: ``SHOW FIELD KEYS``,

so a new plant, run or sensor appears without editing a dashboard. How a panel aggregates
(per asset, site total, extreme) and its unit come from :mod:`twin.grafana_queries`.

Time range: the dashboards open on the last 24 hours (live and real-time runs). A run of a
past period (a 2016 scenario) is opened from the "Runs of this site" table (each run id
links to the overview with that run selected and the time range set to the run's span,
read from the run's ``kpi`` point), or from the link ``twin grafana --link RUN_DIR``
prints. :func:`write_all` writes the dashboards and the provisioning files
(``twin grafana --out grafana/``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Self

from grafana_foundation_sdk.builders import common, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from twin.grafana_alerting import PENDING
from twin.grafana_health import (
    ALERT_ANNOTATIONS,
    HEALTH_ALERT_BELOW,
    HEALTH_WARN_BELOW,
    AnnotationSpec,
    alert_table,
    asset_variable,
    health_now,
    health_per_asset,
    index_variable,
)
from twin.grafana_health import ALERT_TABLE_TRANSFORMATIONS as ALERT_TRANSFORMATIONS
from twin.grafana_queries import (
    RUN,
    RUN_END,
    RUN_START,
    extreme,
    per_asset,
    residuals,
    total,
    unit_of,
)

__all__ = ["DATASOURCE_UID", "InfluxAnnotation", "InfluxQLQuery", "dashboards", "to_json"]

DATASOURCE_UID = "twin-influxdb"
DATASOURCE = model.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
DEFAULT_FROM, DEFAULT_TO = "now-24h", "now"
OVERVIEW_UID = "twin-overview"


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


class InfluxAnnotation(model.AnnotationQuery):
    """An InfluxQL annotation query as Grafana's InfluxDB datasource stores it.

    The SDK's model knows only the built-in Grafana annotations; an InfluxDB one also has
    ``query`` and the columns that give each event its title, tags and text.
    """

    _KEYS = (
        ("query", "query"),
        ("titleColumn", "title_column"),
        ("tagsColumn", "tags_column"),
        ("textColumn", "text_column"),
    )

    def __init__(self, spec: AnnotationSpec | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.query = spec.query if spec else ""
        self.title_column = spec.title_column if spec else ""
        self.tags_column = spec.tags_column if spec else ""
        self.text_column = spec.text_column if spec else ""

    def to_json(self) -> dict[str, object]:
        """The annotation as Grafana stores it."""
        return {**super().to_json(), **{key: getattr(self, attr) for key, attr in self._KEYS}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Parse a stored InfluxDB annotation; anything but InfluxQL is refused."""
        if not isinstance(data.get("query"), str):
            raise ValueError(f"annotation {data.get('name')!r} has no InfluxQL query")
        base = model.AnnotationQuery.from_json(data)
        spec = AnnotationSpec(
            base.name,
            base.icon_color,
            data["query"],
            data.get("titleColumn", ""),
            data.get("tagsColumn", ""),
            data.get("textColumn", ""),
        )
        return cls(spec, **vars(base))


class _Annotation(cogbuilder.Builder[model.AnnotationQuery]):
    def __init__(self, spec: AnnotationSpec) -> None:
        self._annotation = InfluxAnnotation(
            spec, name=spec.name, datasource=DATASOURCE, enable=True, icon_color=spec.color
        )

    def build(self) -> InfluxAnnotation:
        return self._annotation


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of :class:`InfluxQLQuery`."""

    def __init__(self, query: str, ref_id: str = "A", result_format: str = "time_series"):
        self._query = InfluxQLQuery(ref_id, query, result_format)

    def build(self) -> InfluxQLQuery:
        """The query."""
        return self._query


def _variable(
    name: str, query: str, *, multi: bool, label: str, regex: str = ""
) -> db.QueryVariable:
    variable = (
        db.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(multi)
        .include_all(multi)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    return variable.regex(regex) if regex else variable


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
    """One panel: a title, its InfluxQL queries, its unit and how it is drawn.

    ``overrides`` maps a field name to Grafana field-config properties (``{"unit": ...}``,
    ``{"links": [...]}``); ``description`` is the panel's help text. ``repeat`` names a
    template variable: Grafana draws one copy of the panel per chosen value.
    ``transformations`` are Grafana transformations (``{"id": ..., "options": ...}``)
    applied in order; ``steps`` are colour thresholds ``(from value, colour)`` drawn as
    dashed lines, ``limits`` the axis (min, max); ``display`` names each series (Grafana's
    display name, e.g. ``${__field.labels.asset}``).
    """

    title: str
    queries: tuple[str, ...]
    unit: str = "none"
    style: str = "timeseries"  # timeseries | stat | table
    span: int = 12
    description: str = ""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeat: str = ""
    transformations: tuple[dict[str, Any], ...] = ()
    steps: tuple[tuple[float | None, str], ...] = ()
    limits: tuple[float, float] | None = None
    display: str = ""


def _decorate(panel: Any, spec: PanelSpec) -> Any:
    """Repeat, transformations, thresholds and axis limits of ``spec``."""
    if spec.repeat:
        panel = panel.repeat(spec.repeat).repeat_direction("h")
    for transformation in spec.transformations:
        panel = panel.with_transformation(
            model.DataTransformerConfig(
                id_val=transformation["id"], options=transformation["options"]
            )
        )
    if spec.limits:
        panel = panel.min(spec.limits[0]).max(spec.limits[1])
    if spec.display:
        panel = panel.display_name(spec.display)
    if spec.steps:
        steps = [model.Threshold(value=value, color=color) for value, color in spec.steps]
        panel = panel.thresholds(
            db.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)
        )
        if isinstance(panel, timeseries.Panel):  # the SDK spells the enum "Treshold"
            dashed = common_model.GraphTresholdsStyleMode.DASHED
            panel = panel.thresholds_style(common.GraphThresholdsStyleConfig().mode(dashed))
    return panel


def _panel(spec: PanelSpec) -> cogbuilder.Builder[model.Panel]:
    fmt = "table" if spec.style == "table" else "time_series"
    targets = [InfluxQL(q, chr(ord("A") + i), fmt) for i, q in enumerate(spec.queries)]
    kind = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}[spec.style]
    panel = kind().title(spec.title).datasource(DATASOURCE).unit(spec.unit).span(spec.span)
    panel = panel.height(4 if spec.style == "stat" else 8)
    if spec.description:
        panel = panel.description(spec.description)
    for name, properties in spec.overrides.items():
        panel = panel.override_by_name(
            name, [model.DynamicConfigValue(id_val=k, value=v) for k, v in properties.items()]
        )
    for target in targets:
        panel = panel.with_target(target)
    return _decorate(panel, spec)


def _links() -> list[db.DashboardLink]:
    """Every twin dashboard, keeping the time range and the chosen site and run."""
    return [
        db.DashboardLink("twin dashboards")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags(["twin"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]


def _dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    board = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["twin"])
        .editable()
        .time(DEFAULT_FROM, DEFAULT_TO)
        .timezone("utc")
        .refresh("30s")
        .links(_links())
    )
    return _run_variables(board)


def _board(
    uid: str,
    title: str,
    description: str,
    rows: dict[str, list[PanelSpec]],
    variables: list[db.QueryVariable] | None = None,
) -> db.Dashboard:
    board = _dashboard(uid, title, description)
    for variable in variables or []:
        board = board.with_variable(variable)
    for row, panels in rows.items():
        board = board.with_row(db.Row(row))
        for spec in panels:
            board = board.with_panel(_panel(spec))
    return board


def _quantity(title: str, query: str, quantity: str, **kw: Any) -> PanelSpec:
    """A panel of one quantity, in the unit its name carries."""
    return PanelSpec(title, (query,), unit_of(quantity), **kw)


def _kpi(name: str, title: str) -> PanelSpec:
    return PanelSpec(
        title,
        (f'SELECT last("{name}") AS "{name}" FROM "kpi" WHERE {RUN}',),
        unit_of(name),
        style="stat",
        span=4,
        description=f"KPI {name} of the chosen run (its kpi point; any time range).",
    )


# The run's span is written with its KPIs (twin.run): it opens a past run at its time range.
_RUN_LINK = (
    f"/d/{OVERVIEW_UID}/twin-overview?var-site=${{site}}&var-run_id=${{__data.fields.run_id}}"
    f"&from=${{__data.fields.{RUN_START}}}&to=${{__data.fields.{RUN_END}}}"
)
_EPOCH_MS = {"unit": "none", "decimals": 0}


def runs_table() -> PanelSpec:
    """Every run of the chosen site with its span and KPIs; a run id opens that run."""
    columns = ", ".join(
        f'last("{name}") AS "{alias}"'
        for name, alias in (
            ("cost_scored_eur", "cost (EUR, storage valued)"),
            ("peak_import_kw", "peak import (kW)"),
            ("battery_efc", "cycles"),
            (RUN_START, RUN_START),
            (RUN_END, RUN_END),
        )
    )
    return PanelSpec(
        "Runs of this site (click a run id to open it at its time range)",
        (f'SELECT {columns} FROM "kpi" WHERE site =~ /^$site$/ GROUP BY "run_id", "controller"',),
        "none",
        style="table",
        span=24,
        description="Every run written to InfluxDB for this site, whatever the time range.",
        overrides={
            "run_id": {"links": [{"title": "Open this run", "url": _RUN_LINK}]},
            RUN_START: _EPOCH_MS,
            RUN_END: _EPOCH_MS,
            "Time": {"custom.hidden": True},
        },
    )


def overview() -> db.Dashboard:
    """Runs, KPIs, generation, load, grid exchange, SoC and prices."""
    twin = "source = 'twin'"
    rows = {
        "Runs": [runs_table()],
        "KPIs": [
            _kpi("cost_eur", "Cost"),
            _kpi("e_import_kwh", "Energy imported"),
            _kpi("e_export_kwh", "Energy exported"),
            _kpi("self_sufficiency", "Self-sufficiency"),
            _kpi("peak_import_kw", "Peak import"),
            _kpi("voltage_violations", "Voltage violations (steps)"),
        ],
        "Power": [
            _quantity("PV generation (per plant)", per_asset("pv", "p_kw", twin), "p_kw"),
            _quantity(
                "Load, site total (consumption < 0)",
                total("load", "p_kw", twin, alias="load p_kw"),
                "p_kw",
                description="Sum over loads of each load's mean power in the interval.",
            ),
            _quantity("Grid exchange (import > 0)", per_asset("grid", "p_kw", twin), "p_kw"),
            _quantity("Battery power (discharge > 0)", per_asset("battery", "p_kw", twin), "p_kw"),
        ],
        "Storage and prices": [
            _quantity("Battery SoC", per_asset("battery", "soc", twin), "soc"),
            PanelSpec(
                "Prices",
                (
                    per_asset("tariff", "price_import_eur_kwh", twin),
                    per_asset("tariff", "price_export_eur_kwh", twin),
                ),
                unit_of("price_import_eur_kwh"),
            ),
        ],
    }
    return _board(
        OVERVIEW_UID, "twin: overview", "Runs, KPIs, generation, load, exchange, storage", rows
    )


def grid_view() -> db.Dashboard:
    """Bus voltages, line and transformer loading, losses (the twin's values)."""
    twin = "source = 'twin'"
    rows = {
        "Voltages": [
            _quantity("Bus voltages", per_asset("bus", "v_pu", twin), "v_pu", span=24),
            PanelSpec(
                "Voltage band (lowest and highest bus)",
                (extreme("bus", "v_pu", "min", twin), extreme("bus", "v_pu", "max", twin)),
                unit_of("v_pu"),
            ),
            _quantity("Grid losses", per_asset("grid", "losses_kw", twin), "losses_kw"),
        ],
        "Loading": [
            _quantity("Line loading", per_asset("line", "loading_pct", twin), "loading_pct"),
            _quantity(
                "Transformer loading",
                per_asset("trafo", "trafo_loading_pct", twin),
                "trafo_loading_pct",
            ),
        ],
    }
    return _board("twin-grid", "twin: grid", "Voltages, loading, losses", rows)


# Residual panels, one per unit: (title, InfluxQL field regex, a quantity of that unit).
RESIDUAL_PANELS = (
    ("Residual power, measured - twin", "_kw$", "p_kw"),
    ("Residual SoC / SoH, measured - twin", "^so[ch]$", "soc"),
    ("Residual temperature, measured - twin", "_c$", "t_c"),
)


HEALTH_STEPS = ((None, "red"), (HEALTH_ALERT_BELOW, "orange"), (HEALTH_WARN_BELOW, "green"))
_STATUS = {"0": {"text": "cleared", "color": "green"}, "1": {"text": "open", "color": "red"}}
_TIME = {"unit": "dateTimeAsIso"}


def health_panels() -> list[PanelSpec]:
    """Health indices (one panel per index, a series per asset) and the alerts table."""
    return [
        PanelSpec(
            "Health now (last value of each index in the time range)",
            (health_now(),),
            "percentunit",
            style="stat",
            span=24,
            steps=HEALTH_STEPS,
            display="${__field.labels.asset} ${__field.labels.index}",
            description="Red below the critical level, amber below the warning level.",
        ),
        PanelSpec(
            "Health index: $index",
            (health_per_asset(),),
            "percentunit",
            span=8,
            repeat="index",
            limits=(0.0, 1.0),
            steps=HEALTH_STEPS,
            description=(
                "Mean of the index over each interval, per asset (1 = healthy). Below "
                f"{HEALTH_ALERT_BELOW} for {PENDING} the provisioned alert rule fires."
            ),
        ),
        PanelSpec(
            "Diagnostics alerts (open and cleared)",
            (alert_table(),),
            style="table",
            span=24,
            transformations=ALERT_TRANSFORMATIONS,
            description=(
                "One row per alert of the chosen assets seen in the time range: its first "
                "point is the start, its last point the end once cleared."
            ),
            overrides={
                "status": {"mappings": [{"type": "value", "options": _STATUS}]},
                "start": _TIME,
                "end (or last report while open)": _TIME,
            },
        ),
    ]


def asset_health() -> db.Dashboard:
    """Health indices and alerts; battery ageing and temperatures, device residuals."""
    twin = "source = 'twin'"
    rows = {
        "Health indices and alerts (diagnostics)": health_panels(),
        "Batteries": [
            _quantity("State of health", per_asset("battery", "soh", twin), "soh"),
            _quantity("Cell temperature", per_asset("battery", "t_c", twin), "t_c"),
        ],
        "PV": [
            _quantity("PV cell temperature", per_asset("pv", "t_cell_c", twin), "t_cell_c"),
            PanelSpec(
                "PV available vs delivered, all plants",
                (
                    total("pv", "p_avail_kw", twin, alias="available p_kw"),
                    total("pv", "p_kw", twin, alias="delivered p_kw"),
                ),
                unit_of("p_kw"),
                description="Sums over plants of each plant's mean power in the interval.",
            ),
        ],
        "Devices (twin vs measured)": [
            *(
                _quantity(title, residuals(pattern), quantity, span=8)
                for title, pattern, quantity in RESIDUAL_PANELS
            ),
            PanelSpec(
                "Device data quality (1 = measured, 0 = model fallback)",
                (
                    'SELECT min("quality") AS "quality" FROM /^(battery|pv|load|ev)$/ WHERE '
                    f"{RUN} AND source = 'real' AND $timeFilter "
                    'GROUP BY time($__interval), "asset" fill(none)',
                ),
                "none",
                span=24,
                description="Lowest quality flag in the interval: any fallback shows as 0.",
            ),
        ],
    }
    board = _board(
        "twin-health",
        "twin: asset health",
        "Health indices, diagnostics alerts, ageing, temperatures, residuals",
        rows,
        variables=[
            _variable("asset", asset_variable(), multi=True, label="Asset"),
            _variable("index", index_variable(), multi=True, label="Health index"),
        ],
    )
    for spec in ALERT_ANNOTATIONS:
        board = board.annotation(_Annotation(spec))
    return board


def controller_view() -> db.Dashboard:
    """Setpoints against what the assets did, and runs (controllers) side by side."""
    rows = {
        "Setpoints vs actual": [
            _quantity("Battery setpoint", per_asset("controller", "p_set_kw"), "p_set_kw"),
            _quantity("Battery actual", per_asset("battery", "p_kw", "source = 'twin'"), "p_kw"),
        ],
        "Runs of this site (controllers compared)": [runs_table()],
    }
    return _board("twin-controller", "twin: controller", "Setpoints, actuals, runs compared", rows)


def sensor_explorer() -> db.Dashboard:
    """Any quantity of any asset: pick kind, asset(s) and quantity."""
    board = _dashboard(
        "twin-sensors",
        "twin: sensor explorer",
        "Every sensor the twin wrote, chosen by template variables",
    )
    board = (
        board.with_variable(
            # Every measurement but the run-level ``kpi`` point (it has no assets).
            _variable("kind", "SHOW MEASUREMENTS", multi=False, label="Kind", regex="/^(?!kpi$)/")
        )
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
        "$kind $quantity (mean per interval)",
        (
            'SELECT mean("$quantity") AS "$quantity" FROM /^$kind$/ WHERE '
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


def to_json(board: db.Dashboard) -> dict[str, Any]:
    """The dashboard model as Grafana's JSON."""
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))
