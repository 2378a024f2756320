"""Domain randomisation: seeded, within its ranges, held-out cases outside the samples."""

import numpy as np
import pytest

from twin.rl.domain import Domain, DomainConfig
from twin.rl.env import MicrogridEnv

SMALL = DomainConfig(grids=("1-LV-rural1--0-sw",))


@pytest.fixture(scope="module")
def domain():
    return Domain.training(SMALL, year_days=6)


def drawn(domain, seed, n=5):
    env = MicrogridEnv(domain)
    env.reset(seed=seed)
    sites = [(env.site, env.day)]
    for _ in range(n - 1):
        env.reset()
        sites.append((env.site, env.day))
    return [
        (s.pv_scale, s.load_scale, s.batteries[0]["e_kwh"], s.tariff["import_eur_kwh"], d)
        for s, d in sites
    ]


def test_sites_are_reproducible_by_seed_and_differ_across_seeds(domain):
    assert drawn(domain, 4) == drawn(domain, 4)
    assert drawn(domain, 4) != drawn(domain, 5)


def test_sampled_sites_stay_in_the_configured_ranges(domain):
    rng = np.random.default_rng(0)
    base = domain.bases[0]
    kinds = set()
    for _ in range(200):
        site = domain.sample(rng)
        (bat,) = site.batteries
        mean_load = base.mean_load_kw * site.load_scale
        days = bat["e_kwh"] / (24 * mean_load)
        assert SMALL.battery_days_of_load[0] <= days <= SMALL.battery_days_of_load[1]
        hours = bat["e_kwh"] / bat["p_max_kw"]
        assert SMALL.storage_hours[0] <= hours <= SMALL.storage_hours[1]
        assert bat["soc_min"] <= bat["soc_init"] <= bat["soc_max"]
        assert sum(1 for s in site.pv_scale if s > 0) == 1  # one plant orientation
        kwp = sum(s * u["p_dc_kw"] for s, u in zip(site.pv_scale, base.pv_units, strict=True))
        low, high = SMALL.pv_kwp_per_mean_load_kw
        assert low <= kwp / mean_load <= high
        kinds.add(len(site.tariff["periods"]))
        export = site.tariff["export_eur_kwh"] / site.tariff["import_eur_kwh"]
        assert SMALL.export_factor[0] <= export <= SMALL.export_factor[1]
    assert kinds == {0, 1, 2}  # flat, two- and three-level tariffs all drawn


def test_the_configuration_digest_changes_with_a_range():
    other = DomainConfig(storage_hours=(1.0, 5.0))
    assert other.digest() != DomainConfig().digest()
    assert DomainConfig().as_dict()["grids"] == list(DomainConfig().grids)
