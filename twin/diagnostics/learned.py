r"""Learned diagnostics: an anomaly model of fault-free operation and a fault classifier.

Both work on **per-asset feature vectors** (one row per asset and step, the features the
engine computes from the measured values; one feature list per asset kind, so a model
trained on one grid applies to another grid with the same kinds of sensors):

- **Anomaly model** (per asset kind): a robust Mahalanobis distance. Features are
  centred and scaled by their median and interquartile range
  (:class:`sklearn.preprocessing.RobustScaler`), missing values put at the centre, and
  the covariance of fault-free rows estimated with Ledoit-Wolf shrinkage
  (:class:`sklearn.covariance.LedoitWolf`; always invertible, even with near-constant
  features). The score is :math:`d^2 = (x - \mu)^T \Sigma^{-1} (x - \mu)` divided by
  the :data:`ANOMALY_QUANTILE` quantile of the training rows' :math:`d^2`: above 1 is
  anomalous. Evaluated on fitted numpy arrays (a matrix product), never per step
  through scikit-learn: a few microseconds per asset.
- **Classifier** (per asset kind): a
  :class:`sklearn.ensemble.HistGradientBoostingClassifier` (handles missing features
  natively, balanced class weights) that names the fault kind acting on the asset, or
  ``"none"``. The asset is named by the row: a row is labelled with the kind of the
  fault whose target is that asset while the fault acts, else ``none``.

Saved models (:func:`save`) are a directory: ``model.json`` (the feature lists, the
sensors the model knows and their fingerprint, the training data fingerprint and the
training runs' sensor-catalogue fingerprints, package versions, creation time) and one
``.skops`` file per estimator (skops: no pickle; :func:`load` admits only
scikit-learn and numpy types). :func:`load` refuses, with a :class:`ModelError`
subclass naming the field and what was expected, a model whose files are missing, whose
scikit-learn major version differs, whose features differ from the engine's, or whose
sensors do not cover the run's. The sensors a model knows are sensor *types*
(``pv.p_kw``, ``bus.v_pu``: :func:`sensor_types`), not asset names, because its features
are per asset kind: a model trained on one grid diagnoses another grid with the same
kinds of sensors, and refuses a run with a kind of sensor it never saw (an EV park's
power) or without one it was trained with (a BMS that reports no temperature).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import TwinError

__all__ = [
    "ANOMALY_QUANTILE",
    "NONE",
    "DiagnosticsModel",
    "LearnedAnomalyScorer",
    "LearnedDiagnoser",
    "ModelError",
    "ModelFeaturesError",
    "ModelFilesError",
    "ModelSensorsError",
    "ModelStepError",
    "ModelVersionError",
    "fit",
    "load",
    "save",
    "sensor_types",
]

#: Class of a row on which no fault acts.
NONE = "none"
#: Quantile of the fault-free training distances that scores 1.0.
ANOMALY_QUANTILE = 0.999
#: Version of the saved layout (``model.json`` ``format``).
FORMAT = 1
#: Module prefixes of the types a saved estimator may contain.
TRUSTED_PREFIXES = ("sklearn.", "numpy.")


class ModelError(TwinError):
    """A saved diagnostics model cannot be used here.

    Attributes
    ----------
    path : str
        Where the problem is (a file, or a field of ``model.json``).
    expected : str
        What was expected there.
    """

    def __init__(self, path: str, message: str, expected: str) -> None:
        self.path = path
        self.expected = expected
        super().__init__(f"{path}: {message}; expected {expected}")


class ModelFilesError(ModelError):
    """A file of the saved model is missing, unreadable or holds untrusted types."""


class ModelVersionError(ModelError):
    """The model was saved by an incompatible scikit-learn (another major version)."""


class ModelFeaturesError(ModelError):
    """The model's feature list differs from the features the engine computes."""


class ModelSensorsError(ModelError):
    """The run has sensors the model does not know, or lacks sensors it needs."""


class ModelStepError(ModelError):
    """The run's step differs from the step of the runs the model was trained on."""


def sensor_types(keys: Any) -> list[str]:
    """The kinds of sensors of a set: sorted ``"<asset kind>.<quantity>"`` strings.

    ``keys`` are ``(asset, kind, quantity)`` triples or objects with ``kind`` and
    ``quantity`` (:class:`twin.diagnostics.catalogue.Sensor`). A model knows sensor
    *types*, not asset names: its features are per asset kind.
    """
    out = set()
    for key in keys:
        kind, quantity = (key[1], key[2]) if isinstance(key, tuple) else (key.kind, key.quantity)
        out.add(f"{kind}.{quantity}")
    return sorted(out)


