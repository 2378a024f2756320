"""The report's time figures built from synthetic runs: DST, gaps, fault labels, size."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from twin.reporting.figures import Trace, time_figure
from twin.reporting.observed import health_section
from twin.reporting.outcome import RunOutcome
from twin.reporting.runs import RunData

NEW_YORK = "America/New_York"


def synthetic_run(
    start: str, periods: int, freq: str = "15min", tz: str = NEW_YORK, label: str = "run"
) -> RunData:
    """A finished run of one PV plant's power, its times in UTC."""
    times = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), periods=periods, freq=freq)
    results = pd.DataFrame(
        {
            "time": times,
            "asset": "pv_roof",
            "kind": "pv",
            "quantity": "p_kw",
            "source": "twin",
            "value": np.sin(np.arange(periods) / 10.0),
        }
    )
    scenario = {"name": label, "site": {"tz": tz}, "assets": {}}
    run = RunData(
        run_dir=Path("/nonexistent"),
        meta={"scenario": scenario, "run_id": label},
        outcome=RunOutcome("finished", "run finished"),
        kpis={},
        results=results,
    )
    run.label = label
    return run


def _pv(run: RunData) -> list[Trace]:
    return [Trace("pv", run.series("pv", "p_kw")["pv_roof"])]


# --- 8: daylight saving time ---------------------------------------------------------------


def test_the_autumn_dst_change_never_puts_two_instants_at_one_x():
    run = synthetic_run("2016-11-06T00:00:00-04:00", 4 * 24)  # first Sunday of November
    x = pd.DatetimeIndex(time_figure([run], "PV", "kW", _pv).data[0].x)
    assert x.is_unique and x.is_monotonic_increasing and len(x) == 96
    assert run.time_title == f"{NEW_YORK} standard time, UTC-5 h, no DST shift"
    assert "standard time" in time_figure([run], "PV", "kW", _pv).layout.xaxis.title.text


def test_a_run_within_one_offset_keeps_wall_clock_time():
    run = synthetic_run("2016-06-21T00:00:00-04:00", 8)
    x = pd.DatetimeIndex(time_figure([run], "PV", "kW", _pv).data[0].x)
    assert x[0] == pd.Timestamp("2016-06-21 00:00") and run.time_title == NEW_YORK


def test_health_over_the_dst_change_keeps_both_real_hours():
    run = synthetic_run("2016-11-06T00:00:00-04:00", 4 * 6)
    utc = pd.date_range("2016-11-06T05:00Z", "2016-11-06T06:45Z", freq="15min")  # 1:00 twice
    run.health = pd.DataFrame(
        {"time": utc, "asset": "bess", "kind": "battery", "quantity": "h", "value": 0.5}
    )
    run.health.loc[4:, "value"] = 0.9  # the second 1:00 hour is healthier
    (trace,) = health_section([run]).figures[0].data
    assert list(trace.y) == [0.5] * 4 + [0.9] * 4


# --- 12: gaps ---------------------------------------------------------------------------------


def test_a_gap_breaks_the_line():
    run = synthetic_run("2016-06-21T00:00:00-04:00", 8)
    run.results.loc[3, "value"] = np.nan
    trace = time_figure([run], "PV", "kW", _pv).data[0]
    assert len(trace.x) == 8 and np.isnan(trace.y[3])


# --- 16: fault labels in a comparison ---------------------------------------------------------


def _faulted(label: str, faults: list[dict]) -> RunData:
    run = synthetic_run("2016-06-21T00:00:00-04:00", 8, label=label)
    run.faults = faults
    return run


def test_a_fault_only_one_run_had_is_labelled_with_that_run():
    fault = {
        "kind": "pv_shading",
        "target": "pv_roof",
        "start": pd.Timestamp("2016-06-21T04:30Z"),
        "end": pd.Timestamp("2016-06-21T05:00Z"),
    }
    runs = [_faulted("clean", []), _faulted("shaded", [fault])]
    texts = [s.name for s in time_figure(runs, "PV", "kW", _pv).layout.shapes]
    assert texts == ["fault (shaded): pv_shading pv_roof"]
    both = [_faulted("a", [fault]), _faulted("b", [fault])]
    texts = [s.name for s in time_figure(both, "PV", "kW", _pv).layout.shapes]
    assert texts == ["fault: pv_shading pv_roof"]


# --- 9: a year on one page -------------------------------------------------------------------

SERIES = [
    ("pv", "pv_roof", "p_kw"),
    ("pv", "pv_roof", "p_avail_kw"),
    ("load", "load_0", "p_kw"),
    ("battery", "bess", "p_kw"),
    ("battery", "bess", "soc"),
    ("grid", "poc", "p_kw"),
]


def _year_run() -> RunData:
    """A year of 15-minute steps (35,136 per series) of the site's main series."""
    run = synthetic_run("2016-01-01T00:00:00-05:00", 4 * 24 * 366)
    one = run.results
    rng = np.random.default_rng(0)
    frames = [
        one.assign(kind=k, asset=a, quantity=q, value=rng.normal(size=len(one)))
        for k, a, q in SERIES
    ]
    run.results = pd.concat(frames, ignore_index=True)
    run.meta["scenario"]["assets"] = {"battery": [{"name": "bess", "soc_min": 0.1, "soc_max": 0.9}]}
    return run


def test_a_year_page_stays_small_and_keeps_every_extreme():
    from twin.reporting.page import Section, _plotly_js, render_page
    from twin.reporting.series import power_section, pv_section, soc_section

    run = _year_run()
    sections = [
        Section("power", "Power flows", power_section),
        Section("pv", "PV per plant", pv_section),
        Section("soc", "Battery state of charge", soc_section),
    ]
    page = render_page([run], "a year", "synthetic", sections)
    data = len(page.encode()) - len(_plotly_js().encode())
    assert data < 1_500_000, f"{data:,} bytes besides plotly.js"  # was ~50 MB unreduced
    fig = pv_section([run]).figures[0]
    assert {trace.type for trace in fig.data} == {"scattergl"}
    assert "min and max of 2,000 time slices" in fig.layout.title.text
    delivered = run.series("pv", "p_kw")["pv_roof"]
    (drawn,) = [t for t in fig.data if t.name == "pv_roof delivered"]
    assert max(drawn.y) == delivered.max() and min(drawn.y) == delivered.min()
    assert len(drawn.y) <= 4_000


# --- 18: one set of KPI labels ----------------------------------------------------------------


def test_what_if_sections_use_the_reports_kpi_labels():
    from twin.reporting.labels import kpi_spec
    from twin.reporting.whatif import kpi_table

    assert importlib.util.find_spec("twin.whatif.labels") is None
    html = kpi_table({"co2_stored_energy_kg": 1.5}, ["co2_stored_energy_kg"])
    assert kpi_spec("co2_stored_energy_kg").label in html
    assert "co2_stored_energy_kg" not in html  # words, never the raw key
