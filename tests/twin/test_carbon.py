import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.twin.whatif_support import day, whatif_registered  # noqa: F401 - the fixture
from twin.errors import ScenarioError
from twin.reporting.whatif import carbon_section
from twin.run import run_scenario
from twin.scenario import validate_scenario
from twin.whatif.carbon import CARBON_KPIS, emissions_kg, intensity

STEPS = 96  # the demo day at 15 min
exchange = arrays(float, STEPS, elements=st.floats(-500, 500))
intensities = arrays(float, STEPS, elements=st.floats(0, 2000))


@given(grid=exchange, grid_i=intensities)
def test_credit_for_exports_never_adds_emissions(grid, grid_i):
    credited = emissions_kg(grid, grid_i, 0.25, True)
    plain = emissions_kg(grid, grid_i, 0.25, False)
    assert credited <= plain + 1e-9 and plain >= 0
    imports_only = np.clip(grid, 0, None)
    assert emissions_kg(imports_only, grid_i, 0.25, True) == pytest.approx(plain)


@given(grid=exchange, grid_i=intensities, scale=st.floats(0, 10))
def test_emissions_scale_with_the_intensity(grid, grid_i, scale):
    assert emissions_kg(grid, grid_i * scale, 0.25, False) == pytest.approx(
        scale * emissions_kg(grid, grid_i, 0.25, False), abs=1e-6
    )


def test_emissions_by_hand():
    # 10 kW imported for 1 h at 500 g/kWh, 4 kW exported for 1 h at 250 g/kWh
    grid, grid_i = np.array([10.0, -4.0]), np.array([500.0, 250.0])
    assert emissions_kg(grid, grid_i, 1.0, False) == pytest.approx(5.0)
    assert emissions_kg(grid, grid_i, 1.0, True) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="2 steps of exchange but 3"):
        emissions_kg(grid, np.ones(3), 1.0, False)


def _csv(tmp_path, values, start="2016-06-21T00:00:00-04:00", freq="1h"):
    times = pd.date_range(start, periods=len(values), freq=freq)
    path = tmp_path / "intensity.csv"
    pd.DataFrame({"time": times.map(pd.Timestamp.isoformat), "g_co2_kwh": values}).to_csv(
        path, index=False
    )
    return str(path)


def test_intensity_series_holds_each_value_until_the_next(tmp_path):
    values = [300.0] * 12 + [500.0] * 12
    scenario = validate_scenario(day(carbon={"intensity_csv": _csv(tmp_path, values)}))
    steps = intensity(scenario)
    assert steps.shape == (STEPS,)
    assert (steps[:48] == 300).all() and (steps[48:] == 500).all()
    constant = validate_scenario(day(carbon={"intensity_g_kwh": 250}))
    assert (intensity(constant) == 250).all()


@pytest.mark.parametrize(
    ("values", "start", "message"),
    [
        ([300.0] * 23 + [3000.0], "2016-06-21T00:00:00-04:00", "line"),
        ([300.0] * 24, "2016-06-21T06:00:00-04:00", "cover"),
        (["x"] + [300.0] * 23, "2016-06-21T00:00:00-04:00", "not a finite number"),
    ],
)
def test_bad_intensity_files_are_named(tmp_path, values, start, message):
    path = _csv(tmp_path, values, start)
    with pytest.raises(ScenarioError) as info:
        validate_scenario(day(carbon={"intensity_csv": path}))
    (problem,) = [p for p in info.value.problems if p.path == "carbon.intensity_csv"]
    assert message in problem.message


def test_intensity_file_needs_its_column(tmp_path):
    path = tmp_path / "intensity.csv"
    path.write_text("time,gco2\n2016-06-21T00:00:00-04:00,300\n")
    with pytest.raises(ScenarioError, match="expected columns 'time' and 'g_co2_kwh'"):
        validate_scenario(day(carbon={"intensity_csv": str(path)}))


def test_run_with_an_intensity_series_and_export_credit(tmp_path):
    values = [300.0] * 12 + [500.0] * 12
    carbon = {"intensity_csv": _csv(tmp_path, values), "credit_exports": True}
    scenario = validate_scenario(day(carbon=carbon))
    result = run_scenario(scenario, tmp_path / "run", compare_uncontrolled=False)
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    ref = pd.read_parquet(tmp_path / "run" / "reference" / "results.parquet")

    def poc(frame):
        rows = frame[(frame["kind"] == "grid") & (frame["quantity"] == "p_kw")]
        return rows[rows["source"] == "twin"].sort_values("time")["value"].to_numpy()

    steps = np.repeat([300.0, 500.0], 48)
    run_kg = (poc(results) * steps).sum() * 0.25 / 1000  # exports credited
    run_kg -= result.kpis["e_battery_delta_kwh"] * 400.0 / 1000  # stored, at the mean
    ref_kg = (poc(ref) * steps).sum() * 0.25 / 1000
    kpis = result.kpis
    assert kpis["co2_kg"] == pytest.approx(run_kg) and (poc(results) < 0).any()
    assert kpis["co2_avoided_kg"] == pytest.approx(ref_kg - run_kg)
    assert kpis["carbon_intensity_mean_g_kwh"] == pytest.approx(400.0)
    assert "npv_eur" not in kpis  # no economics section, no money figures
    assert set(CARBON_KPIS) <= set(kpis)

    html, (figure,) = carbon_section(result.metadata, kpis)
    assert "Avoided emissions vs reference (kgCO2)" in html
    assert result.metadata["reference_run_id"] in html
    assert list(figure.data[0].y) == pytest.approx(
        [kpis["co2_year_kg"], kpis["co2_year_kg"] + kpis["co2_avoided_year_kg"]]
    )
    assert carbon_section({}, {}) == ("", [])
