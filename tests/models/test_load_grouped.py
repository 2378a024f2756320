"""Loads grouped by profile equal the per-unit computation to the bit (1e-12)."""

import numpy as np
import pandas as pd

from models.base import Clock
from models.gridnet import load_tables
from models.load import PROFILE_LIMITS, Load
from models.profiles import (
    MissingColumnError,
    csv_series_means,
    simbench_profile_table,
    year_profile_means,
)

SPEC = "1-MV-rural--0-sw"  # ~100 loads sharing a few profiles


def per_unit(units, clock, tz, grid):
    """The step means unit by unit, as the model computed them before grouping."""
    p_pu = np.ones((clock.n_steps, len(units)))
    q_pu = np.ones((clock.n_steps, len(units)))
    table = simbench_profile_table(grid)
    for i, unit in enumerate(units):
        profile = unit["profile"]
        if profile is None:
            continue
        if profile.endswith(".csv"):
            p_pu[:, i] = csv_series_means(profile, "p_pu", clock, PROFILE_LIMITS)
            try:
                q_pu[:, i] = csv_series_means(profile, "q_pu", clock, PROFILE_LIMITS)
            except MissingColumnError:
                q_pu[:, i] = p_pu[:, i]
            continue
        means = year_profile_means(
            table[[f"{profile}_pload", f"{profile}_qload"]].to_numpy(), clock, tz
        )
        p_pu[:, i], q_pu[:, i] = means[:, 0], means[:, 1]
    return p_pu, q_pu


def test_grouped_profiles_equal_the_per_unit_means(tmp_path):
    loads = load_tables(SPEC).load
    assert loads["profile"].nunique() < len(loads) / 4  # profiles are shared
    csv_pq, csv_p = tmp_path / "pq.csv", tmp_path / "p.csv"
    times = pd.date_range("2016-03-26T00:00Z", periods=200, freq="30min")
    rng = np.random.default_rng(5)
    pd.DataFrame(
        {"time": times, "p_pu": rng.uniform(0, 2, 200), "q_pu": rng.uniform(0, 1, 200)}
    ).to_csv(csv_pq, index=False)
    pd.DataFrame({"time": times, "p_pu": rng.uniform(0, 2, 200)}).to_csv(csv_p, index=False)
    units = [
        {
            "name": f"load_{i}",
            "p_kw": row.p_mw * 1000,
            "q_kvar": row.q_mvar * 1000,
            "profile": row.profile,
        }
        for i, row in enumerate(loads.itertuples())
    ]
    for j, profile in enumerate([str(csv_pq), None, str(csv_p), str(csv_pq)]):
        units.insert(
            3 * j, {"name": f"extra_{j}", "p_kw": 2.0 + j, "q_kvar": 0.5, "profile": profile}
        )
    tz = "Europe/Berlin"
    clock = Clock(pd.Timestamp("2016-03-26T20:00", tz=tz), 600, 24 * 6 + 7)  # across DST
    model = Load(units, clock, {"site": {"tz": tz}, "grid": SPEC})
    p_pu, q_pu = per_unit(units, clock, tz, SPEC)
    nominal = model.exogenous()
    np.testing.assert_allclose(nominal["p_kw"], -p_pu * model.param("p_kw"), rtol=0, atol=1e-12)
    np.testing.assert_allclose(nominal["q_kvar"], -q_pu * model.param("q_kvar"), rtol=0, atol=1e-12)


def test_each_profile_is_averaged_once_for_all_its_loads(monkeypatch):
    import models.load

    calls = []

    def counted(values, clock, tz):
        calls.append(values.shape)
        return year_profile_means(values, clock, tz)

    monkeypatch.setattr(models.load, "year_profile_means", counted)
    loads = load_tables(SPEC).load
    units = [
        {"name": f"l{i}", "p_kw": 1.0, "q_kvar": 0.1, "profile": profile}
        for i, profile in enumerate(loads["profile"])
    ]
    Load(units, Clock(pd.Timestamp("2016-06-01", tz="UTC"), 900, 8), {"grid": SPEC})
    assert calls == [(35136, 2 * loads["profile"].nunique())]