@dataclass
class _Anomaly:
    """Fitted arrays of one asset kind's anomaly model."""

    scaler: Any  # RobustScaler
    covariance: Any  # LedoitWolf
    threshold: float
    center: np.ndarray = field(init=False)
    scale: np.ndarray = field(init=False)
    precision: np.ndarray = field(init=False)
    location: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.center = np.asarray(self.scaler.center_, dtype=float)
        self.scale = np.asarray(self.scaler.scale_, dtype=float)
        self.precision = np.asarray(self.covariance.precision_, dtype=float)
        self.location = np.asarray(self.covariance.location_, dtype=float)

    def distance(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=float) - self.center) / self.scale
        z = np.where(np.isnan(z), 0.0, z) - self.location
        return np.einsum("ij,jk,ik->i", z, self.precision, z)


@dataclass
class DiagnosticsModel:
    """Fitted anomaly models and classifiers, one of each per asset kind.

    Attributes
    ----------
    features : dict of str to list of str
        Feature names per asset kind (the column order of every ``x``).
    sensors : list of str
        Sensor types it was trained on (:func:`sensor_types`).
    meta : dict
        ``model.json`` without the estimator file names: fingerprints, versions, time.
    """

    features: dict[str, list[str]]
    sensors: list[str]
    anomaly_models: dict[str, _Anomaly]
    classifiers: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    _threads: Any = field(default=None, repr=False, compare=False)

    def anomaly_score(self, asset_kind: str, x: np.ndarray) -> np.ndarray:
        """Anomaly scores of feature rows ``x`` (n x features): > 1 is anomalous.

        NaN for an asset kind without an anomaly model.
        """
        x = np.atleast_2d(np.asarray(x, dtype=float))
        model = self.anomaly_models.get(asset_kind)
        if model is None:
            return np.full(len(x), np.nan)
        return model.distance(x) / model.threshold

    def predict_proba(self, asset_kind: str, x: np.ndarray) -> np.ndarray:
        """Class probabilities of the asset kind's classifier, on one OpenMP thread.

        scikit-learn's gradient boosting predicts on every core by default: for the
        one row the engine asks about, spinning the threads up cost ~90 ms on a busy
        two-core machine against ~3 ms on one thread.
        """
        if self._threads is None:
            from threadpoolctl import ThreadpoolController

            self._threads = ThreadpoolController()
        with self._threads.limit(limits=1, user_api="openmp"):
            return self.classifiers[asset_kind].predict_proba(x[:, self.columns(asset_kind)])

    def columns(self, asset_kind: str) -> list[int]:
        """Positions of the features the asset kind's classifier uses (all measured)."""
        return self.meta.get("classifier_columns", {}).get(
            asset_kind, list(range(len(self.features[asset_kind])))
        )

    def classify(self, asset_kind: str, x: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The most likely fault kind (or ``"none"``) of each row, and its probability."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        classifier = self.classifiers.get(asset_kind)
        if classifier is None:
            return [NONE] * len(x), np.ones(len(x))
        proba = self.predict_proba(asset_kind, x)
        best = proba.argmax(axis=1)
        return [str(classifier.classes_[i]) for i in best], proba[np.arange(len(x)), best]


def fit(
    frame: pd.DataFrame,
    features: dict[str, list[str]],
    *,
    sensors: list[str],
    training: dict[str, Any],
    seed: int = 0,
) -> DiagnosticsModel:
    """Fit the anomaly models and classifiers on a labelled feature table.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per asset and step: ``asset_kind``, ``label`` (fault kind or
        ``"none"``), ``fault_free`` (True for rows of fault-free runs: the anomaly
        models' data) and the feature columns.
    features : dict of str to list of str
        The feature columns per asset kind.
    sensors : list of str
        The sensor types of the training runs (:func:`sensor_types`).
    training : dict
        The training data's description (``fingerprint``, ``runs``, ``rows``...), kept
        in ``model.json``.
    seed : int
        Seed of the classifiers.

    Raises
    ------
    ModelError
        When an asset kind has features but no fault-free rows.
    """
    from sklearn.covariance import LedoitWolf
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import RobustScaler

    anomaly_models, classifiers, columns = {}, {}, {}
    for kind, names in sorted(features.items()):
        rows = frame[frame["asset_kind"] == kind]
        if rows.empty:
            continue
        x = rows[names].to_numpy(dtype=float)
        clean = x[rows["fault_free"].to_numpy(bool)]
        if len(clean) < 2:
            raise ModelError(
                f"training data ({kind})", f"{len(clean)} fault-free row(s)", "at least 2"
            )
        clean = np.where(np.isnan(clean).all(axis=0), 0.0, clean)  # a feature never seen
        scaler = RobustScaler(unit_variance=False).fit(clean)
        scaler.scale_ = np.where(scaler.scale_ > 1e-9, scaler.scale_, 1.0)
        z = np.nan_to_num((clean - scaler.center_) / scaler.scale_)
        covariance = LedoitWolf().fit(z)
        model = _Anomaly(scaler, covariance, 1.0)
        model.threshold = max(float(np.quantile(model.distance(clean), ANOMALY_QUANTILE)), 1e-9)
        anomaly_models[kind] = model
        labels = rows["label"].astype(str).to_numpy()
        used = np.flatnonzero(~np.isnan(x).all(axis=0))  # features the campaign measured
        if len(set(labels)) > 1 and len(used):
            classifiers[kind] = HistGradientBoostingClassifier(
                max_iter=150, class_weight="balanced", random_state=seed
            ).fit(x[:, used], labels)
            columns[kind] = used.tolist()
    meta = {
        "training": training,
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "thresholds": {k: m.threshold for k, m in anomaly_models.items()},
        "classifier_columns": columns,
    }
    return DiagnosticsModel(
        {k: list(v) for k, v in features.items()},
        sorted(sensors),
        anomaly_models,
        classifiers,
        meta,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("scikit-learn", "numpy", "skops", "twin"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


def fingerprint(items: Any) -> str:
    """SHA-256 of a JSON-serialisable description (sorted keys)."""
    text = json.dumps(items, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save(model: DiagnosticsModel, out_dir: str | Path) -> Path:
    """Write ``model.json`` and the estimators (skops) to ``out_dir``; return it."""
    import skops.io as sio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for kind, anomaly in model.anomaly_models.items():
        for part in ("scaler", "covariance"):
            name = f"anomaly_{kind}_{part}.skops"
            sio.dump(getattr(anomaly, part), out / name)
            files[f"anomaly.{kind}.{part}"] = name
    for kind, classifier in model.classifiers.items():
        name = f"classifier_{kind}.skops"
        sio.dump(classifier, out / name)
        files[f"classifier.{kind}"] = name
    document = {
        "format": FORMAT,
        "features": model.features,
        "sensors": model.sensors,
        "sensor_fingerprint": fingerprint(model.sensors),
        **model.meta,
        "files": files,
    }
    (out / "model.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    return out


def _read(path: Path) -> Any:
    import skops.io as sio

    if not path.is_file():
        raise ModelFilesError(str(path), "missing", "the estimator file model.json names")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem
        raise ModelFilesError(str(path), f"unreadable ({exc})", "a skops file") from None
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ModelFilesError(
            str(path), f"holds types {foreign}", "only scikit-learn and numpy types"
        )
    return sio.load(path, trusted=untrusted)


def _check_shape(document: dict[str, Any], root: Path, where: Path) -> None:
    """The sections of ``model.json`` have the types :func:`save` writes; files stay inside."""
    for key in ("files", "versions", "training", "thresholds", "features"):
        if not isinstance(document.get(key, {}), dict):
            raise ModelFilesError(f"{where}: {key}", "is not a mapping", "a mapping")
    for key, name in document["files"].items():
        inside = (root / str(name)).resolve().is_relative_to(root.resolve())
        if len(str(key).split(".")) < 2 or not isinstance(name, str) or not inside:
            raise ModelFilesError(
                f"{where}: files.{key}", f"is {name!r}", "<part>.<kind>: a file of the model"
            )
    step = document.get("training", {}).get("step_s")
    if step is not None and not isinstance(step, int | float):
        raise ModelFilesError(f"{where}: training.step_s", f"is {step!r}", "seconds")
    thresholds = document.get("thresholds", {}).values()
    if not all(isinstance(t, int | float) for t in thresholds):
        raise ModelFilesError(f"{where}: thresholds", "has a value that is no number", "numbers")


def _check_versions(document: dict[str, Any], where: Path) -> None:
    from sklearn import __version__ as sklearn_version

    saved = str(document.get("versions", {}).get("scikit-learn", "unknown"))
    if saved.split(".")[0] != sklearn_version.split(".")[0]:
        raise ModelVersionError(
            f"{where}: versions.scikit-learn",
            f"saved by scikit-learn {saved}",
            f"scikit-learn {sklearn_version.split('.')[0]}.x (installed {sklearn_version})",
        )


def check_sensors(known: list[str], run_sensors: list[str], where: str = "sensors") -> None:
    """Refuse a run whose sensor types the model does not know, or that lacks some.

    Only asset kinds the run has are checked for missing types (a run without a
    battery needs no battery sensors).
    """
    unknown = sorted(set(run_sensors) - set(known))
    kinds = {s.split(".", 1)[0] for s in run_sensors}
    missing = sorted(s for s in set(known) - set(run_sensors) if s.split(".", 1)[0] in kinds)
    if unknown or missing:
        parts = [f"unknown sensors {unknown}"] if unknown else []
        parts += [f"missing sensors {missing}"] if missing else []
        raise ModelSensorsError(
            where, "the run's sensors differ: " + "; ".join(parts), f"the sensors {known}"
        )


def load(
    model_dir: str | Path,
    catalogue: Any = None,
    features: dict[str, list[str]] | None = None,
) -> DiagnosticsModel:
    """Read a saved model, refusing one that does not fit this run or installation.

    Parameters
    ----------
    model_dir : str or pathlib.Path
        Directory written by :func:`save`.
    catalogue : twin.diagnostics.catalogue.Catalogue, optional
        The run's sensors: every sensor type must be known to the model (and the model's
        types of the run's asset kinds present).
    features : dict of str to list of str, optional
        The engine's feature lists per asset kind: must equal the model's.

    Raises
    ------
    ModelFilesError, ModelVersionError, ModelFeaturesError, ModelSensorsError, ModelStepError
        Named, with the field path and what was expected.
    """
    root = Path(model_dir)
    path = root / "model.json"
    if not path.is_file():
        raise ModelFilesError(str(path), "missing", "a model saved by `twin diagnostics train`")
    try:
        document = json.loads(path.read_text())
        files = document["files"]
        known_features = {k: list(v) for k, v in document["features"].items()}
        sensors = list(document["sensors"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFilesError(
            str(path), f"unreadable ({exc})", "model.json with files, features and sensors"
        ) from None
    if document.get("format") != FORMAT:
        raise ModelFilesError(f"{path}: format", f"is {document.get('format')!r}", str(FORMAT))
    _check_shape(document, root, path)
    _check_versions(document, path)
    if features is not None:
        wanted = {k: list(v) for k, v in features.items()}
        for kind in sorted(set(wanted) | set(known_features)):
            if wanted.get(kind) != known_features.get(kind):
                raise ModelFeaturesError(
                    f"{path}: features.{kind}",
                    f"the model has {known_features.get(kind)}",
                    f"the engine's features {wanted.get(kind)}",
                )
    if catalogue is not None:
        check_sensors(sensors, sensor_types(catalogue.sensors), f"{path}: sensors")
        trained = document.get("training", {}).get("step_s")
        if trained is not None and int(trained) != int(catalogue.step_s):
            raise ModelStepError(
                f"{path}: training.step_s",
                f"trained on runs of {trained} s steps, this run steps {catalogue.step_s} s",
                f"a model trained on a campaign at {catalogue.step_s} s steps (chart "
                "statistics and thresholds depend on the step)",
            )
    anomaly_models, classifiers = {}, {}
    thresholds = document.get("thresholds", {})
    for key, name in sorted(files.items()):
        part, kind, *rest = key.split(".")
        if part == "classifier":
            classifiers[kind] = _read(root / name)
    for kind in thresholds:
        scaler = _read(root / files.get(f"anomaly.{kind}.scaler", f"anomaly_{kind}_scaler"))
        covariance = _read(
            root / files.get(f"anomaly.{kind}.covariance", f"anomaly_{kind}_covariance")
        )
        anomaly_models[kind] = _Anomaly(scaler, covariance, float(thresholds[kind]))
    meta = {k: v for k, v in document.items() if k not in ("files", "features", "sensors")}
    return DiagnosticsModel(known_features, sensors, anomaly_models, classifiers, meta)


def _ordered(model: DiagnosticsModel, asset_kind: str, x: np.ndarray, names: list[str]) -> Any:
    """``x`` in the model's feature order for ``asset_kind`` (None: kind unknown)."""
    known = model.features.get(asset_kind)
    if known is None:
        return None
    x = np.asarray(x, dtype=float).reshape(1, -1)
    if list(names) == known:
        return x
    where = {name: i for i, name in enumerate(names)}
    return np.array([[x[0, where[n]] if n in where else np.nan for n in known]])


class LearnedAnomalyScorer:
    """The engine's anomaly scorer (``score``) backed by a :class:`DiagnosticsModel`.

    The score maps the model's ratio :math:`r = d^2 / d^2_{0.999}` to 0..1 as
    :math:`r / (1 + r)`: 0.5 at the fault-free training rows' 99.9 % quantile.
    """

    def __init__(self, model: DiagnosticsModel) -> None:
        self.model = model

    def scores(self, asset_kind: str, features: np.ndarray, names: list[str]) -> np.ndarray:
        """Anomaly scores 0..1 of every asset of a kind at once (``features``: n x F).

        One matrix product per asset kind: what the engine can afford every step
        (:class:`twin.diagnostics.engine.StepOutput` gives the features per kind).
        """
        x = np.atleast_2d(np.asarray(features, dtype=float))
        known = self.model.features.get(asset_kind)
        if known is None or asset_kind not in self.model.anomaly_models:
            return np.zeros(len(x))
        if list(names) != known:
            where = {name: i for i, name in enumerate(names)}
            pick = [where.get(n, -1) for n in known]
            x = np.where(np.array(pick) >= 0, x[:, np.maximum(pick, 0)], np.nan)
        ratio = self.model.anomaly_score(asset_kind, x)
        return ratio / (1.0 + ratio)

    def score(self, asset_kind: str, features: np.ndarray, names: list[str]) -> float:
        """Anomaly score 0..1 of one feature vector (0.0 for an unknown asset kind)."""
        x = _ordered(self.model, asset_kind, features, names)
        if x is None or asset_kind not in self.model.anomaly_models:
            return 0.0
        ratio = float(self.model.anomaly_score(asset_kind, x)[0])
        return ratio / (1.0 + ratio)


class LearnedDiagnoser:
    """The engine's diagnoser (``diagnose``) backed by the model's classifiers.

    The engine asks only once an alert is open, so something is wrong. Physics first:
    where the ``fallback`` (the engine's rules) recognises a signature with at least
    ``trust_rules`` confidence, its answer stands (measured on held-out campaigns of
    another season and grid, a classifier trained on one site mistook sensor drifts and
    SoC misreports the rules name surely; BENCHMARKS.md). Otherwise the answer is the
    most probable *fault* kind of the asset's classifier (``none`` is never the answer)
    with its probability as the confidence. Asset kinds without a classifier, and
    answers less probable than ``min_confidence``, go to the rules when there are any;
    without them an asset kind without a classifier is ``("anomaly", 0.3)``.
    """

    def __init__(
        self,
        model: DiagnosticsModel,
        fallback: Any = None,
        min_confidence: float = 0.5,
        trust_rules: float = 0.7,
    ) -> None:
        self.model = model
        self.fallback = fallback
        self.min_confidence = min_confidence
        self.trust_rules = trust_rules

    def diagnose(
        self, asset_kind: str, features: np.ndarray, names: list[str]
    ) -> tuple[str, float]:
        """Return ``(fault kind or "anomaly", confidence 0..1)``."""
        if self.fallback is not None:
            kind, confidence = self.fallback.diagnose(asset_kind, features, names)
            if kind != "anomaly" and confidence >= self.trust_rules:
                return kind, confidence
        classifier = self.model.classifiers.get(asset_kind)
        x = _ordered(self.model, asset_kind, features, names)
        if classifier is None or x is None:
            if self.fallback is not None:
                return self.fallback.diagnose(asset_kind, features, names)
            return "anomaly", 0.3
        proba = self.model.predict_proba(asset_kind, x)[0]
        classes = [str(c) for c in classifier.classes_]
        order = [i for i in np.argsort(-proba) if classes[i] != NONE]
        if not order:
            return "anomaly", 0.3
        kind, confidence = classes[order[0]], float(proba[order[0]])
        if confidence < self.min_confidence and self.fallback is not None:
            return self.fallback.diagnose(asset_kind, features, names)
        return kind, confidence
