import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.diagnostics.alerts import AlertBook, AlertSettings
from twin.diagnostics.catalogue import Asset, Catalogue, Sensor
from twin.diagnostics.diagnosis import RuleDiagnoser
from twin.diagnostics.engine import Engine
from twin.diagnostics.expected import Expectations
from twin.diagnostics.features import feature_names
from twin.diagnostics.indices import INDEX_NAMES

N_STEPS = 16
T0 = pd.Timestamp("2016-06-21T12:00Z")
SENSORS = (
    Sensor("pv_a", "pv", "p_kw"),
    Sensor("pv_a", "pv", "t_cell_c"),
    Sensor("bess", "battery", "p_kw"),
    Sensor("bess", "battery", "soc"),
    Sensor("bess", "battery", "t_c"),
    Sensor("load_0", "load", "p_kw"),
    Sensor("load_0", "load", "q_kvar"),
    Sensor("bus_0", "bus", "v_pu"),
    Sensor("bus_1", "bus", "v_pu"),
    Sensor("line_0", "line", "loading_pct"),
    Sensor("poc", "grid", "p_kw"),
    Sensor("poc", "grid", "q_kvar"),
    Sensor("poc", "grid", "f_hz"),
)
BATTERY = dict(
    e_kwh=60.0,
    p_max_kw=20.0,
    eta_ch=0.95,
    eta_dis=0.95,
    soc_min=0.1,
    soc_max=0.9,
    soh_init=1.0,
    t_ambient_c=25.0,
    r_th_k_per_kw=10.0,
    c_th_kj_per_k=200.0,
    t_derate_c=45.0,
    t_trip_c=55.0,
)


def _catalogue() -> Catalogue:
    assets = {
        "pv_a": Asset("pv_a", "pv", {"p_ac_kw": 40.0, "gamma_pdc": -0.0037}),
        "bess": Asset("bess", "battery", BATTERY),
        "load_0": Asset("load_0", "load", {"p_kw": 5.0, "q_kvar": 2.0}),
        "bus_0": Asset("bus_0", "bus"),
        "bus_1": Asset("bus_1", "bus"),
        "line_0": Asset("line_0", "line", {"from_bus": "bus_0", "to_bus": "bus_1"}),
        "poc": Asset("poc", "grid", {"v_nom_pu": 1.0, "slack_bus": "bus_0", "f_nom_hz": 50.0}),
    }
    noise = {
        "power": (0.5, 0.01, 0.01),
        "voltage": (0.1, 0.0, 0.0001),
        "loading": (0.25, 0.05, 0.1),
        "soc": (0.0, 0.002, 0.001),
        "temperature": (0.25, 0.15, 0.1),
        "frequency": (0.0, 0.005, 0.001),
    }
    return Catalogue(SENSORS, assets, 900, imperfection=noise)


def _expectations() -> Expectations:
    values = np.full((N_STEPS, len(SENSORS)), np.nan)
    values[:, 0] = 20.0
    values[:, 5] = -3.0
    values[:, 6] = -1.0
    values[:, 7] = 1.0
    values[:, 12] = 50.0
    t_model = np.full_like(values, np.nan)
    t_model[:, 0] = 40.0
    return Expectations(values, t_model)


def _healthy(k: int) -> dict:
    rng = np.random.default_rng(k)
    row = dict(
        zip(
            [s.key for s in SENSORS],
            [
                20.0,
                40.0,
                0.0,
                0.5,
                25.0,
                -3.0,
                -1.0,
                1.0,
                0.99,
                5.0,
                -17.0,
                1.0,
                50.0,
            ],
            strict=True,
        )
    )
    row = {key: v + rng.normal(0, 1e-3) for key, v in row.items()}
    row[("bess", "controller", "p_set_kw")] = 0.0
    return row


def test_healthy_steps_raise_nothing_and_features_have_the_published_names():
    engine = Engine(_catalogue(), _expectations())
    engine.collect_features = True
    for k in range(N_STEPS):
        out = engine.step(k, T0 + pd.Timedelta(minutes=15 * k), _healthy(k))
        assert not out.opened
    assert engine.finish() == []
    assert engine.feature_names()["pv"] == feature_names("pv")
    assert out.features["pv"].shape == (1, len(feature_names("pv")))


