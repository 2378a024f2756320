"""``twin report`` pages opened in headless Chromium: every section drawn, no console error.

Runs of six hours (a PV shading fault, a voltage band of 0.95..1.05 pu) are made once for
the module: ``none`` and ``rule`` by ``twin compare --report``, the rule run diagnosed; a
run without battery; a run that failed its energy-balance check.
"""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.browser import SKIP_ENV, Browser, require_chromium
from twin.cli import app
from twin.reporting.labels import kpi_spec

runner = CliRunner()
#: A missing chromium fails the page tests, never a silent skip; ``TWIN_SKIP_BROWSER=1``
#: skips them on purpose (the module-level check runs before any run is made).


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    return require_chromium()


TIME_SERIES = ("power", "pv", "soc", "voltages", "loading", "prices", "health")
SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
V_BAND = (0.95, 1.05)
FAULT = {"kind": "pv_shading", "target": "pv_roof", "start": "2h", "duration": "1h"}


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def raw(request) -> dict:
    text = (Path(__file__).parents[2] / "scenarios" / "microgrid_day.yaml").read_text()
    raw = yaml.safe_load(text)
    raw["start"] = "2016-06-21T09:00:00-04:00"
    raw["duration"] = "6h"
    raw["grid"] = {"source": raw["grid"], "v_min_pu": V_BAND[0], "v_max_pu": V_BAND[1]}
    raw["faults"] = [FAULT]
    return raw


@pytest.fixture(scope="module")
def compared(raw, tmp_path_factory) -> Path:
    """``none`` and ``rule`` runs by ``twin compare --report``; the rule run diagnosed."""
    base = tmp_path_factory.mktemp("compare")
    path = _write(base / "scenario.yaml", raw)
    output = _invoke(
        "compare",
        str(path),
        "--controllers",
        "none,rule",
        "--out",
        str(base / "runs"),
        "--report",
        str(base / "compare.html"),
    )
    assert f"report: {base / 'compare.html'}" in output.replace("\n", "")
    _invoke("diagnose", str(base / "runs" / "rule"))
    _invoke("report", str(base / "runs" / "rule"))
    return base


@pytest.fixture(scope="module")
def browser():
    with Browser() as browser:
        yield browser


def _open(browser: Browser, page: Path) -> int:
    browser.errors.clear()
    n = browser.open(page)
    assert browser.errors == []
    return n


def _sections(browser: Browser) -> list[str]:
    return browser.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")


def _figure(browser: Browser, div_id: str) -> dict:
    """Traces (name, points) and layout (shapes, axis ranges) of a drawn graph."""
    return browser.evaluate(
        f"""(function () {{
      var g = document.getElementById('{div_id}');
      return {{
        traces: g._fullData.map(function (t) {{
          return {{name: t.name, n: (t.y || t.z || []).length, x: t.x ? t.x.slice(0, 1) : []}};
        }}),
        shapes: (g.layout.shapes || []).map(function (s) {{
          return {{name: s.name, y0: s.y0, y1: s.y1, x0: s.x0, x1: s.x1}};
        }}),
        yrange: g._fullLayout.yaxis.range,
        xrange: g._fullLayout.xaxis.range,
        legend_y: g._fullLayout.legend ? g._fullLayout.legend.y : null,
      }};
    }})()"""
    )


def test_a_run_page_draws_every_section_without_console_errors(compared, browser, tmp_path):
    page = compared / "runs" / "rule" / "report.html"
    n = _open(browser, page)
    external = "document.querySelectorAll('script[src], link[href], img[src]').length"
    assert browser.evaluate(external) == 0  # plotly.js inline: one file, works offline
    sections = _sections(browser)
    for name in ("summary", "kpis", *TIME_SERIES, "alerts"):
        assert f"sec-{name}" in sections
    assert "sec-ev" not in sections and "sec-measured" not in sections
    assert n >= len(TIME_SERIES)
    for name in TIME_SERIES:
        figure = _figure(browser, f"fig-{name}-0")
        assert figure["traces"] and all(t["n"] > 0 for t in figure["traces"]), name
        assert figure["legend_y"] >= 1.0  # above the plot area, never over the data
    summary = browser.evaluate("document.getElementById('sec-summary').innerText")
    for expected in ("rule", "pv_roof: 45 kWp", "bess: 60 kWh, 20 kW", "pv_shading on pv_roof"):
        assert expected in summary
    assert "0.95..1.05 pu" in summary and "seed" in summary.lower()
    shot = browser.screenshot(tmp_path / "report.png", full_page=True, scale=0.5)
    assert shot.stat().st_size > 50_000


