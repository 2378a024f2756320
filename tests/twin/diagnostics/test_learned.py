"""Learned diagnostics on synthetic feature tables: fit, score, save, reload, refuse."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from twin.diagnostics.learned import (
    LearnedAnomalyScorer,
    LearnedDiagnoser,
    ModelFeaturesError,
    ModelFilesError,
    ModelSensorsError,
    ModelVersionError,
    fit,
    load,
    save,
    sensor_types,
)
from twin.errors import TwinError

FEATURES = {"pv": ["pi", "resid", "gap"], "battery": ["soc_err", "t_excess"]}
SENSORS = ["battery.soc", "battery.t_c", "pv.p_kw"]
MEAN = {
    ("pv", "none"): [1.0, 0.0, 0.0],
    ("pv", "pv_shading"): [0.6, -4.0, 0.0],
    ("pv", "inverter_trip"): [0.0, -9.0, 0.0],
    ("battery", "none"): [0.0, 0.0],
    ("battery", "soc_misreport"): [0.3, 0.0],
    ("battery", "battery_cooling_failure"): [0.0, 6.0],
}


def table(n, seed, fault_free):
    rng = np.random.default_rng(seed)
    parts = []
    for (kind, label), mean in MEAN.items():
        if fault_free and label != "none":
            continue
        x = np.asarray(mean) + rng.normal(0, [0.03] + [0.5] * (len(mean) - 1), (n, len(mean)))
        part = pd.DataFrame(x, columns=FEATURES[kind])
        part["asset_kind"], part["label"], part["fault_free"] = kind, label, fault_free
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def model():
    frame = pd.concat([table(300, 0, True), table(150, 1, False)], ignore_index=True)
    return fit(frame, FEATURES, sensors=SENSORS, training={"fingerprint": "abc", "rows": 1})


def test_anomaly_score_separates_faults_from_normal(model):
    fresh = table(200, 2, False)
    for kind in FEATURES:
        rows = fresh[fresh["asset_kind"] == kind]
        score = model.anomaly_score(kind, rows[FEATURES[kind]].to_numpy())
        normal = rows["label"].to_numpy() == "none"
        assert np.mean(score[normal] > 1.0) <= 0.03
        assert np.mean(score[~normal] > 1.0) >= 0.97
    # a missing feature sits at the centre; an unknown asset kind scores NaN
    assert model.anomaly_score("pv", [[np.nan, 0.0, 0.0]])[0] < 1.0
    assert np.isnan(model.anomaly_score("load", [[1.0]])).all()


def test_classifier_names_the_fault_kind(model):
    fresh = table(100, 3, False)
    for kind in FEATURES:
        rows = fresh[fresh["asset_kind"] == kind]
        names, confidence = model.classify(kind, rows[FEATURES[kind]].to_numpy())
        assert np.mean(np.array(names) == rows["label"].to_numpy()) >= 0.95
        assert ((confidence > 0) & (confidence <= 1)).all()
    assert model.classify("load", [[0.0]]) == (["none"], pytest.approx(np.ones(1)))


def test_saved_model_reloads_and_predicts_the_same(model, tmp_path):
    save(model, tmp_path / "m")
    document = json.loads((tmp_path / "m" / "model.json").read_text())
    assert document["features"] == FEATURES
    assert document["sensors"] == SENSORS
    assert document["training"]["fingerprint"] == "abc"
    assert {"scikit-learn", "numpy", "skops", "twin"} <= set(document["versions"])
    assert document["created"].endswith("+00:00")
    again = load(tmp_path / "m", features=FEATURES)
    fresh = table(50, 4, False)
    for kind in FEATURES:
        x = fresh[fresh["asset_kind"] == kind][FEATURES[kind]].to_numpy()
        np.testing.assert_array_equal(model.anomaly_score(kind, x), again.anomaly_score(kind, x))
        names, p = model.classify(kind, x)
        names2, p2 = again.classify(kind, x)
        assert names == names2
        np.testing.assert_array_equal(p, p2)


def catalogue(*keys):
    return SimpleNamespace(
        sensors=[SimpleNamespace(asset=a, kind=k, quantity=q) for a, k, q in keys]
    )


def test_sensor_types_are_per_asset_kind():
    cat = catalogue(
        ("pv_roof", "pv", "p_kw"), ("pv_barn", "pv", "p_kw"), ("bess", "battery", "soc")
    )
    assert sensor_types(cat.sensors) == ["battery.soc", "pv.p_kw"]
    assert sensor_types([("bus_1", "bus", "v_pu")]) == ["bus.v_pu"]


def test_load_refuses_what_it_cannot_use(model, tmp_path):
    path = save(model, tmp_path / "m")
    # another grid with the same kinds of sensors is fine; a PV-only site too
    load(path, catalogue(("pv_x", "pv", "p_kw"), ("b", "battery", "soc"), ("b", "battery", "t_c")))
    load(path, catalogue(("pv_x", "pv", "p_kw")))
    with pytest.raises(ModelSensorsError, match=r"unknown sensors \['ev\.p_kw'\]") as err:
        load(path, catalogue(("pv_x", "pv", "p_kw"), ("park", "ev", "p_kw")))
    assert "sensors" in err.value.path and "pv.p_kw" in err.value.expected
    with pytest.raises(ModelSensorsError, match=r"missing sensors \['battery\.t_c'\]"):
        load(path, catalogue(("b", "battery", "soc")))
    with pytest.raises(ModelFeaturesError, match="features.pv") as err:
        load(path, features={**FEATURES, "pv": ["pi", "resid"]})
    assert err.value.expected.startswith("the engine's features")
    with pytest.raises(ModelFeaturesError, match="features.load"):
        load(path, features={**FEATURES, "load": ["x"]})


def test_load_refuses_another_sklearn_major_and_missing_files(model, tmp_path):
    path = save(model, tmp_path / "m")
    document = json.loads((path / "model.json").read_text())
    document["versions"]["scikit-learn"] = "0.24.2"
    (path / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelVersionError, match="versions.scikit-learn.*0.24.2"):
        load(path)
    path = save(model, tmp_path / "n")
    (path / "classifier_pv.skops").unlink()
    with pytest.raises(ModelFilesError, match="classifier_pv.skops: missing"):
        load(path)
    with pytest.raises(ModelFilesError, match="model.json: missing"):
        load(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match="unreadable") as err:
        load(tmp_path / "bad")
    assert isinstance(err.value, TwinError)


def test_too_few_fault_free_rows_is_a_named_error():
    frame = table(1, 0, True)
    with pytest.raises(TwinError, match=r"training data \(battery\).*expected at least 2"):
        fit(frame, FEATURES, sensors=SENSORS, training={})


class Rules:
    def diagnose(self, asset_kind, features, names):
        return "rule_said_so", 0.4


def test_engine_protocols_backed_by_the_model(model):
    scorer, diagnoser = LearnedAnomalyScorer(model), LearnedDiagnoser(model, fallback=Rules())
    names = FEATURES["pv"]
    assert scorer.score("pv", np.array([1.0, 0.0, 0.0]), names) < 0.5
    assert scorer.score("pv", np.array([0.0, -9.0, 0.0]), names) > 0.5
    # the engine's names in another order are put in the model's order
    shuffled = ["gap", "pi", "resid"]
    assert scorer.score("pv", np.array([0.0, 0.0, -9.0]), shuffled) == pytest.approx(
        scorer.score("pv", np.array([0.0, -9.0, 0.0]), names)
    )
    kind, confidence = diagnoser.diagnose("pv", np.array([0.0, -9.0, 0.0]), names)
    assert kind == "inverter_trip" and 0.5 < confidence <= 1.0
    # an open alert never gets "none": the most probable fault kind, or the rules when
    # that is improbable
    normal = np.array([1.0, 0.0, 0.0])
    assert diagnoser.diagnose("pv", normal, names) == ("rule_said_so", 0.4)
    assert LearnedDiagnoser(model).diagnose("pv", normal, names)[0] in (
        "pv_shading",
        "inverter_trip",
    )
    assert diagnoser.diagnose("load", np.zeros(1), ["x"]) == ("rule_said_so", 0.4)
    assert LearnedDiagnoser(model).diagnose("load", np.zeros(1), ["x"]) == ("anomaly", 0.3)
    assert scorer.score("load", np.zeros(1), ["x"]) == 0.0


def test_a_feature_never_measured_does_not_break_the_fit():
    frame = pd.concat([table(100, 0, True), table(50, 1, False)], ignore_index=True)
    frame["gap"] = np.nan  # e.g. a sensor class no run of the campaign has
    model = fit(frame, FEATURES, sensors=SENSORS, training={})
    assert model.anomaly_score("pv", [[1.0, 0.0, np.nan]])[0] < 1.0
    names, _ = model.classify("pv", [[0.0, -9.0, np.nan]])
    assert names == ["inverter_trip"]
    assert model.columns("pv") == [0, 1]


class Sure:
    def diagnose(self, asset_kind, features, names):
        return "rules_answer", 0.9


def test_unsure_classifier_defers_to_the_rules_and_batch_scores(model):
    names = FEATURES["pv"]
    ambiguous = np.array([0.3, -6.5, 0.0])  # between shading and a trip
    _, p = model.classify("pv", [ambiguous])
    picky = LearnedDiagnoser(model, fallback=Sure(), min_confidence=float(p[0]) + 0.01)
    assert picky.diagnose("pv", ambiguous, names) == ("rules_answer", 0.9)
    # rules sure of a signature are not overruled (physics first) ...
    assert LearnedDiagnoser(model, fallback=Sure()).diagnose("pv", ambiguous, names) == (
        "rules_answer",
        0.9,
    )
    # ... unless trusted less than the classifier
    relaxed = LearnedDiagnoser(model, fallback=Sure(), min_confidence=0.0, trust_rules=1.01)
    assert relaxed.diagnose("pv", ambiguous, names)[0] in ("pv_shading", "inverter_trip")
    scorer = LearnedAnomalyScorer(model)
    x = np.array([[1.0, 0.0, 0.0], [0.0, -9.0, 0.0], [0.6, -4.0, 0.0]])
    batch = scorer.scores("pv", x, names)
    assert batch == pytest.approx([scorer.score("pv", row, names) for row in x])
    assert scorer.scores("pv", x[:, [2, 0, 1]], ["gap", "pi", "resid"]) == pytest.approx(batch)
    assert (scorer.scores("load", x, names) == 0).all()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(files=["x"]), "files"),
        (lambda d: d["files"].update(nodot="x"), "files.nodot"),
        (lambda d: d["files"].update({"classifier.pv": "../../run.json"}), "files.classifier.pv"),
        (lambda d: d.update(versions=[]), "versions"),
        (lambda d: d.update(training={"step_s": "fast"}), "training.step_s"),
        (lambda d: d.update(thresholds={"pv": "high"}), "thresholds"),
    ],
)
def test_a_malformed_model_json_is_a_named_error(model, tmp_path, change, field):
    path = save(model, tmp_path / "m")
    document = json.loads((path / "model.json").read_text())
    change(document)
    (path / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelFilesError, match=f"model.json: {field}"):
        load(path)
