"""The surrogate zoo: small local classifiers trained on the teacher's labels.

Every candidate is a plain scikit-learn estimator sized so that a few thousand rows fit in seconds
on one core. ``select_surrogate`` fits the candidates and keeps the one with the best validation
macro-F1 against the teacher (ties go to the earlier, cheaper candidate).
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

#: Every candidate name, cheapest family first (ties in macro-F1 keep the earlier one).
CANDIDATES = (
    "logreg_c0.1", "logreg_c1", "logreg_c10", "sgd_log", "mlp_1h", "mlp_2h",
    "decision_tree", "random_forest", "extra_trees", "hist_gb", "xgboost",
)
#: A fast subset for repeated-split benchmarks.
FAST_CANDIDATES = ("logreg_c0.1", "logreg_c1", "logreg_c10", "mlp_1h")


def xgboost_available() -> bool:
    return importlib.util.find_spec("xgboost") is not None


def make_candidate(name: str, random_state: int = 0) -> Any:
    """A fresh, unfitted estimator for one candidate name (integer class labels expected)."""
    rs = random_state
    if name.startswith("logreg_c"):
        c = float(name.removeprefix("logreg_c"))
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300, random_state=rs))
    if name == "sgd_log":
        return make_pipeline(
            StandardScaler(),
            SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=30, tol=1e-3, random_state=rs),
        )
    if name in ("mlp_1h", "mlp_2h"):
        hidden = (256,) if name == "mlp_1h" else (256, 96)
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-3, max_iter=80, early_stopping=True,
                          random_state=rs),
        )
    if name == "decision_tree":
        return DecisionTreeClassifier(max_depth=16, min_samples_leaf=2, random_state=rs)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=100, min_samples_leaf=1, n_jobs=1, random_state=rs)
    if name == "extra_trees":
        return ExtraTreesClassifier(n_estimators=150, min_samples_leaf=1, n_jobs=1, random_state=rs)
    if name == "hist_gb":
        # One tree per class per iteration: keep iterations few so 77 classes stay in seconds.
        return HistGradientBoostingClassifier(max_iter=40, learning_rate=0.2, early_stopping=True,
                                              random_state=rs)
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.2, n_jobs=1, random_state=rs,
                             verbosity=0)
    raise ValueError(f"unknown surrogate candidate {name!r}; choose from {CANDIDATES}")


def class_proba(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` spread onto all ``n_classes`` columns (a model may have seen fewer classes)."""
    proba = model.predict_proba(X)
    out = np.zeros((len(X), n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = proba
    return out


@dataclass
class ZooResult:
    """The selected surrogate and the scores of every candidate tried."""

    name: str
    model: Any
    scores: list[dict[str, Any]] = field(default_factory=list)


def select_surrogate(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    candidates: tuple[str, ...] | list[str] | None = None,
    random_state: int = 0,
) -> ZooResult:
    """Fit each candidate on (X_train, y_train) and keep the best validation macro-F1 vs the teacher.

    Labels are integers; rows of ``y_val`` equal to -1 (no teacher label) count as errors.
    Candidates that fail to fit (or whose optional package is missing) are listed with the error.
    """
    names = [n for n in (candidates or CANDIDATES) if n != "xgboost" or xgboost_available()]
    best: ZooResult | None = None
    best_f1 = -1.0
    scores = []
    for name in names:
        model = make_candidate(name, random_state)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)  # MLP early-stopping target-type chatter
                fitted = fit_with_local_labels(model, X_train, y_train)
            pred = fitted.predict(X_val)
        except (ValueError, MemoryError) as exc:
            scores.append({"name": name, "error": str(exc), "fit_seconds": time.perf_counter() - start})
            continue
        seconds = time.perf_counter() - start
        seen = np.unique(y_val[y_val >= 0])
        f1 = float(f1_score(y_val, pred, average="macro", labels=seen, zero_division=0))
        acc = float(accuracy_score(y_val, pred))
        scores.append({"name": name, "macro_f1": f1, "accuracy": acc, "fit_seconds": seconds})
        if f1 > best_f1:
            best_f1, best = f1, ZooResult(name=name, model=fitted)
    if best is None:
        raise ValueError(f"no surrogate candidate could be fitted: {scores}")
    best.scores = scores
    return best


class _LocalLabels:
    """Wraps a model trained on a subset of classes so it predicts the original integer labels.

    Some estimators (XGBoost, early-stopping MLP) require labels 0..k-1; RSB's second stage sees
    only some classes.
    """

    def __init__(self, model: Any, classes: np.ndarray):
        self.model = model
        self.classes_ = classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.model.predict_proba(X), axis=1)]


def fit_with_local_labels(model: Any, X: np.ndarray, y: np.ndarray) -> _LocalLabels:
    """Clone and fit ``model`` on ``y`` re-coded to 0..k-1; predictions come back in the original labels."""
    classes, local = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("need at least two teacher classes to train a surrogate")
    return _LocalLabels(clone(model).fit(X, local), classes)
