"""Health indices, alerts table, alert annotations and alert rules on a real InfluxDB 1.6.

Known ``health`` and ``alert`` points in the diagnostics schema (issue 14 design) are
written through the project's InfluxDB writer: a run with a shaded PV plant, a stuck
sensor and a battery cooling failure; a decoy run of the same site and a run of another
site beside it. Every query goes through Grafana's substitution and transformations
(tests/twin/grafana_emulation.py) and its values are compared with the same numbers
computed from the written points with pandas.
"""

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adapters.influx.lineprotocol import line_prefix
from adapters.influx.writer import InfluxConfig, InfluxWriter
from tests.twin.grafana_emulation import (
    annotation_events,
    evaluate_rule,
    interpolate,
    table_rows,
    time_filter,
    transform,
    variable_values,
)
from twin.grafana import dashboards, health_panels, to_json
from twin.grafana_alerting import RULES, WINDOW_S, alert_rules
from twin.grafana_health import ALERT_TABLE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "grafana" / "provisioning"
DB = "health"
SITE, RUN, DECOY = "diag_site", "run-a", "run-b"
OTHER = ("other_site", "run-c")
START = pd.Timestamp("2016-06-21T00:00:00Z")
STEP = pd.Timedelta("15min")
STEPS = 96
END = START + STEPS * STEP


def _pv_performance(k: int) -> float | None:
    if k < 24 or k >= 80:
        return None  # night: not defined, not written
    return 0.4 if 40 <= k <= 51 else 0.95 - 0.001 * k  # shaded 10:00-12:45


# (asset, asset kind, index, value at step k or None)
SERIES = (
    ("pv_roof", "pv", "pv_performance", _pv_performance),
    ("pv_roof", "pv", "data_quality", lambda k: 0.3 if 60 <= k <= 63 else 1.0),
    ("bess", "battery", "soh_estimate", lambda k: 0.9 - 0.0005 * k),
    ("bess", "battery", "thermal_stress", lambda k: 0.75 + 0.2 * math.sin(k / 10)),
    ("bus_3", "bus", "voltage_band", lambda k: 0.62 + 0.002 * k),
)
# (alert_id, asset, kind, steps open, step cleared or None, severity, confidence, evidence)
ALERTS = (
    ("pv_roof-1", "pv_roof", "pv_shading", range(41, 52), 52, 0.3, 0.8, "pv_performance=0.40"),
    ("pv_roof-2", "pv_roof", "sensor_stuck", range(60, 64), 64, 0.5, 0.6, "data_quality=0.30"),
    (
        "bess-1",
        "bess",
        "battery_cooling_failure",
        range(70, STEPS),
        None,
        0.6,
        0.7,
        'thermal_stress=0.35, cusum:t_c=8.1 "hot"',
    ),
)


def _time(k: int) -> pd.Timestamp:
    return START + k * STEP


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _points(site: str, run: str, scale: float) -> tuple[list[dict], list[dict]]:
    """The health and alert points of one run (``scale`` changes every value)."""
    health = [
        {"time": _time(k), "site": site, "run_id": run, "asset": a, "kind": kind, "index": i}
        | {"value": value * scale}
        for a, kind, i, f in SERIES
        for k in range(STEPS)
        if (value := f(k)) is not None
    ]
    alerts = []
    for alert_id, asset, kind, steps, cleared, severity, confidence, evidence in ALERTS:
        tags = {"site": site, "run_id": run, "alert_id": alert_id, "asset": asset, "kind": kind}
        for n, k in enumerate(steps):
            # Severity grows while open; the evidence says what opened the alert, then more.
            state = {"severity": severity * scale + 0.01 * n, "confidence": confidence}
            text = evidence if n == 0 else f"{evidence} (+{n} steps)"
            alerts.append(tags | state | {"time": _time(k), "open": 1, "evidence": text})
        if cleared is not None:
            back = {"severity": 0.0, "confidence": confidence, "evidence": "back to health"}
            alerts.append(tags | back | {"time": _time(cleared), "open": 0})
    return health, alerts


def _lines(health: list[dict], alerts: list[dict]) -> list[str]:
    lines = []
    for p in health:
        tags = {k: p[k] for k in ("site", "run_id", "asset", "kind", "index")}
        lines.append(
            f"{line_prefix('health', tags)} value={p['value']!r} {p['time'].value // 10**9}"
        )
    for p in alerts:
        tags = {k: p[k] for k in ("site", "run_id", "asset", "alert_id", "kind")}
        fields = (
            f"severity={p['severity']!r},confidence={p['confidence']!r},open={p['open']}i,"
            f"evidence={_string(p['evidence'])}"
        )
        lines.append(f"{line_prefix('alert', tags)} {fields} {p['time'].value // 10**9}")
    return lines


