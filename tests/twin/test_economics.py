import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.twin.whatif_support import day, whatif_registered  # noqa: F401 - the fixture
from twin.campaign import execute, expand, load_campaign
from twin.campaign import report as campaign_report
from twin.errors import ScenarioError
from twin.reporting.what_to_build import what_to_build_figure
from twin.reporting.whatif import economics_section
from twin.run import run_scenario
from twin.rundir import claim_run_dir
from twin.scenario import validate_scenario
from twin.whatif import finance
from twin.whatif.campaign_chart import (
    WHAT_TO_BUILD_KPIS,
    CampaignChartError,
    what_to_build_table,
)
from twin.whatif.component import WhatIfComponent
from twin.whatif.economics import ECONOMICS_KPIS
from twin.whatif.reference import year_factor

rates = st.floats(0.0, 0.5)
lifetimes = st.integers(1, 60)
money = st.floats(1.0, 1e7)

ECONOMICS = {
    "battery_eur_kwh": 400,
    "battery_eur_kw": 100,
    "pv_eur_kwp": 900,
    "lifetime_years": 20,
    "discount_rate": 0.05,
    "om_eur_year": 200,
}


# --- finance maths --------------------------------------------------------------------------


@given(capex=money, rate=rates, years=lifetimes)
def test_npv_of_zero_savings_is_minus_capex(capex, rate, years):
    flows = finance.cash_flows(capex, 0.0, years)
    assert finance.net_present_value(flows, rate) == pytest.approx(-capex)


@given(rate=rates, years=lifetimes)
def test_crf_repays_one_euro_over_the_lifetime(rate, years):
    crf = finance.capital_recovery_factor(rate, years)
    repaid = sum(crf / (1 + rate) ** t for t in range(1, years + 1))
    assert repaid == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rate", "years", "expected"),
    [(0.0, 20, 1 / 20), (0.1, 1, 1.1), (0.05, 20, 0.0802425872), (0.08, 10, 0.1490294887)],
)
def test_crf_analytic_cases(rate, years, expected):
    assert finance.capital_recovery_factor(rate, years) == pytest.approx(expected, rel=1e-9)


def test_crf_refuses_nonsense():
    with pytest.raises(ValueError, match="years > 0"):
        finance.capital_recovery_factor(0.05, 0)


@given(capex=money, saving=money, more=st.floats(0.0, 1e7), rate=rates, years=lifetimes)
def test_payback_comes_no_later_with_more_savings(capex, saving, more, rate, years):
    assert finance.simple_payback_years(capex, saving + more) <= finance.simple_payback_years(
        capex, saving
    )
    less = finance.discounted_payback_years(finance.cash_flows(capex, saving, years), rate)
    most = finance.discounted_payback_years(finance.cash_flows(capex, saving + more, years), rate)
    assert most <= less


@given(capex=money, saving=money, rate=rates, years=lifetimes)
def test_discounting_never_shortens_the_payback(capex, saving, rate, years):
    flows = finance.cash_flows(capex, saving, years)
    discounted = finance.discounted_payback_years(flows, rate)
    simple = finance.simple_payback_years(capex, saving)
    assert discounted >= simple - 1e-9 or (math.isinf(discounted) and simple > 0)
    if simple <= years and rate == 0:
        assert discounted == pytest.approx(simple)


def test_payback_cases():
    assert finance.simple_payback_years(1000, 250) == 4
    assert math.isinf(finance.simple_payback_years(1000, -5))
    flows = finance.cash_flows(1000, 400, 10)
    assert finance.discounted_payback_years(flows, 0.0) == pytest.approx(2.5)
    # never within the lifetime
    assert math.isinf(finance.discounted_payback_years(finance.cash_flows(1000, 10, 5), 0.0))