def test_zooming_one_plot_zooms_them_all(compared, browser):
    _open(browser, compared / "runs" / "rule" / "report.html")
    window = ["2016-06-21 10:00:00", "2016-06-21 11:30:00"]
    zoom = f"Plotly.relayout('fig-power-0', {{'xaxis.range': {json.dumps(window)}}})"
    browser.evaluate(zoom + ".then(function () { return true; })")
    followed = f"""new Promise(function (resolve) {{
      function check() {{
        var ids = ['fig-voltages-0', 'fig-soc-0', 'fig-health-0'];
        if (ids.every(function (id) {{
          var r = document.getElementById(id)._fullLayout.xaxis.range;
          return r[0] === {json.dumps(window[0])} && r[1] === {json.dumps(window[1])};
        }})) resolve(true);
        else setTimeout(check, 50);
      }}
      check();
    }})"""
    assert browser.evaluate(followed) is True
    for name in ("voltages", "soc", "health"):
        assert _figure(browser, f"fig-{name}-0")["xrange"] == window
    assert browser.errors == []


def test_voltage_band_lines_are_the_scenarios_limits(compared, browser):
    _open(browser, compared / "runs" / "rule" / "report.html")
    figure = _figure(browser, "fig-voltages-0")
    limits = {s["name"]: s["y0"] for s in figure["shapes"] if s["name"] in ("v_min_pu", "v_max_pu")}
    assert limits == {"v_min_pu": V_BAND[0], "v_max_pu": V_BAND[1]}
    low, high = figure["yrange"]
    assert low < V_BAND[0] and high > V_BAND[1]  # the band in view, not the slack's autoscale
    soc = _figure(browser, "fig-soc-0")
    window = {s["name"]: s["y0"] for s in soc["shapes"] if "soc_" in s["name"]}
    assert window == {"bess soc_min": 0.1, "bess soc_max": 0.9}
    loading = _figure(browser, "fig-loading-0")
    assert [s["y0"] for s in loading["shapes"] if s["name"] == "limit %"] == [100]


def test_fault_windows_are_shaded_in_site_time(compared, browser):
    _open(browser, compared / "runs" / "rule" / "report.html")
    for name in ("power", "pv", "voltages"):
        faults = [s for s in _figure(browser, f"fig-{name}-0")["shapes"] if s["name"]]
        faults = [s for s in faults if s["name"].startswith("fault:")]
        assert [
            (s["name"], s["x0"][:16].replace("T", " "), s["x1"][:16].replace("T", " "))
            for s in faults
        ] == [("fault: pv_shading pv_roof", "2016-06-21 11:00", "2016-06-21 12:00")]


def test_kpis_have_human_labels_device_kpis_too(compared, browser, tmp_path):
    run = tmp_path / "hil"
    shutil.copytree(compared / "runs" / "rule", run)
    kpis = json.loads((run / "kpis.json").read_text())
    kpis |= {  # what a hardware-in-the-loop run adds (adapters.mqtt.stats.mqtt_kpis)
        "device_fallback_steps_bess": 3.0,
        "device_fallback_share_bess": 0.125,
        "residual_rmse_bess_p_kw": 0.42,
        "mqtt_malformed_bess": 0.0,
        "mqtt_dropped": 0.0,
        "ingest_late": 2.0,
        "wear_eur": 1.5,
    }
    (run / "kpis.json").write_text(json.dumps(kpis))
    _invoke("report", str(run))
    _open(browser, run / "report.html")
    labels = browser.evaluate(
        "Array.from(document.querySelectorAll('#sec-kpis tr td:first-child'))"
        ".map(td => td.innerText)"
    )
    assert len(labels) == len(kpis)
    assert not [label for label in labels if SNAKE.match(label) or "_" in label]
    assert "Device bess: steps on the model (no fresh measurement)" in labels
    assert "Device bess: share of steps on the model" in labels
    assert "Residual RMS, bess power (kW), device - twin" in labels
    assert "Peak import (kW)" in labels and "Battery wear cost (EUR)" in labels  # KPI_SPECS
    share = browser.evaluate(
        "document.querySelector('#sec-kpis td[data-kpi=device_fallback_share_bess]').innerText"
    )
    assert share == "12.5%"


