"""PV step means come from the disk cache: equal to a fresh precompute, keyed right."""

import os
import subprocess
import sys

import numpy as np
import pytest

from models import pv as pv_module
from models.diskcache import CACHE_ENV, code_digest
from models.pv import PVPlant, precompute_key
from models.weather import resolve_weather_path
from tests.conftest import ROOT, SITE, make_clock
from tests.models.test_pv import DEFAULTS, PLANTS

UNITS = [{**DEFAULTS, **plant, "name": f"pv{i}"} for i, plant in enumerate(PLANTS)]
CONTEXT = {"site": SITE, "weather": "723170TYA.CSV"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(cache) -> list:
    return sorted((cache / "pv").iterdir()) if (cache / "pv").exists() else []


@pytest.mark.parametrize("step_s", [900, 7200])  # sub-steps for steps over an hour
def test_cached_step_means_equal_a_fresh_precompute(cache, step_s):
    clock = make_clock(step_s=step_s, n=86400 * 2 // step_s)
    cold = PVPlant(UNITS, clock, CONTEXT)
    warm = PVPlant(UNITS, clock, CONTEXT)
    assert len(entries(cache)) == 1
    fresh = cold._step_means(clock)  # the pvlib chain, computed now
    for model in (cold, warm):
        p_avail, t_cell = model.series()
        np.testing.assert_allclose(p_avail, fresh[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(t_cell, fresh[1], rtol=0, atol=1e-12)
    noon = clock.time_at(12 * 3600)
    inputs = {"derate": np.ones(3)}
    out = warm.step(noon, step_s, inputs)
    np.testing.assert_array_equal(out["p_kw"], fresh[0][12 * 3600 // step_s])


def test_the_key_moves_with_weather_site_clock_units_pvlib_and_code(cache, monkeypatch, tmp_path):
    clock = make_clock()
    base = precompute_key(UNITS, clock, CONTEXT)
    assert code_digest("pv", "weather", "base") in base
    changed = [
        precompute_key(UNITS, clock, {**CONTEXT, "weather": "703165TY.csv"}),
        precompute_key(UNITS, clock, {**CONTEXT, "site": {**SITE, "lat": 36.2}}),
        precompute_key(UNITS, clock, {**CONTEXT, "site": {**SITE, "tz": "UTC"}}),
        precompute_key(UNITS, make_clock(n=95), CONTEXT),
        precompute_key(UNITS, make_clock(step_s=300, n=288), CONTEXT),
        precompute_key(UNITS, make_clock(start="2016-06-22T00:00:00-04:00"), CONTEXT),
        precompute_key([{**UNITS[0], "tilt_deg": 31.0}, *UNITS[1:]], clock, CONTEXT),
        precompute_key(UNITS[:2], clock, CONTEXT),
    ]
    assert len({base, *changed}) == len(changed) + 1
    weather = tmp_path / "w.csv"
    weather.write_bytes(resolve_weather_path("723170TYA.CSV").read_bytes())
    same = precompute_key(UNITS, clock, {**CONTEXT, "weather": str(weather)})
    assert same == base  # keyed by content, not by name
    weather.write_bytes(weather.read_bytes().replace(b"GREENSBORO", b"GREENSBORX"))
    os.utime(weather, ns=(1, 1))
    assert precompute_key(UNITS, clock, {**CONTEXT, "weather": str(weather)}) != base
    monkeypatch.setattr(pv_module, "package_versions", lambda *names: ("pvlib==99",))
    assert precompute_key(UNITS, clock, CONTEXT) != base
    monkeypatch.undo()
    monkeypatch.setenv(CACHE_ENV, str(cache))
    PVPlant(UNITS, clock, CONTEXT)
    monkeypatch.setattr(pv_module, "code_digest", lambda *modules: "code=edited")
    PVPlant(UNITS, clock, CONTEXT)
    assert len(entries(cache)) == 2


def test_a_warm_plant_imports_no_pvlib_until_weather_is_fed(cache):
    PVPlant(UNITS, make_clock(n=4), CONTEXT)
    probe = (
        "import sys\nimport numpy as np\n"
        "from models.pv import PVPlant\nfrom tests.conftest import make_clock\n"
        f"UNITS, CONTEXT = {UNITS!r}, {CONTEXT!r}\n"
        "model = PVPlant(UNITS, make_clock(n=4), CONTEXT)\n"
        "now = make_clock(n=4).time_at(0)\n"
        "model.step(now, 900, model.default_inputs())\n"
        "print('pvlib' in sys.modules)\n"
        "model.step(now, 900, {**model.default_inputs(), 'ghi': np.full(3, 100.0)})\n"
        "print('pvlib' in sys.modules)\n"
    )
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["False", "True"]