@pytest.fixture(scope="module")
def written(influxdb):
    """Every run's points, written by the project's writer; returned as frames."""
    influxdb.query(f'CREATE DATABASE "{DB}"')
    runs = [(SITE, RUN, 1.0), (SITE, DECOY, 0.5), (*OTHER, 0.8)]
    health, alerts = [], []
    for site, run, scale in runs:
        h, a = _points(site, run, scale)
        health += h
        alerts += a
    writer = InfluxWriter(InfluxConfig(url=influxdb.url, db=DB)).open()
    writer.write(_lines(health, alerts))
    stats = writer.close()
    assert stats.points_written == len(health) + len(alerts)
    return pd.DataFrame(health), pd.DataFrame(alerts)


def _answer(influxdb, query: str) -> list[dict]:
    result = influxdb.query(query, db=DB)["results"][0]
    assert "error" not in result, f"{query}: {result.get('error')}"
    return result.get("series", [])


def _board() -> dict:
    return to_json(dashboards()["asset_health"])


def _panel(title: str) -> dict:
    (panel,) = [p for p in _board()["panels"] if p.get("title") == title]
    return panel


def _multi() -> dict[str, bool]:
    return {v["name"]: bool(v.get("multi")) for v in _board()["templating"]["list"]}


def _options(influxdb, name: str, values: dict) -> list[str]:
    (variable,) = [v for v in _board()["templating"]["list"] if v["name"] == name]
    query = interpolate(variable["query"], values, _multi())
    return variable_values(query, _answer(influxdb, query), variable.get("regex", ""))


NOW, HEALTH, TABLE = (spec.title for spec in health_panels())
RUN_VARS = {"site": SITE, "run_id": RUN}


# ---- template variables ---------------------------------------------------------------


def test_asset_and_index_variables_come_from_the_run(written, influxdb):
    health, _ = written
    mine = health[(health["site"] == SITE) & (health["run_id"] == RUN)]
    assert sorted(_options(influxdb, "asset", RUN_VARS)) == sorted(mine["asset"].unique())
    assert sorted(_options(influxdb, "index", RUN_VARS)) == sorted(mine["index"].unique())
    other = {"site": OTHER[0], "run_id": OTHER[1]}
    assert sorted(_options(influxdb, "index", other)) == sorted(mine["index"].unique())


def test_a_new_asset_and_index_appear_without_editing(written, influxdb):
    tags = {"site": SITE, "run_id": "run-new", "asset": "ev_park", "kind": "ev"}
    line = f"{line_prefix('health', tags | {'index': 'converter_availability'})} value=1.0 0"
    writer = InfluxWriter(InfluxConfig(url=influxdb.url, db=DB)).open()
    writer.write([line])
    assert writer.close().points_written == 1
    values = {"site": SITE, "run_id": "run-new"}
    assert _options(influxdb, "asset", values) == ["ev_park"]
    assert _options(influxdb, "index", values) == ["converter_availability"]


# ---- the health index panel (repeated per index) ---------------------------------------


def _bucket_means(rows: pd.DataFrame, interval: str, window) -> dict[tuple, pd.Series]:
    rows = rows[(rows["time"] >= window[0]) & (rows["time"] <= window[1])]
    table = rows.pivot(index="time", columns="asset", values="value")
    means = table.resample(pd.Timedelta(interval), origin="epoch", closed="left").mean()
    return {(asset,): column.dropna() for asset, column in means.items()}


def _series(answer: list[dict]) -> dict[tuple, pd.Series]:
    out = {}
    for s in answer:
        frame = pd.DataFrame(s["values"], columns=s["columns"])
        key = tuple(str(v) for _, v in sorted((s.get("tags") or {}).items()))
        out[key] = pd.Series(
            frame["value"].astype(float).to_numpy(), pd.to_datetime(frame["time"], utc=True)
        )
    return out


WINDOWS = {"day": (START, END), "afternoon": (_time(45), _time(70))}