def test_a_run_without_battery_or_ev_omits_those_sections(raw, browser, tmp_path):
    raw = {**raw, "assets": {**raw["assets"], "battery": []}, "controller": "none"}
    out = tmp_path / "pv_only"
    _invoke("run", str(_write(tmp_path / "s.yaml", raw)), "--out", str(out), "--no-progress")
    assert "report.html" in _invoke("report", str(out))
    _open(browser, out / "report.html")
    sections = _sections(browser)
    assert "sec-soc" not in sections and "sec-ev" not in sections
    assert "sec-health" not in sections and "sec-power" in sections
    notes = browser.evaluate("document.getElementById('absent').innerText")
    assert "no battery in the run" in notes and "no EV charging in the run" in notes
    assert "no diagnostics ran" in notes
    assert browser.evaluate("document.querySelectorAll('[id^=fig-soc], [id^=fig-ev]').length") == 0


def test_a_failed_run_renders_under_its_banner(raw, browser, tmp_path, monkeypatch):
    from twin import checks

    monkeypatch.setattr(checks, "BALANCE_ABS_TOL_KWH", -1.0)  # no residual passes
    monkeypatch.setattr(checks, "BALANCE_REL_TOL", -1.0)
    out = tmp_path / "failed"
    path = _write(tmp_path / "s.yaml", raw)
    assert runner.invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 1
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and "run FAILED" in result.stderr
    _open(browser, out / "report.html")
    first = browser.evaluate("document.body.firstElementChild.getAttribute('role')")
    assert first == "alert"
    text = browser.evaluate("document.querySelector('[role=alert]').innerText")
    assert "run FAILED 1 check(s): energy_balance" in text
    assert {"sec-kpis", "sec-power", "sec-voltages"} <= set(_sections(browser))
    assert browser.evaluate("document.title").endswith("(FAILED): twin report")


def test_a_comparison_shows_kpi_changes_against_the_first_and_overlays(compared, browser):
    runs = compared / "runs"
    kpis = {n: json.loads((runs / n / "kpis.json").read_text()) for n in ("none", "rule")}
    for page in (compared / "compare.html", compared / "again.html"):
        if page.name == "again.html":
            _invoke("report", str(runs / "none"), str(runs / "rule"), "--out", str(page))
        _open(browser, page)
        heads = browser.evaluate(
            "Array.from(document.querySelectorAll('#sec-kpis th')).map(th => th.innerText)"
        )
        assert heads == ["KPI", "none", "rule", "change vs none"]
        cells = browser.evaluate(
            "Array.from(document.querySelectorAll('#sec-kpis td[data-delta]'))"
            ".map(td => [td.dataset.kpi, Number(td.dataset.delta), td.innerText])"
        )
        assert {k for k, _, _ in cells} == set(kpis["none"])
        for key, delta, text in cells:
            assert delta == pytest.approx(kpis["rule"][key] - kpis["none"][key], rel=1e-12)
            base = kpis["none"][key]
            if "%" in text:  # a share only of a first value that is not next to nothing
                assert abs(100 * delta / base) <= 1000
            if key == "e_battery_delta_kwh":  # none leaves the battery as it was
                assert abs(base) < 1e-3 and "%" not in text
            if key == "cost_eur":
                change = kpis["rule"][key] - kpis["none"][key]
                assert text.startswith(f"{'+' if change > 0 else '-'}{abs(change):,.2f}")
        power = _figure(browser, "fig-power-0")
        names = [t["name"] for t in power["traces"]]
        assert "none: PV" in names and "rule: PV" in names
        faults = [s for s in power["shapes"] if (s["name"] or "").startswith("fault:")]
        assert len(faults) == 1  # the runs share it: shaded once
        differ = browser.evaluate(
            "Array.from(document.querySelectorAll('#sec-summary tr.differs th'))"
            ".map(th => th.innerText)"
        )
        assert differ == ["Controller"]
        assert "rule: battery (> 0 discharging)" in names
        assert "sec-soc" in _sections(browser)