def test_one_open_alert_per_asset_then_cleared():
    engine = Engine(_catalogue(), _expectations())
    opened = []
    for k in range(N_STEPS):
        row = _healthy(k)
        if 2 <= k < 6:
            row[("pv_a", "pv", "p_kw")] = 10.0  # half the expected
            row[("poc", "grid", "p_kw")] += 10.0  # and the POC imports it: physical
        out = engine.step(k, T0 + pd.Timedelta(minutes=15 * k), row)
        opened += out.opened
    alerts = engine.finish()
    assert [a.alert_id for a in opened] == ["pv_a-1"]
    assert [(a.asset, a.kind, a.status) for a in alerts] == [("pv_a", "pv_shading", "cleared")]
    assert alerts[0].start == T0 + pd.Timedelta(minutes=30)
    # ended at the first healthy step: the residual back and its EWMA within its limit
    # (lambda = 0.3 forgets a 16-sigma shift in about five steps)
    back = T0 + pd.Timedelta(minutes=90)
    assert back < alerts[0].end <= back + pd.Timedelta(minutes=15 * 6)


reading = st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.sampled_from([0.0, 1.0, 50.0]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(reading, min_size=len(SENSORS) + 1, max_size=len(SENSORS) + 1),
        min_size=1,
        max_size=N_STEPS,
    )
)
def test_any_readings_give_indices_in_unit_interval_or_nan(rows):
    engine = Engine(_catalogue(), _expectations())
    for k, values in enumerate(rows):
        x, cmd = np.array(values[:-1]), np.array(values[-1:])
        out = engine.step_array(k, T0 + pd.Timedelta(minutes=15 * k), x, cmd)
        finite = out.indices[np.isfinite(out.indices)]
        assert np.all((finite >= 0.0) & (finite <= 1.0))
    for alert in engine.finish():
        assert 0.0 <= alert.severity <= 1.0 and 0.0 <= alert.confidence <= 1.0


def test_alert_book_dedups_and_clears_after_healthy_steps():
    book = AlertBook(["a", "b"], ["pv", "load"], AlertSettings(clear_steps=2), "residual")
    diagnose = lambda a: ("anomaly", 0.3)  # noqa: E731
    evidence = lambda a: (["x"], 0.5)  # noqa: E731
    t = [T0 + pd.Timedelta(minutes=15 * k) for k in range(6)]
    fire = [
        np.array([True, False]),
        np.array([True, False]),
        np.array([False, False]),
        np.array([False, False]),
        np.array([True, False]),
        np.array([False, False]),
    ]
    events = [book.update(k, t[k], f, ~f, diagnose, evidence) for k, f in enumerate(fire)]
    assert [len(o) for o, _, _ in events] == [1, 0, 0, 0, 1, 0]
    assert [len(c) for _, _, c in events] == [0, 0, 0, 1, 0, 0]
    first, second = book.all()
    assert (first.alert_id, first.start, first.end) == ("a-1", t[0], t[2])
    assert (second.alert_id, second.status) == ("a-2", "open")


def test_rules_name_the_physical_signatures():
    rules = RuleDiagnoser()

    def kind(asset_kind, **values):
        names = feature_names(asset_kind)
        x = np.array([values.get(n.replace(":", "_"), np.nan) for n in names])
        return rules.diagnose(asset_kind, x, names)[0]

    assert kind("pv", pv_performance=0.0, converter_availability=0.0) == "inverter_trip"
    assert kind("pv", pv_performance=0.7, converter_availability=1.0) == "pv_shading"
    assert kind("pv", stale_p_kw=1.0) == "sensor_stuck"
    assert kind("battery", cusum_t_c=30.0) == "battery_cooling_failure"
    assert kind("battery", soh_drop=0.2) == "capacity_fade"
    assert kind("battery", soc_jump=1.0) == "soc_misreport"
    assert kind("load", cusum_p_kw=-30.0, balance_share=0.0) == "load_spike"
    assert kind("load", cusum_p_kw=30.0, balance_share=1.0) == "sensor_drift"
    assert kind("grid", cusum_f_hz=-20.0) == "frequency_event"
    assert kind("grid", cusum_v_pu=-20.0) == "voltage_sag"
    assert kind("grid", outage=1.0) == "grid_outage"
    assert kind("line", dead=1.0) == "line_outage"
    assert kind("bus", gap_v_pu=1.0) == "sensor_dropout"


