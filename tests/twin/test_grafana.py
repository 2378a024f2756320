"""Every panel and variable query of every dashboard, run against a real InfluxDB 1.6.

A known run (the HIL scenario with a second PV plant) is written by its ``outputs.influx``
sink; a decoy run of the same site (every value x10 + 1) is written beside it. Each query
goes through the substitution Grafana does (tests/twin/grafana_emulation.py) and its values
are compared with the same numbers computed from the run's results.parquet with pandas.
"""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adapters.influx.load import write_kpis, write_results
from adapters.influx.writer import InfluxConfig
from tests.twin.grafana_emulation import interpolate, time_filter, variable_values
from twin.cli import app
from twin.grafana import (
    InfluxAnnotation,
    InfluxQLQuery,
    dashboards,
    health_panels,
    runs_table,
    to_json,
)
from twin.grafana_provision import DatasourceOptions, GrafanaConfigError, run_link, write_all
from twin.grafana_queries import unit_of
from twin.run import run_scenario
from twin.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DB = "dash"
SITE = "hil_battery"
DECOY = "hil_battery-decoy"
START = pd.Timestamp("2016-06-21T04:00:00Z")  # 00:00 New York
END = START + pd.Timedelta("1d")


@pytest.fixture(scope="module")
def written_run(mosquitto, influxdb, tmp_path_factory):
    """The HIL scenario plus a second PV plant, written by its InfluxDB sink; and a decoy."""
    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["broker"] = mosquitto.url
    raw["assets"]["pv"].append(
        {"name": "pv_barn", "bus": 5, "p_dc_kw": 30, "tilt_deg": 20, "azimuth_deg": 160}
    )
    raw["outputs"] = {"influx": {"url": influxdb.url, "db": DB, "create_database": True}}
    result = run_scenario(validate_scenario(raw), tmp_path_factory.mktemp("dash") / "run")
    results = pd.read_parquet(result.out_dir / "results.parquet")
    decoy = results.assign(value=results["value"] * 10 + 1)
    decoy["run_id"] = decoy["run_id"].cat.rename_categories([DECOY])
    config = InfluxConfig(url=influxdb.url, db=DB)
    assert not write_results(decoy, config).errors
    kpis = {k: v * 10 + 1 for k, v in result.kpis.items() if isinstance(v, float | int)}
    tags = {"site": SITE, "run_id": DECOY, "controller": "rule"}
    write_kpis(kpis, config, tags, int(END.timestamp()))
    return result, results


def _answer(influxdb, query: str) -> list[dict]:
    answer = influxdb.query(query, db=DB)
    result = answer["results"][0]
    assert "error" not in result, f"{query}: {result.get('error')}"
    return result.get("series", [])


def _variables(data: dict) -> tuple[dict[str, dict], dict[str, bool]]:
    found = {v["name"]: v for v in data["templating"]["list"]}
    return found, {name: bool(v.get("multi")) for name, v in found.items()}


# ---- expected values, from results.parquet with pandas --------------------------------


def _rows(results, kind, quantity, source, window):
    rows = results[(results["kind"] == kind) & (results["quantity"] == quantity)]
    if source is not None:
        rows = rows[rows["source"] == source]
    start, end = window
    return rows[(rows["time"] >= start) & (rows["time"] <= end)]


def _buckets(frame: pd.DataFrame, interval: str, how: str) -> pd.DataFrame:
    """Per-column bucket aggregates aligned like InfluxDB's GROUP BY time (from the epoch)."""
    agg = frame.resample(pd.Timedelta(interval), origin="epoch", label="left", closed="left")
    return getattr(agg, how)()


def per_asset(kind, quantity, source="twin", how="mean", by=("asset",)):
    """One series per asset (or per ``by`` tags): the bucket mean (or min)."""

    def expect(results, window, interval):
        rows = _rows(results, kind, quantity, source, window)
        table = rows.pivot_table(
            index="time", columns=list(by), values="value", aggfunc="first", observed=True
        )
        out = {}
        for key, column in _buckets(table, interval, how).items():
            key = key if isinstance(key, tuple) else (key,)
            out[tuple(str(k) for k in key)] = column.dropna()
        return out

    return expect


