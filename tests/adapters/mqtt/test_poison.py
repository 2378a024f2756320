"""Payloads that would kill or skew a run are counted, logged and never applied."""

import json

import numpy as np

from tests.adapters.mqtt.test_bridge import SITE, Feeder, _series
from twin.results import as_operated, load_results, wide
from twin.run import run_scenario

ts = '"2016-06-21T{:02d}:{:02d}:00-04:00"'.format
POISON = {
    20: b"[" * 1000 + b"]" * 1000,  # 2 KB of nesting: RecursionError in json
    30: ('{"ts": ' + ts(7, 30) + ', "value": 1e308}').encode(),
    40: ('{"ts": ' + ts(10, 0) + ', "value": 45000}').encode(),  # 1,000 x the rating
    50: ('{"ts": ' + ts(12, 30) + ', "value": 60}').encode(),  # 60 kW from 45 kWp
    60: b'{"value": 1, "pad": "' + b"x" * 5000 + b'"}',
    70: b'{"value": ' + b"9" * 400 + b"}",  # too large for a float
}


def test_poisonous_payloads_fall_back_to_the_model(mosquitto, tmp_path, day_scenario, caplog):
    device = {
        "asset": "pv_roof",
        "timeout_s": 1.0,
        "stale_after": "1min",
        "max_fallback": 0.1,
    }
    scenario = day_scenario(mqtt={"broker": mosquitto.url, "devices": [device]})
    clock = scenario.clock()
    fed = {k: POISON.get(k, 10.0) for k in range(clock.n_steps)}
    feeder = Feeder(mosquitto.url, f"field/{SITE}/pv_roof/p_kw", fed, clock)
    feeder.start()
    result = run_scenario(scenario, tmp_path / "run")
    feeder.join(10)
    feeder.link.close()

    assert result.metadata["status"] == "finished"
    results = load_results(result.out_dir)
    quality = _series(results, "pv", "pv_roof", "quality", "real")
    assert list(np.flatnonzero(quality == 0.0)) == sorted(POISON)
    operated = wide(as_operated(results), "pv", "p_kw")["pv_roof"].to_numpy()
    twin = _series(results, "pv", "pv_roof", "p_kw", "twin")
    np.testing.assert_allclose(operated[sorted(POISON)], twin[sorted(POISON)])
    assert operated.max() <= 45.0
    stats = result.metadata["mqtt"]["devices"]["pv_roof"]
    assert stats["rejected"] == {"too_large": 1, "malformed": 2, "implausible": 3}
    assert stats["malformed"] == {f"field/{SITE}/pv_roof/p_kw": 6}
    logged = [r.getMessage() for r in caplog.records if "payload #" in r.getMessage()]
    assert any("implausible payload" in m and "outside the plausible" in m for m in logged)
    assert result.kpis["balance_residual_kwh"] < 1e-6
    assert json.loads((result.out_dir / "run.json").read_text())["status"] == "finished"