def _trained_scorer():
    from twin.diagnostics.learned import LearnedAnomalyScorer, fit

    engine = Engine(_catalogue(), _expectations())
    engine.collect_features = True
    parts = []
    for k in range(N_STEPS):
        out = engine.step(k, T0 + pd.Timedelta(minutes=15 * k), _healthy(k))
        for kind, x in out.features.items():
            part = pd.DataFrame(x, columns=engine.feature_names()[kind])
            part["asset_kind"], part["label"], part["fault_free"] = kind, "none", True
            parts.append(part)
    names = engine.feature_names()
    model = fit(pd.concat(parts, ignore_index=True), names, sensors=[], training={"rows": 1})
    return LearnedAnomalyScorer(model)


class _Counting:
    def __init__(self, scorer):
        self.scorer, self.calls = scorer, []

    def scores(self, kind, x, names):
        self.calls.append(kind)
        return self.scorer.scores(kind, x, names)


def test_learned_anomaly_score_fires_after_two_high_steps_on_loads_and_batteries():
    scorer = _Counting(_trained_scorer())
    engine = Engine(_catalogue(), _expectations(), scorer=scorer)
    for k in range(N_STEPS):
        assert not engine.step(k, T0 + pd.Timedelta(minutes=15 * k), _healthy(k)).opened
    assert scorer.calls == ["battery", "load"] * N_STEPS  # once per kind and step
    engine = Engine(_catalogue(), _expectations(), scorer=scorer)
    opened = {}
    for k in range(N_STEPS):
        row = _healthy(k)
        if k >= 4:
            row[("load_0", "load", "q_kvar")] = -1.2  # a small shift only the model sees
        for alert in engine.step(k, T0 + pd.Timedelta(minutes=15 * k), row).opened:
            opened.setdefault(alert.asset, k)
    assert engine._anomalous[engine.assets.index("load_0")] >= 2
    assert opened.get("load_0") is not None
    plain = Engine(_catalogue(), _expectations())
    assert plain.scorer is None


def test_no_battery_power_sensor_no_energy_evidence():
    # without the battery's power the temperature, SoC and capacity expectations are
    # unknown: a warm, working battery is no cooling failure
    sensors = tuple(s for s in SENSORS if s.key != ("bess", "battery", "p_kw"))
    full = _catalogue()
    catalogue = Catalogue(sensors, full.assets, 900, imperfection=full.imperfection)
    keep = [i for i, s in enumerate(SENSORS) if s in sensors]
    exp = _expectations()
    engine = Engine(catalogue, Expectations(exp.values[:, keep], exp.t_model[:, keep]))
    for k in range(N_STEPS):
        row = _healthy(k)
        row[("bess", "battery", "t_c")] = 35.0 + 0.5 * k  # heated by power nobody measures
        row[("bess", "battery", "soc")] = 0.5 - 0.02 * k
        row[("bess", "controller", "p_set_kw")] = np.nan
        assert not engine.step(k, T0 + pd.Timedelta(minutes=15 * k), row).opened
    assert engine.finish() == []


def test_a_sensor_the_state_estimate_flags_opens_a_sensor_alert_until_it_is_consistent():
    engine = Engine(_catalogue(), _expectations())
    opened = []
    for k in range(N_STEPS):
        engine.set_inconsistent(
            {"line_0": ["p_from_kw"], "unknown_asset": ["v_pu"]} if 2 <= k < 5 else {}
        )
        out = engine.step(k, T0 + pd.Timedelta(minutes=15 * k), _healthy(k))
        opened += out.opened
        dq = out.indices[engine.assets.index("line_0"), list(INDEX_NAMES).index("data_quality")]
        assert (dq == 0.0) == (2 <= k < 5)
    assert [a.alert_id for a in opened] == ["line_0-1"]
    (alert,) = engine.finish()
    assert (alert.asset, alert.kind, alert.status) == ("line_0", "sensor_drift", "cleared")
    assert "inconsistent:p_from_kw" in alert.evidence
    assert alert.start == T0 + pd.Timedelta(minutes=30)