def site_total(kind, quantity, source="twin"):
    """One series: the sum over assets of each asset's bucket mean."""

    def expect(results, window, interval):
        rows = _rows(results, kind, quantity, source, window)
        table = rows.pivot(index="time", columns="asset", values="value")
        means = _buckets(table, interval, "mean")
        return {(): means.sum(axis=1, min_count=1).dropna()}

    return expect


def across_assets(kind, quantity, how, source=None):
    """One series: min or max over every asset and the bucket."""

    def expect(results, window, interval):
        rows = _rows(results, kind, quantity, source, window).set_index("time")["value"]
        return {(): getattr(rows.resample(pd.Timedelta(interval), origin="epoch"), how)().dropna()}

    return expect


def residual(pattern):
    """Per (asset, quantity): residual bucket means of quantities named like ``pattern``."""

    def expect(results, window, interval):
        rows = results[
            (results["source"] == "residual")
            & results["quantity"].astype(str).str.contains(pattern)
        ]
        out = {}
        for quantity in rows["quantity"].astype(str).unique():
            for kind in rows["kind"].astype(str).unique():
                part = per_asset(kind, quantity, "residual")(results, window, interval)
                out.update({(*key, quantity): s for key, s in part.items()})
        return out

    return expect


# Every time-series panel by title, one expectation per query (A, B, ...).
SERIES = {
    "PV generation (per plant)": [per_asset("pv", "p_kw")],
    "Load, site total (consumption < 0)": [site_total("load", "p_kw")],
    "Grid exchange (import > 0)": [per_asset("grid", "p_kw")],
    "Battery power (discharge > 0)": [per_asset("battery", "p_kw")],
    "Battery SoC": [per_asset("battery", "soc")],
    "Prices": [
        per_asset("tariff", "price_import_eur_kwh"),
        per_asset("tariff", "price_export_eur_kwh"),
    ],
    "Bus voltages": [per_asset("bus", "v_pu")],
    "Voltage band (lowest and highest bus)": [
        across_assets("bus", "v_pu", "min", "twin"),
        across_assets("bus", "v_pu", "max", "twin"),
    ],
    "Grid losses": [per_asset("grid", "losses_kw")],
    "Line loading": [per_asset("line", "loading_pct")],
    "Transformer loading": [per_asset("trafo", "trafo_loading_pct")],
    "State of health": [per_asset("battery", "soh")],
    "Cell temperature": [per_asset("battery", "t_c")],
    "PV cell temperature": [per_asset("pv", "t_cell_c")],
    "PV available vs delivered, all plants": [
        site_total("pv", "p_avail_kw"),
        site_total("pv", "p_kw"),
    ],
    "Residual power, measured - twin": [residual("_kw$")],
    "Residual SoC / SoH, measured - twin": [residual("^so[ch]$")],
    "Residual temperature, measured - twin": [residual("_c$")],
    "Device data quality (1 = measured, 0 = model fallback)": [
        per_asset("battery", "quality", "real", how="min")
    ],
    "Battery setpoint": [per_asset("controller", "p_set_kw", None)],
    "Battery actual": [per_asset("battery", "p_kw")],
}
KPIS = {
    "Cost": "cost_eur",
    "Energy imported": "e_import_kwh",
    "Energy exported": "e_export_kwh",
    "Self-sufficiency": "self_sufficiency",
    "Peak import": "peak_import_kw",
    "Voltage violations (steps)": "voltage_violations",
}
TABLES = {runs_table().title}
EXPLORER = "$kind $quantity (mean per interval)"
# Diagnostics panels read the health and alert measurements: tests/twin/test_grafana_health.py
DIAGNOSTICS = {spec.title for spec in health_panels()}


def _observed(series: list[dict]) -> dict[tuple, pd.Series]:
    """Query answer as {(tag values..., [field]): values by time}; all-null columns dropped."""
    out = {}
    for s in series:
        tags = tuple(str(v) for _, v in sorted((s.get("tags") or {}).items()))
        frame = pd.DataFrame(s["values"], columns=s["columns"])
        frame.index = pd.to_datetime(frame.pop("time"), utc=True)
        for name, column in frame.items():
            column = column.dropna().astype(float)
            if len(column):
                key = (*tags, name.removeprefix("mean_")) if len(frame.columns) > 1 else tags
                out[key] = column
    return out