@pytest.mark.parametrize("interval", ["15m", "1h", "6h"])
@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("assets", ["all", "pv_roof"])
def test_health_panel_gives_each_index_per_asset(written, influxdb, interval, window, assets):
    health, _ = written
    panel = _panel(HEALTH)
    assert panel["repeat"] == "index"
    mine = health[(health["site"] == SITE) & (health["run_id"] == RUN)]
    chosen = _options(influxdb, "asset", RUN_VARS) if assets == "all" else [assets]
    checked = 0
    for index in _options(influxdb, "index", RUN_VARS):  # one panel per index (repeat)
        values = RUN_VARS | {"asset": chosen, "index": index}
        (target,) = panel["targets"]
        query = interpolate(
            target["query"],
            values,
            _multi(),
            interval=interval,
            timefilter=time_filter(*WINDOWS[window]),
        )
        rows = mine[(mine["index"] == index) & mine["asset"].isin(chosen)]
        want = _bucket_means(rows, interval, WINDOWS[window])
        got = _series(_answer(influxdb, query))
        assert sorted(got) == sorted(want), index
        for key, series in want.items():
            pd.testing.assert_index_equal(got[key].index, series.index, obj=f"{index} {key}")
            assert got[key].to_numpy() == pytest.approx(series.to_numpy(), rel=1e-12), index
            checked += 1
    assert checked >= (2 if assets == "pv_roof" else 5)


def test_shaded_hours_show_the_index_of_the_shading(written, influxdb):
    """The issue's case in numbers: shaded 10:00-12:45, the 1 h buckets read 0.40."""
    panel = _panel(HEALTH)
    values = RUN_VARS | {"asset": ["pv_roof"], "index": "pv_performance"}
    query = interpolate(
        panel["targets"][0]["query"],
        values,
        _multi(),
        interval="1h",
        timefilter=time_filter(_time(40), _time(51)),
    )
    ((_, got),) = _series(_answer(influxdb, query)).items()
    assert list(got.index.hour) == [10, 11, 12]
    assert got.to_numpy() == pytest.approx([0.4, 0.4, 0.4])


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_health_now_is_the_last_value_of_each_index(written, influxdb, window):
    health, _ = written
    panel = _panel(NOW)
    assets = ["pv_roof", "bess"]
    query = interpolate(
        panel["targets"][0]["query"],
        RUN_VARS | {"asset": assets},
        _multi(),
        timefilter=time_filter(*WINDOWS[window]),
    )
    answer = _answer(influxdb, query)
    got = {tuple(sorted(s["tags"].items())): s["values"][0][1] for s in answer}
    start, end = WINDOWS[window]
    rows = health[(health["site"] == SITE) & (health["run_id"] == RUN)]
    rows = rows[rows["asset"].isin(assets) & (rows["time"] >= start) & (rows["time"] <= end)]
    last = rows.sort_values("time").groupby(["asset", "index"])["value"].last()
    want = {(("asset", a), ("index", i)): v for (a, i), v in last.items()}
    assert got == pytest.approx(want, rel=1e-12)
    # Each stat is named from the series' tags.
    labels = re.findall(r"__field\.labels\.(\w+)", panel["fieldConfig"]["defaults"]["displayName"])
    assert labels and all(set(labels) <= set(s["tags"]) for s in answer)
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.5, 0.7]


# ---- the alerts table ------------------------------------------------------------------


def _expected_alerts(alerts: pd.DataFrame, assets: list[str], window) -> list[dict]:
    rows = alerts[(alerts["site"] == SITE) & (alerts["run_id"] == RUN)]
    rows = rows[rows["asset"].isin(assets)]
    rows = rows[(rows["time"] >= window[0]) & (rows["time"] <= window[1])].sort_values("time")
    out = []
    for alert_id, points in rows.groupby("alert_id", sort=False):
        first, last = points.iloc[0], points.iloc[-1]
        out.append(
            {
                "alert": alert_id,
                "asset": first["asset"],
                "kind": first["kind"],
                "start": first["time"],
                "end (or last report while open)": last["time"],
                "status": last["open"],
                "severity": last["severity"],
                "confidence": last["confidence"],
                "evidence": first["evidence"],
            }
        )
    return out