def test_a_campaign_report_uses_the_same_page(browser, tmp_path):
    from twin.campaign import report

    rows = []
    for i, (kind, start) in enumerate(
        [("pv_shading", "2h"), ("pv_shading", "12h"), ("grid_outage", "2h")]
    ):
        rows.append(
            {
                "point_id": f"p{i}",
                "run_id": f"r{i}",
                "reference": "ref",
                "status": "finished",
                "error": None,
                "fault.kind": kind,
                "fault.target": "pv_roof",
                "fault.start": start,
                "fault.severity": 0.5,
                "delta_cost_scored_eur": float(i),
                "delta_unserved_kwh": 0.0,
                "delta_voltage_violations": 0.0,
                "recovery_h": 1.0 + i,
            }
        )
    rows.append({"point_id": "ref", "run_id": "r", "reference": None, "status": "finished"})
    rows.append({"point_id": "bad", "run_id": "b", "reference": None, "status": "failed"})
    rows[-1]["error"] = "RunError: boom"
    pd.DataFrame(rows).to_parquet(tmp_path / "summary.parquet")
    page, worst = report(tmp_path, top=2)
    assert list(worst["point_id"]) == ["p2", "p1"]
    assert _open(browser, page) == 4  # a heat map per delta
    sections = _sections(browser)
    assert sections == ["sec-heatmaps", "sec-worst", "sec-failed", "absent"]
    absent = browser.evaluate("document.getElementById('absent-build').innerText")
    assert "no economics or carbon figures" in absent  # no sizing axes: named, not drawn
    heat = _figure(browser, "fig-heatmaps-0")
    assert heat["traces"][0]["n"] == 2  # fault kinds
    failed = browser.evaluate("document.getElementById('sec-failed').innerText")
    assert "RunError: boom" in failed


def test_component_kpi_keys_get_labels_with_units():
    assert kpi_spec("device_fallback_steps_pv_roof").label == (
        "Device pv_roof: steps on the model (no fresh measurement)"
    )
    assert kpi_spec("residual_max_abs_bess_soc").label == "Largest residual, bess SoC"
    assert kpi_spec("cost_scored_no_wear_eur").label == "Scored cost without battery wear (EUR)"
    assert kpi_spec("e_import_kwh").label == "Energy imported (kWh)"