def _compare(title: str, observed: dict, expected: dict) -> None:
    assert observed, f"{title}: the query returned no series"
    assert sorted(observed) == sorted(expected), f"{title}: series {sorted(observed)}"
    for key, want in expected.items():
        got = observed[key]
        assert len(want), f"{title} {key}: nothing expected (test window too small?)"
        pd.testing.assert_index_equal(got.index, want.index, obj=f"{title} {key} times")
        assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-9, abs=1e-9), (
            f"{title} {key}"
        )


WINDOWS = {
    "run": (START, END),
    "afternoon": (pd.Timestamp("2016-06-21T10:00:00Z"), pd.Timestamp("2016-06-21T20:00:00Z")),
}


@pytest.mark.parametrize("interval", ["15m", "1h", "6h"])
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_every_panel_gives_the_values_of_the_run(written_run, influxdb, interval, window):
    result, results = written_run
    variables = {"site": SITE, "run_id": result.metadata["run_id"]}
    span = WINDOWS[window]
    seen = set()
    for stem, board in dashboards().items():
        data = to_json(board)
        _, multi = _variables(data)
        for panel in (p for p in data["panels"] if p.get("targets")):
            title = panel["title"]
            seen.add(title)
            if title == EXPLORER or title in TABLES or title in DIAGNOSTICS:
                continue  # below, or in test_grafana_health.py
            queries = [
                interpolate(
                    t["query"], variables, multi, interval=interval, timefilter=time_filter(*span)
                )
                for t in panel["targets"]
            ]
            if title in KPIS:
                (series,) = [_answer(influxdb, q) for q in queries]
                assert series, f"{stem}/{title}: the query returned no series"
                assert series[0]["values"][0][1] == pytest.approx(result.kpis[KPIS[title]])
                continue
            assert title in SERIES, f"{stem}/{title}: no expected values in this test"
            assert len(queries) == len(SERIES[title]), title
            for query, expect in zip(queries, SERIES[title], strict=True):
                _compare(
                    f"{stem}/{title}",
                    _observed(_answer(influxdb, query)),
                    expect(results, span, interval),
                )
    assert set(SERIES) | set(KPIS) | TABLES | {EXPLORER} | DIAGNOSTICS <= seen


def test_load_panel_is_the_site_total_at_any_interval(written_run, influxdb):
    """The issue's case: a 6 h bucket of the Load panel is the mean total load over it."""
    result, results = written_run
    data = to_json(dashboards()["overview"])
    (panel,) = [p for p in data["panels"] if p.get("title", "").startswith("Load")]
    variables = {"site": SITE, "run_id": result.metadata["run_id"]}
    query = interpolate(
        panel["targets"][0]["query"],
        variables,
        {},
        interval="6h",
        timefilter=time_filter(START, END),
    )
    ((_, got),) = _observed(_answer(influxdb, query)).items()
    load = results[(results["kind"] == "load") & (results["quantity"] == "p_kw")]
    total = load[load["source"] == "twin"].groupby("time")["value"].sum()
    want = total.resample("6h").mean()
    assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-9)
    assert total.min() <= got.min() < 0  # a mean of the total never exceeds its peak