@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("assets", [["pv_roof", "bess", "bus_3"], ["bess"]])
def test_alerts_table_has_one_row_per_alert(written, influxdb, window, assets):
    _, alerts = written
    panel = _panel(TABLE)
    (target,) = panel["targets"]
    assert target["resultFormat"] == "table"
    query = interpolate(
        target["query"],
        RUN_VARS | {"asset": assets},
        _multi(),
        timefilter=time_filter(*WINDOWS[window]),
    )
    got = transform(table_rows(_answer(influxdb, query)), panel["transformations"])
    want = _expected_alerts(alerts, assets, WINDOWS[window])
    assert want, "nothing expected: the test window holds no alert"
    assert [list(row) for row in got] == [[c for c, _, _ in ALERT_TABLE_COLUMNS]] * len(got)
    assert sorted(r["alert"] for r in got) == sorted(r["alert"] for r in want)
    by_id = {r["alert"]: r for r in got}
    for row in want:
        floats = {k for k, v in row.items() if isinstance(v, float)}
        assert {k: by_id[row["alert"]][k] for k in floats} == pytest.approx(
            {k: row[k] for k in floats}, rel=1e-12
        )
        assert {k: v for k, v in by_id[row["alert"]].items() if k not in floats} == {
            k: v for k, v in row.items() if k not in floats
        }


def test_alerts_table_reads_open_and_cleared(written, influxdb):
    panel = _panel(TABLE)
    query = interpolate(
        panel["targets"][0]["query"],
        RUN_VARS | {"asset": ["pv_roof", "bess"]},
        _multi(),
        timefilter=time_filter(START, END),
    )
    rows = {
        r["alert"]: r
        for r in transform(table_rows(_answer(influxdb, query)), panel["transformations"])
    }
    assert rows["pv_roof-1"]["start"] == _time(41)
    assert rows["pv_roof-1"]["end (or last report while open)"] == _time(52)
    assert rows["pv_roof-1"]["evidence"] == "pv_performance=0.40"  # what opened it
    assert rows["bess-1"]["evidence"] == 'thermal_stress=0.35, cusum:t_c=8.1 "hot"'
    mapping = panel["fieldConfig"]["overrides"]
    (status,) = [o for o in mapping if o["matcher"]["options"] == "status"]
    (values,) = [p["value"] for p in status["properties"] if p["id"] == "mappings"]
    texts = values[0]["options"]
    assert texts[str(rows["pv_roof-1"]["status"])]["text"] == "cleared"
    assert texts[str(rows["bess-1"]["status"])]["text"] == "open"


# ---- annotations -----------------------------------------------------------------------


def test_annotations_mark_every_alert_opened_and_cleared(written, influxdb):
    _, alerts = written
    annotations = {a["name"]: a for a in _board()["annotations"]["list"]}
    assert set(annotations) == {"Alert opened", "Alert cleared"}
    mine = alerts[(alerts["site"] == SITE) & (alerts["run_id"] == RUN)]
    first = mine.sort_values("time").groupby("alert_id").first().reset_index()
    cleared = mine[mine["open"] == 0]
    for name, rows in (("Alert opened", first), ("Alert cleared", cleared)):
        annotation = annotations[name]
        assert annotation["datasource"]["uid"] == "twin-influxdb"
        query = interpolate(
            annotation["query"],
            RUN_VARS | {"asset": ["pv_roof", "bess", "bus_3"]},
            _multi(),
            timefilter=time_filter(START, END),
        )
        events = annotation_events(_answer(influxdb, query), annotation)
        got = sorted((e["time"], e["title"], tuple(e["tags"]), e["text"]) for e in events)
        want = sorted(
            (r["time"], r["kind"], (r["asset"], r["alert_id"]), r["evidence"])
            for _, r in rows.iterrows()
        )
        assert got == want, name


# ---- alert rules -----------------------------------------------------------------------


def _committed_rules() -> dict:
    return yaml.safe_load((PROVISIONING / "alerting" / "twin_health.yaml").read_text())


# Fields of Grafana's file-provisioning types (pkg/services/provisioning/alerting/
# rules_types.go: AlertRuleGroupV1, AlertRuleV1, QueryV1).
GROUP_FIELDS = {"orgId", "name", "folder", "interval", "rules"}
RULE_FIELDS = {
    "uid",
    "title",
    "condition",
    "data",
    "dashboardUid",
    "panelId",
    "noDataState",
    "execErrState",
    "for",
    "keepFiringFor",
    "annotations",
    "labels",
    "isPaused",
    "notification_settings",
}
QUERY_FIELDS = {"refId", "queryType", "relativeTimeRange", "datasourceUid", "model"}
NO_DATA_STATES = {"Alerting", "NoData", "OK", "KeepLast"}
ERROR_STATES = {"Alerting", "Error", "OK", "KeepLast"}
DURATION = re.compile(
    r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"
)  # model.ParseDuration