def test_replacements_and_their_value():
    assert finance.replacement_times(8, 10, 20) == [8, 18]
    assert finance.replacement_times(8, 10, 18) == [8]  # not bought at the very end
    assert finance.replacement_times(math.inf, math.inf, 20) == []
    flows = finance.cash_flows(0.0, 0.0, 3, [(1.5, 100.0)])
    assert finance.net_present_value(flows, 0.1) == pytest.approx(-100 / 1.1**1.5)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "path", "message"),
    [
        ({"economics": {"battery_eur_kwh": -1}}, "economics.battery_eur_kwh", "greater than"),
        ({"economics": {"discount_rate": 2}}, "economics.discount_rate", "less than"),
        ({"economics": {"lifetime_years": 0}}, "economics.lifetime_years", "greater than"),
        ({"economics": {"capex": 1}}, "economics.capex", ""),
        (
            {"economics": {"reference_run": "/nonexistent/run"}},
            "economics.reference_run",
            "not a run",
        ),
        ({"carbon": {}}, "carbon", "exactly one of"),
        ({"carbon": {"intensity_g_kwh": 300, "intensity_csv": "x.csv"}}, "carbon", "exactly one"),
        ({"carbon": {"intensity_g_kwh": 9000}}, "carbon.intensity_g_kwh", "less than"),
        ({"carbon": {"intensity_g_kwh": True}}, "carbon.intensity_g_kwh", "a number"),
        ({"carbon": {"intensity_csv": "/nonexistent.csv"}}, "carbon.intensity_csv", "not found"),
    ],
)
def test_invalid_sections_name_their_field(sections, path, message):
    with pytest.raises(ScenarioError) as info:
        validate_scenario(day(**sections))
    problems = [p for p in info.value.problems if p.path == path]
    assert problems, info.value.problems
    assert message in problems[0].message