def test_runs_table_lists_every_run_with_its_span(written_run, influxdb):
    result, _ = written_run
    spec = runs_table()
    series = _answer(influxdb, interpolate(spec.queries[0], {"site": SITE}, {}))
    rows = {
        s["tags"]["run_id"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in series
    }
    assert set(rows) == {result.metadata["run_id"], DECOY}
    mine = rows[result.metadata["run_id"]]
    assert mine["run_start_ms"] == START.value // 10**6
    assert mine["run_end_ms"] == END.value // 10**6
    assert mine["cost (EUR, storage valued)"] == pytest.approx(result.kpis["cost_scored_eur"])
    assert mine["peak import (kW)"] == pytest.approx(result.kpis["peak_import_kw"])
    # The run link uses fields the table has (tags are columns of a table answer).
    (link,) = spec.overrides["run_id"]["links"]
    columns = set(series[0]["columns"]) | set(series[0]["tags"])
    for name in ("run_id", "run_start_ms", "run_end_ms"):
        assert "${__data.fields." + name + "}" in link["url"] and name in columns


def test_sensor_explorer_shows_every_quantity_of_every_kind(written_run, influxdb):
    """Variables from the data (new plants and sensors appear), the panel's values per source."""
    result, results = written_run
    data = to_json(dashboards()["sensor_explorer"])
    found, multi = _variables(data)
    (panel,) = [p for p in data["panels"] if p.get("targets")]
    values = {"site": SITE, "run_id": result.metadata["run_id"]}

    def options(name: str) -> list[str]:
        query = interpolate(found[name]["query"], values, multi)
        return variable_values(query, _answer(influxdb, query), found[name].get("regex", ""))

    assert options("site") == [SITE]
    assert set(options("run_id")) == {result.metadata["run_id"], DECOY}
    kinds = sorted(results["kind"].astype(str).unique())
    assert sorted(options("kind")) == kinds
    checked = 0
    for kind in kinds:
        values["kind"] = kind
        of_kind = results[results["kind"] == kind]
        assets = options("asset")
        assert sorted(assets) == sorted(of_kind["asset"].astype(str).unique()), kind
        values["asset"] = assets  # "All"
        quantities = options("quantity")
        assert sorted(quantities) == sorted(of_kind["quantity"].astype(str).unique()), kind
        for quantity in quantities:
            values["quantity"] = quantity
            query = interpolate(
                panel["targets"][0]["query"], values, multi, timefilter=time_filter(START, END)
            )
            expected = per_asset(kind, quantity, None, by=("asset", "source"))(
                results, (START, END), "1h"
            )
            _compare(f"{kind} {quantity}", _observed(_answer(influxdb, query)), expected)
            checked += 1
    assert checked == results.groupby(["kind", "quantity"], observed=True).ngroups


@pytest.mark.parametrize("stem", sorted(dashboards()))
def test_run_variables_list_the_runs_of_the_site(stem, written_run, influxdb):
    result, _ = written_run
    found, multi = _variables(to_json(dashboards()[stem]))
    values = {"site": SITE}
    site_query = interpolate(found["site"]["query"], values, multi)
    assert variable_values(site_query, _answer(influxdb, site_query)) == [SITE]
    run_query = interpolate(found["run_id"]["query"], values, multi)
    runs = variable_values(run_query, _answer(influxdb, run_query))
    assert set(runs) == {result.metadata["run_id"], DECOY}


def test_panel_units_follow_the_quantity_names():
    panels = {p["title"]: p for stem in dashboards() for p in to_json(dashboards()[stem])["panels"]}
    assert (
        panels["Load, site total (consumption < 0)"]["fieldConfig"]["defaults"]["unit"] == "kwatt"
    )
    assert panels["Residual power, measured - twin"]["fieldConfig"]["defaults"]["unit"] == "kwatt"
    assert panels["Residual SoC / SoH, measured - twin"]["fieldConfig"]["defaults"]["unit"] == (
        "percentunit"
    )
    assert panels["Residual temperature, measured - twin"]["fieldConfig"]["defaults"]["unit"] == (
        "celsius"
    )
    kpi_units = {t: panels[t]["fieldConfig"]["defaults"]["unit"] for t in KPIS}
    assert kpi_units == {
        "Cost": "currencyEUR",
        "Energy imported": "kwatth",
        "Energy exported": "kwatth",
        "Self-sufficiency": "percentunit",
        "Peak import": "kwatt",
        "Voltage violations (steps)": "none",
    }
    assert [unit_of(q) for q in ("p_kw", "e_kwh", "soc", "t_cell_c", "v_pu", "q_kvar")] == [
        "kwatt",
        "kwatth",
        "percentunit",
        "celsius",
        "none",
        "kvoltampreact",
    ]


@pytest.mark.parametrize("stem", sorted(dashboards()))
def test_default_time_range_is_relative(stem):
    time = to_json(dashboards()[stem])["time"]
    assert time == {"from": "now-24h", "to": "now"}


# ---- generated files, provisioning, CLI -----------------------------------------------


def test_committed_dashboards_are_the_generated_ones(tmp_path):
    write_all(tmp_path)
    assert [p.name for p in DASHBOARDS] == sorted(
        p.name for p in (tmp_path / "dashboards").glob("*.json")
    )
    for path in [*DASHBOARDS, *(ROOT / "grafana" / "provisioning").rglob("*.yaml")]:
        rel = path.relative_to(ROOT / "grafana")
        assert path.read_text() == (tmp_path / rel).read_text(), (
            f"{rel} is stale: run `twin grafana --out grafana/`"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_validate_against_the_sdk_schema(path):
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = json.loads(path.read_text())
    parsed = Dashboard.from_json(data)  # typed models of grafana-foundation-sdk
    if parsed.annotations and parsed.annotations.list_val:  # InfluxQL annotations
        stored = data["annotations"]["list"]
        parsed.annotations.list_val = [InfluxAnnotation.from_json(a) for a in stored]
    again = json.loads(json.dumps(parsed.to_json(), default=lambda o: o.to_json()))
    assert again == data  # nothing unknown to the schema, nothing lost
    targets = [t for p in parsed.panels or [] for t in getattr(p, "targets", None) or []]
    assert targets and all(isinstance(t, InfluxQLQuery) for t in targets)


def test_datasource_options_never_write_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv("TWIN_INFLUX_PASSWORD", "s3cret-value")
    answer = CliRunner().invoke(
        app,
        [
            "grafana",
            "--out",
            str(tmp_path),
            "--influx-url",
            "https://influx.example:8086",
            "--database",
            "plant_a",
            "--user",
            "grafana",
            "--password-env",
            "TWIN_INFLUX_PASSWORD",
        ],
    )
    assert answer.exit_code == 0, answer.output
    text = (tmp_path / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    (source,) = yaml.safe_load(text)["datasources"]
    assert source["url"] == "https://influx.example:8086"
    assert source["jsonData"]["dbName"] == "plant_a"
    assert source["user"] == "grafana"
    assert source["secureJsonData"] == {"password": "$TWIN_INFLUX_PASSWORD"}
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "s3cret-value" not in written


def test_datasource_defaults_are_the_compose_services():
    (source,) = yaml.safe_load(DatasourceOptions().yaml())["datasources"]
    assert source["url"] == "http://influxdb:8086" and source["jsonData"]["dbName"] == "twin"
    assert "user" not in source and "secureJsonData" not in source
    odd = DatasourceOptions(database='db"#: x'.replace(" ", ""), user="a:b#c")
    (source,) = yaml.safe_load(odd.yaml())["datasources"]
    assert (source["jsonData"]["dbName"], source["user"]) == ('db"#:x', "a:b#c")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"url": "influxdb:8086"}, "--influx-url"),
        ({"database": ""}, "--database"),
        ({"user": "u", "password_env": "NOT-A-NAME"}, "--password-env"),
        ({"password_env": "PW"}, "needs --user"),
    ],
)
def test_bad_datasource_options_are_named(options, match):
    with pytest.raises(GrafanaConfigError, match=match):
        DatasourceOptions(**options)