def test_alert_rules_file_follows_the_provisioning_schema():
    document = _committed_rules()
    assert document == alert_rules("twin-influxdb")
    assert set(document) == {"apiVersion", "groups"} and document["apiVersion"] == 1
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "twin.yaml").read_text())[
        "providers"
    ]
    uids = set()
    for group in document["groups"]:
        assert set(group) <= GROUP_FIELDS and group["name"].strip()
        assert group["folder"] == provider["folder"]  # beside the dashboards
        assert DURATION.match(group["interval"]) and group["interval"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_FIELDS, set(rule) - RULE_FIELDS
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rule["uid"]) and rule["uid"] not in uids
            uids.add(rule["uid"])
            # Grafana expands $VAR in these fields when it reads the file.
            assert "$" not in rule["title"] + "".join(rule["labels"].values())
            assert all("${" not in v for v in rule["annotations"].values())
            assert rule["noDataState"] in NO_DATA_STATES
            assert rule["execErrState"] in ERROR_STATES
            assert DURATION.match(rule["for"]) and rule["for"]
            assert rule["labels"]["severity"] in {"critical", "warning"}
            refs = []
            for query in rule["data"]:
                assert set(query) <= QUERY_FIELDS and query["refId"] not in refs
                model = query["model"]
                if query["datasourceUid"] == "__expr__":
                    assert model["expression"] in refs  # an earlier step
                else:
                    assert query["datasourceUid"] == datasource["datasources"][0]["uid"]
                    assert query["relativeTimeRange"]["from"] > query["relativeTimeRange"]["to"]
                    assert model["rawQuery"] is True and "$timeFilter" in model["query"]
                refs.append(query["refId"])
            assert rule["condition"] == refs[-1]


def test_rule_levels_are_the_panel_thresholds():
    steps = _panel(HEALTH)["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {level for _, _, level in RULES} == {s["value"] for s in steps if s["value"]}


def _expected_rule(health: pd.DataFrame, now: pd.Timestamp, level: float) -> dict:
    rows = health[(health["time"] > now - pd.Timedelta(seconds=WINDOW_S)) & (health["time"] <= now)]
    tags = ["asset", "index", "kind", "run_id", "site"]  # sorted, as the labels
    last = rows.sort_values("time").groupby(tags).last()["value"]
    return {
        tuple(zip(tags, key, strict=True)): (value, value < level) for key, value in last.items()
    }


@pytest.mark.parametrize("now", ["2016-06-21T12:05:00Z", "2016-06-21T22:05:00Z"])
def test_alert_rules_fire_on_the_indices_below_their_level(written, influxdb, now):
    health, _ = written
    now = pd.Timestamp(now)
    (group,) = _committed_rules()["groups"]
    fired = {}
    for rule in group["rules"]:
        (source,) = [q for q in rule["data"] if q["datasourceUid"] != "__expr__"]
        window = source["relativeTimeRange"]
        span = (
            now - pd.Timedelta(seconds=window["from"]),
            now - pd.Timedelta(seconds=window["to"]),
        )
        query = interpolate(source["model"]["query"], {}, {}, timefilter=time_filter(*span))
        got = evaluate_rule(rule, {source["refId"]: _answer(influxdb, query)})
        (level,) = rule["data"][-1]["model"]["conditions"][0]["evaluator"]["params"]
        want = _expected_rule(health, now, level)
        assert set(got) == set(want)
        for key, (value, firing) in want.items():
            assert got[key][0] == pytest.approx(value) and got[key][1] == firing, key
        fired[rule["labels"]["severity"]] = {
            (dict(k)["run_id"], dict(k)["asset"], dict(k)["index"]) for k, v in got.items() if v[1]
        }
    if now.hour == 12:  # shaded PV plant: critical; battery thermal stress 0.55: warning
        assert (RUN, "pv_roof", "pv_performance") in fired["critical"]
        assert (RUN, "bess", "thermal_stress") in fired["warning"] - fired["critical"]
        assert (RUN, "bess", "soh_estimate") not in fired["warning"]
    else:  # night: the PV index is not defined, so no PV alert (no data is OK)
        assert not any(
            asset == "pv_roof" and index == "pv_performance" for _, asset, index in fired["warning"]
        )