def test_a_hil_run_shows_device_vs_twin_residuals_and_quality(mosquitto, browser, tmp_path):
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    raw = yaml.safe_load((Path(__file__).parents[2] / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["broker"] = mosquitto.url
    raw["start"], raw["duration"] = "2016-06-21T09:00:00-04:00", "6h"
    result = run_scenario(validate_scenario(raw), tmp_path / "hil")  # starts `twin device`
    _invoke("report", str(result.out_dir))
    _open(browser, result.out_dir / "report.html")
    assert "sec-measured" in _sections(browser)
    titles = browser.evaluate(
        "Array.from(document.querySelectorAll('#sec-measured .plotly-graph-div'))"
        ".map(g => [g.id, g._fullLayout.title.text, g._fullData.map(t => t.name)])"
    )
    by_title = {title: (div, names) for div, title, names in titles}
    assert by_title["bess power (kW): device vs twin"][1] == ["device bess", "twin bess"]
    assert (
        "bess SoC: device vs twin" in by_title
        and "bess temperature (degC): device vs twin" in by_title
    )
    residuals = by_title["Residuals, device - twin"][1]
    assert {"bess power (kW)", "bess SoC", "bess temperature (degC)"} == set(residuals)
    quality = next(
        names for title, (_, names) in by_title.items() if title.startswith("Data quality")
    )
    assert quality == ["bess quality"]
    labels = browser.evaluate(
        "Array.from(document.querySelectorAll('#sec-kpis tr td:first-child'))"
        ".map(td => td.innerText)"
    )
    assert "Device bess: steps on the model (no fresh measurement)" in labels
    assert not [label for label in labels if SNAKE.match(label)]


def test_an_ev_depot_page_draws_ev_charging(browser, tmp_path):
    out = tmp_path / "ev"
    scenario = str(Path(__file__).parents[2] / "scenarios" / "ev_depot.yaml")
    _invoke("run", scenario, "--out", str(out), "--no-progress", "--set", "duration=1d")
    _invoke("report", str(out))
    _open(browser, out / "report.html")
    assert "sec-ev" in _sections(browser)
    titles = []
    for i in range(3):
        figure = _figure(browser, f"fig-ev-{i}")
        assert figure["traces"] and all(t["n"] > 0 for t in figure["traces"])
        titles.append(
            browser.evaluate(f"document.getElementById('fig-ev-{i}')._fullLayout.title.text")
        )
    assert titles == ["EV charging per charger", "Connected EVs", "EV energy"]
    summary = browser.evaluate("document.getElementById('sec-summary').innerText")
    assert "EV park" in summary and "charger(s) of" in summary


def test_runs_compared_get_distinct_labels(compared, tmp_path):
    from twin.reporting.runs import label_runs, load_run

    runs = compared / "runs"
    pair = [load_run(runs / "none"), load_run(runs / "rule")]
    label_runs(pair)
    assert [r.label for r in pair] == ["none", "rule"]  # the same scenario: controllers
    same = [load_run(runs / "rule"), load_run(runs / "rule")]
    label_runs(same)
    assert [r.label for r in same] == ["rule [rule] #1", "rule [rule] #2"]
    page = tmp_path / "same.html"
    _invoke("report", str(runs / "rule"), str(runs / "rule"), "--out", str(page))
    assert "change vs rule [rule] #1" in page.read_text()


def test_economics_and_carbon_sections_show_what_the_run_computed(raw, browser, tmp_path):
    study = {k: v for k, v in raw.items() if k != "faults"}
    study["economics"] = {
        "battery_eur_kwh": 350,
        "battery_eur_kw": 150,
        "pv_eur_kwp": 900,
        "lifetime_years": 20,
        "discount_rate": 0.05,
    }
    study["carbon"] = {"intensity_g_kwh": 380}
    run = tmp_path / "run"
    _invoke("run", str(_write(tmp_path / "study.yaml", study)), "--out", str(run))
    _invoke("report", str(run))
    _open(browser, run / "report.html")
    sections = _sections(browser)
    assert "sec-economics" in sections and "sec-carbon" in sections
    kpis = json.loads((run / "kpis.json").read_text())
    text = browser.evaluate("document.getElementById('sec-economics').innerText")
    assert f"{kpis['npv_eur']:,.0f}" in text
    cash = _figure(browser, "fig-economics-0")
    flows = json.loads((run / "run.json").read_text())["economics_cash_flows"]
    assert cash["traces"][0]["n"] == len(flows) > study["economics"]["lifetime_years"]
    emissions = _figure(browser, "fig-carbon-0")
    assert emissions["traces"][0]["n"] == 2  # the run and its reference


def test_a_missing_chromium_fails_unless_skipped_on_purpose(monkeypatch):
    monkeypatch.delenv(SKIP_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="chromium missing"):
        require_chromium(None)
    monkeypatch.setenv(SKIP_ENV, "1")
    with pytest.raises(pytest.skip.Exception):
        require_chromium(None)
    assert require_chromium("/usr/bin/chromium") == "/usr/bin/chromium"
