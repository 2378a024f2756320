"""Observation v2: dimensionless, so one policy serves sites of any size and price level."""

import numpy as np
import pytest

from twin.rl.domain import Domain, DomainConfig, Site
from twin.rl.env import MicrogridEnv


@pytest.fixture(scope="module")
def domain():
    return Domain.training(DomainConfig(grids=("1-LV-rural1--0-sw",)), year_days=8)


def scaled(site: Site, k: float, m: float) -> Site:
    """Battery energy and power, PV and loads times k; every price and cost times m."""
    batteries = [
        {
            **b,
            "e_kwh": b["e_kwh"] * k,
            "p_max_kw": b["p_max_kw"] * k,
            "r_th_k_per_kw": b["r_th_k_per_kw"] / k,
            "c_th_kj_per_k": b["c_th_kj_per_k"] * k,
            "replacement_eur_kwh": b["replacement_eur_kwh"] * m,
        }
        for b in site.batteries
    ]
    tariff = {
        **site.tariff,
        "import_eur_kwh": site.tariff["import_eur_kwh"] * m,
        "export_eur_kwh": site.tariff["export_eur_kwh"] * m,
        "periods": [
            {**p, "import_eur_kwh": p["import_eur_kwh"] * m} for p in site.tariff["periods"]
        ],
    }
    pv = tuple(s * k for s in site.pv_scale)
    return Site(site.base, pv, site.load_scale * k, batteries, tariff, "scaled")


@pytest.mark.parametrize("base", ["rule", "plan"])
def test_scaling_the_site_and_its_prices_leaves_the_observation_unchanged(domain, base):
    rng = np.random.default_rng(21)
    env = MicrogridEnv(domain, base=base)
    actions = np.random.default_rng(3).uniform(-1, 1, (96, 1)).astype(np.float32)
    checked = 0
    for _ in range(3):
        site = domain.sample(rng)
        while site.tariff["periods"] == []:  # a tariff with a spread: prices matter
            site = domain.sample(rng)
        day = int(rng.integers(0, 7))
        runs = []
        for k, m in ((1.0, 1.0), (3.0, 0.5)):
            options = {"site": scaled(site, k, m), "day": day, "forecast_seed": 5}
            obs, _ = env.reset(options=options)
            seen = [obs]
            for action in actions:
                obs, _, _, truncated, _ = env.step(action)
                seen.append(obs)
            runs.append(np.array(seen))
        np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5, atol=1e-5)
        checked += 1
        assert np.abs(runs[0]).max() < 20  # normalised: no raw kW or EUR
    assert checked == 3