def test_a_login_in_the_datasource_url_is_refused_and_not_repeated():
    with pytest.raises(GrafanaConfigError, match="no login in it") as caught:
        DatasourceOptions(url="http://admin:s3cret@influx:8086")
    assert "s3cret" not in str(caught.value)
    DatasourceOptions(url="https://influx.example:8086/proxy")  # a path stays allowed


def test_bad_option_exits_with_the_message(tmp_path):
    answer = CliRunner().invoke(app, ["grafana", "--out", str(tmp_path), "--influx-url", "ftp://x"])
    assert answer.exit_code == 2 and "--influx-url" in answer.output


def test_link_opens_the_run_at_its_time_range(written_run):
    result, _ = written_run
    url = run_link(result.out_dir, "http://grafana.example:3000/")
    assert url == (
        "http://grafana.example:3000/d/twin-overview/twin-overview?var-site=hil_battery"
        f"&var-run_id={result.metadata['run_id']}"
        f"&from={START.value // 10**6}&to={END.value // 10**6}"
    )
    answer = CliRunner().invoke(app, ["grafana", "--link", str(result.out_dir)])
    assert answer.exit_code == 0 and result.metadata["run_id"] in answer.output


def test_link_of_a_directory_without_a_run_is_refused(tmp_path):
    with pytest.raises(GrafanaConfigError, match="run.json"):
        run_link(tmp_path)