def test_reference_run_must_have_finished(tmp_path):
    for name in ("kpis.json", "results.parquet"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "run.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(ScenarioError, match="did not finish"):
        validate_scenario(day(economics={"reference_run": str(tmp_path)}))


def test_a_new_run_clears_the_old_reference(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "run.json").write_text("{}")
    with claim_run_dir(tmp_path):
        assert not (tmp_path / "reference").exists()


# --- a run with both sections ---------------------------------------------------------------


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    out = tmp_path_factory.mktemp("whatif") / "run"
    raw = day(economics=ECONOMICS, carbon={"intensity_g_kwh": 400})
    scenario = validate_scenario(raw)
    return scenario, run_scenario(scenario, out, compare_uncontrolled=False)


def _twin(run_dir, kind, quantity):
    """A quantity's twin values in time order, read straight from the Parquet file."""
    results = pd.read_parquet(run_dir / "results.parquet")
    rows = results[(results["kind"] == kind) & (results["quantity"] == quantity)]
    return rows[rows["source"] == "twin"].sort_values("time")["value"].to_numpy()


def test_run_economics_kpis_equal_the_hand_computation(studied):
    scenario, result = studied
    kpis, meta = result.kpis, result.metadata
    assert meta["status"] == "finished" and meta["reference_status"] == "finished"
    reference = json.loads((result.out_dir / "reference" / "kpis.json").read_text())
    ref_run = json.loads((result.out_dir / "reference" / "run.json").read_text())
    assert (
        ref_run["parent_run_id"]
        == meta["run_id"]
        == json.loads((result.out_dir / "run.json").read_text())["run_id"]
    )
    ref_dir = result.out_dir / "reference"
    assert _twin(ref_dir, "battery", "soh").size == _twin(ref_dir, "pv", "p_kw").size == 0
    assert ref_run["status"] == "finished"

    # one day -> 365 of them
    assert year_factor(scenario) == pytest.approx(365.0)
    capex = 400 * 60 + 100 * 20 + 900 * (45 + 30)
    assert kpis["capex_eur"] == pytest.approx(capex)
    # energy less the stored energy's value x 365, the demand charge x 12 months
    demand = scenario.tariff.demand_charge_eur_kw

    def year(k):
        peak = demand * k["peak_import_kw"]
        return (k["cost_scored_no_wear_eur"] - peak) * 365 + peak * 12

    saving = year(reference) - year(kpis)
    assert kpis["saving_year_eur"] == pytest.approx(saving)
    assert kpis["opex_year_eur"] == pytest.approx(year(kpis))
    assert reference["terminal_value_eur"] == 0 != kpis["terminal_value_eur"]

    soh_end = _twin(result.out_dir, "battery", "soh")[-1]
    fade_year = (1.0 - soh_end) * 365
    life = (1.0 - 0.8) / fade_year
    assert kpis["battery_years_to_eol"] == pytest.approx(life)
    times = [life * k for k in range(1, 20) if life * k < 20]
    replacement = sum(300 * 60 / 1.05**t for t in times)
    assert times and kpis["replacement_pv_eur"] == pytest.approx(replacement)

    r, n, net = 0.05, 20, saving - 200
    annuity = (1 - (1 + r) ** -n) / r
    assert kpis["npv_eur"] == pytest.approx(-capex + net * annuity - replacement)
    crf = r * (1 + r) ** n / ((1 + r) ** n - 1)
    assert kpis["annualised_cost_eur_year"] == pytest.approx((capex + replacement) * crf + 200)
    flows = [(0, -capex)] + [(t, net) for t in range(1, 21)] + [(t, -300 * 60) for t in times]
    assert kpis["payback_simple_years"] == pytest.approx(
        finance.discounted_payback_years(flows, 0.0), nan_ok=True
    )
    stored = json.loads((result.out_dir / "kpis.json").read_text())
    assert all(stored[key] == pytest.approx(kpis[key], nan_ok=True) for key in ECONOMICS_KPIS)


def test_run_carbon_kpis_equal_the_hand_computation(studied):
    _, result = studied
    poc = _twin(result.out_dir, "grid", "p_kw")
    ref_poc = _twin(result.out_dir / "reference", "grid", "p_kw")
    run_kg = np.clip(poc, 0, None).sum() * 0.25 * 400 / 1000
    run_kg -= result.kpis["e_battery_delta_kwh"] * 400 / 1000  # the stored energy's carbon
    ref_kg = np.clip(ref_poc, 0, None).sum() * 0.25 * 400 / 1000
    kpis = result.kpis
    assert kpis["co2_kg"] == pytest.approx(run_kg)
    assert kpis["co2_reference_kg"] == pytest.approx(ref_kg)
    assert kpis["co2_avoided_kg"] == pytest.approx(ref_kg - run_kg) and ref_kg > run_kg > 0
    assert kpis["co2_avoided_year_kg"] == pytest.approx((ref_kg - run_kg) * 365)


def test_a_given_reference_run_gives_the_same_figures(studied, tmp_path):
    scenario, result = studied
    given = dict(ECONOMICS, reference_run=str(result.out_dir / "reference"))
    again = run_scenario(
        validate_scenario(day(economics=given, carbon={"intensity_g_kwh": 400})),
        tmp_path / "run",
        compare_uncontrolled=False,
    )
    assert not (tmp_path / "run" / "reference").exists()  # nothing made beside it
    assert again.metadata["reference_run_id"] == result.metadata["reference_run_id"]
    for key in ("npv_eur", "co2_avoided_kg", "saving_year_eur"):
        assert again.kpis[key] == pytest.approx(result.kpis[key])


def test_a_reference_of_other_steps_is_refused(studied):
    _, result = studied
    given = dict(ECONOMICS, reference_run=str(result.out_dir / "reference"))
    with pytest.raises(ScenarioError) as info:
        validate_scenario(day(economics=given, duration="12h"))
    (problem,) = info.value.problems
    assert problem.path == "economics.reference_run"
    assert "+ 86400 s in steps of 900 s; expected the same steps" in problem.message


def test_a_failed_reference_fails_the_run_check():
    (check,) = WhatIfComponent().checks().values()
    assert check(None, {"reference_status": "finished"}, {}) == []
    (failure,) = check(None, {"reference_status": "failed", "reference_run_id": "x-1"}, {})
    assert failure.check == "reference_run" and "x-1 ended 'failed'" in failure.message


def test_economics_section_for_the_report(studied):
    _, result = studied
    html, figures = economics_section(result.metadata, result.kpis)
    assert "Net present value vs reference (EUR)" in html
    assert f"{result.kpis['npv_eur']:,.0f}" in html
    (figure,) = figures
    trace = figure.data[0]
    assert trace.x[0] == 0 and trace.y[0] == pytest.approx(-result.kpis["capex_eur"])
    assert trace.y[-1] == pytest.approx(result.kpis["npv_eur"])  # the NPV is where it ends
    assert economics_section({}, {"cost_eur": 1.0}) == ("", [])


# --- what should I build: the campaign chart -------------------------------------------------

BATTERY, PV = "assets.battery[0].e_kwh", "assets.pv[0].p_dc_kw"


def test_campaign_chart_shows_the_campaign_table(tmp_path):
    shipped = load_campaign(ROOT / "scenarios" / "campaigns" / "what_to_build.yaml")
    assert len(shipped.runs) == 9 and set(shipped.axes) >= {BATTERY, PV}
    small = dataclasses.replace(shipped, axes={**shipped.axes, BATTERY: [30, 120], PV: [20, 90]})
    small.runs = expand(small)
    assert len(small.runs) == 4
    summary = execute(small, tmp_path / "camp", executor="threads", n_workers=1, progress=False)
    assert (summary["status"] == "finished").all()
    figure = what_to_build_figure(summary, BATTERY, PV)
    assert [trace.name for trace in figure.data] == list(WHAT_TO_BUILD_KPIS)
    for trace in figure.data:
        for i, pv in enumerate(trace.y):
            for j, battery in enumerate(trace.x):
                row = summary[(summary[BATTERY] == float(battery)) & (summary[PV] == float(pv))]
                assert trace.z[i][j] == pytest.approx(row[trace.name].item())
    # a bigger PV plant avoids more emissions at either battery size
    table = what_to_build_table(summary, BATTERY, PV, "co2_avoided_year_kg")
    assert (table.loc[90] > table.loc[20]).all()
    # `twin campaign --report` of a what-if campaign (no faults): the chart on its page
    page, worst = campaign_report(tmp_path / "camp")
    html = page.read_text()
    assert 'id="sec-build"' in html and 'id="fig-build-0"' in html
    assert 'id="absent-heatmaps"' in html and worst.empty


def test_campaign_chart_refuses_what_it_cannot_draw():
    summary = pd.DataFrame(
        {BATTERY: [30, 30], PV: [20, 20], "seed": [1, 2], "status": "finished", "npv_eur": [1, 2]}
    )
    with pytest.raises(CampaignChartError, match="another axis varies"):
        what_to_build_table(summary, BATTERY, PV, "npv_eur")
    with pytest.raises(CampaignChartError, match="no column 'co2_kg'"):
        what_to_build_table(summary.iloc[:1], BATTERY, PV, "co2_kg")
    failed = summary.iloc[:1].assign(status="failed")
    assert what_to_build_table(failed, BATTERY, PV, "npv_eur").isna().all().all()


def test_the_page_states_the_assumptions(studied):
    from twin.reporting.runs import load_run
    from twin.reporting.summary import summary_rows

    _, result = studied
    html, _ = economics_section(result.metadata, result.kpis)
    assert "<h4>Assumptions</h4>" in html
    for text in ("400 EUR/kWh", "20 years", "5 % per year", "200 EUR/year", "x 365 = 365"):
        assert text in html, text
    assert "without: battery bess, pv pv_roof, pv pv_barn, controller rule" in html
    assert "monthly" in html and "x 12" in html
    rows = dict(summary_rows(load_run(result.out_dir)))
    assert any("Carbon intensity: constant 400" in line for line in rows["What-if assumptions"])


def test_a_run_that_crashed_before_its_economics_says_so(studied, tmp_path):
    import shutil

    from twin.reporting.runs import load_run
    from twin.reporting.whatif import economics_report

    _, result = studied
    copy = tmp_path / "run"
    shutil.copytree(result.out_dir, copy)
    (copy / "kpis.json").unlink()
    meta = json.loads((copy / "run.json").read_text())
    meta.update(status="failed", error="after the last step: boom")
    (copy / "run.json").write_text(json.dumps(meta))
    absent = economics_report([load_run(copy)])
    assert "ended before its economics figures were computed" in absent.note
    assert "no economics section" not in absent.note


def _sized_and_faulted(duplicate: bool = False) -> pd.DataFrame:
    """A campaign over two sizes with a fault at each point (and its fault-free twin)."""
    rows = []
    for battery in (30, 60):
        for pv in (20, 45):
            npv = battery * 10 - pv * 100.0
            free = {BATTERY: battery, PV: pv, "npv_eur": npv, "co2_avoided_year_kg": pv * 9.0}
            rows.append({**free, "run_id": f"r{battery}{pv}", "reference": None})
            rows.append(
                {
                    **free,
                    "run_id": f"f{battery}{pv}",
                    "reference": f"r{battery}{pv}",
                    "fault.kind": "pv_shading",
                    "fault.start": "2h",
                    "delta_cost_scored_eur": 1.0,
                }
            )
    summary = pd.DataFrame(rows).assign(status="finished", error=None, point_id=range(len(rows)))
    if duplicate:  # another numeric axis the chart cannot show varies between two points
        summary = pd.concat([summary, summary.iloc[:1]], ignore_index=True)
    return summary


def test_campaign_report_of_sizes_and_faults_draws_the_fault_free_points(tmp_path):
    _sized_and_faulted().to_parquet(tmp_path / "summary.parquet")
    page, worst = campaign_report(tmp_path)
    html = page.read_text()
    assert 'id="fig-build-0"' in html and 'id="absent-build"' not in html
    assert len(worst) == 4


def test_a_chart_that_cannot_be_drawn_leaves_the_rest_of_the_page(tmp_path):
    _sized_and_faulted(duplicate=True).to_parquet(tmp_path / "summary.parquet")
    page, _ = campaign_report(tmp_path)
    html = page.read_text()
    assert 'id="absent-build"' in html and "another axis varies" in html
    assert 'id="sec-heatmaps"' in html


def test_what_to_build_colours_are_centred_on_zero():
    figure = what_to_build_figure(_sized_and_faulted().query("reference.isna()"), BATTERY, PV)
    assert all(trace.zmid == 0 for trace in figure.data)


def test_a_crashed_reference_fails_its_check_but_keeps_the_run(tmp_path, monkeypatch):
    import twin.run
    from twin.errors import RunError
    from twin.run import RunCheckError

    real = twin.run.run_scenario

    def crashing_reference(scenario, out_dir, **kwargs):
        if kwargs.get("parent_run_id"):  # the reference made beside the run
            raise RunError("reference exploded")
        return real(scenario, out_dir, **kwargs)

    monkeypatch.setattr(twin.run, "run_scenario", crashing_reference)
    scenario = validate_scenario(day(economics=ECONOMICS, duration="2h"))
    with pytest.raises(RunCheckError) as info:
        real(scenario, tmp_path / "run", compare_uncontrolled=False)
    (failure,) = info.value.failures
    assert failure.check == "reference_run" and "reference exploded" in failure.message
    kpis = json.loads((tmp_path / "run" / "kpis.json").read_text())
    assert "cost_eur" in kpis and "npv_eur" not in kpis
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["reference_status"] == "crashed"


def test_economics_of_a_run_that_failed_its_checks_are_marked(studied, tmp_path):
    import shutil

    from twin.reporting.runs import load_run
    from twin.reporting.whatif import economics_report

    _, result = studied
    copy = tmp_path / "run"
    shutil.copytree(result.out_dir, copy)
    meta = json.loads((copy / "run.json").read_text())
    failed = [{"check": "energy_balance", "message": "residual 3 kWh"}]
    meta.update(status="failed", checks={"passed": [], "failed": failed}, error="x")
    (copy / "run.json").write_text(json.dumps(meta))
    content = economics_report([load_run(copy)])
    assert "Not to be trusted" in content.html and "energy_balance" in content.html
    assert "Not to be trusted" not in economics_report([load_run(result.out_dir)]).html


def test_a_reference_of_another_site_is_refused(studied):
    _, result = studied
    given = dict(ECONOMICS, reference_run=str(result.out_dir / "reference"))
    raw = day(economics=given)
    raw["tariff"] = {**raw["tariff"], "import_eur_kwh": 0.99}
    raw["assets"]["load"] = [{"from_grid": True}, {"bus": 5, "p_kw": 3.0}]
    with pytest.raises(ScenarioError) as info:
        validate_scenario(raw)
    (problem,) = info.value.problems
    assert problem.path == "economics.reference_run"
    assert "its tariff, assets.load differ" in problem.message
