"""Disagreement scorer f_θ: p̂ = P(judge ≠ human | g(x)), calibrated.

p̂ orders items for budgeted deployment, prioritises the human review queue and is one input of
the prefix router. The default is a small scikit-learn MLP; logistic regression is the
alternative. Both are wrapped in cross-validated sigmoid calibration so p̂ reads as a probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from routing.features import ItemFeaturizer

__all__ = ["DisagreementScorer", "out_of_fold_disagreement"]


class DisagreementScorer:
    """Calibrated P(judge ≠ human) from pre-routing features.

    ``fit``/``predict_proba`` accept either a feature matrix g(x) (2-D array) or a list of item
    input dicts; with dicts, ``featurizer`` (an ``ItemFeaturizer``; a default one when None) turns
    them into g(x). A featurizer that is already fitted is used as is, so several models can share one.
    """

    def __init__(
        self,
        model: Literal["mlp", "logreg"] = "mlp",
        featurizer: ItemFeaturizer | None = None,
        hidden_layer_sizes: tuple[int, ...] = (32,),
        alpha: float = 1.0,
        C: float = 0.05,
        calibration_cv: int = 3,
        random_state: int = 0,
    ):
        self.model = model
        self.featurizer = featurizer
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.C = C
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    def _features(self, X: Any, fit: bool) -> np.ndarray:
        if isinstance(X, np.ndarray) and X.ndim == 2:
            return X
        items = list(X)
        if fit:
            featurizer = self.featurizer if self.featurizer is not None else ItemFeaturizer(random_state=self.random_state)
            if not hasattr(featurizer, "n_features_out_"):
                featurizer.fit(items)
            self.featurizer_ = featurizer
        if getattr(self, "featurizer_", None) is None:
            raise ValueError("this scorer was fitted on a feature matrix: pass g(x), not item dicts")
        return self.featurizer_.transform(items)

    def _estimator(self, early_stopping: bool = True):
        if self.model == "mlp":
            base = MLPClassifier(
                hidden_layer_sizes=self.hidden_layer_sizes, alpha=self.alpha, max_iter=200,
                early_stopping=early_stopping,
                random_state=self.random_state,
            )
        elif self.model == "logreg":
            base = LogisticRegression(C=self.C, solver="liblinear")
        else:
            raise ValueError(f"unknown model {self.model!r}")
        return make_pipeline(StandardScaler(), base)

    def fit(
        self, X: np.ndarray | Sequence[dict[str, Any]], y: Sequence[int], groups: Sequence[str] | None = None
    ) -> DisagreementScorer:
        """``y[i] = 1`` when the judge's label disagrees with the human label (null judge label = 1).

        Pass ``groups`` whenever records share an input (e.g. both presentation orders of one
        item): calibration folds must not separate a group, or the calibrator learns from a model
        that memorised the sibling's label and can even flip the sign of p̂.
        """
        self.featurizer_ = None
        features = self._features(X, fit=True)
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValueError("need both agreeing and disagreeing examples to fit a disagreement scorer")
        n_folds = max(2, min(self.calibration_cv, int(np.bincount(y).min())))
        if groups is not None:
            n_folds = min(n_folds, len(set(groups)))
            cv: Any = list(GroupKFold(n_splits=n_folds).split(features, y, groups))
        else:
            cv = n_folds
        # Early stopping holds out a stratified 10%: on a small labelled set the rarer outcome may not
        # reach two rows there, so it is only used once there is enough of both.
        early_stopping = int(np.bincount(y).min()) >= 40
        self.calibrated_ = CalibratedClassifierCV(self._estimator(early_stopping), method="sigmoid", cv=cv)
        self.calibrated_.fit(features, y)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X: np.ndarray | Sequence[dict[str, Any]]) -> np.ndarray:
        """Shape (n, 2): column 1 is p̂ = P(judge ≠ human)."""
        return self.calibrated_.predict_proba(self._features(X, fit=False))

    def predict_disagreement(self, X: np.ndarray | Sequence[dict[str, Any]]) -> np.ndarray:
        """p̂ for each item, shape (n,)."""
        return self.predict_proba(X)[:, 1]


def out_of_fold_disagreement(
    X: np.ndarray, y: Sequence[int], groups: Sequence[str], *, folds: int = 4, model: str = "mlp",
    random_state: int = 0,
) -> np.ndarray:
    """p̂ for every row from a scorer that never saw the row's group (K group folds).

    Feed these, not in-sample p̂, to anything trained on the same rows (the prefix router): an
    in-sample p̂ looks far more reliable than it will be on new items.
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups)
    out = np.zeros(len(y))
    n_folds = min(folds, len(set(groups.tolist())))
    for inner, outer in GroupKFold(n_splits=n_folds).split(X, y, groups):
        scorer = DisagreementScorer(model=model, random_state=random_state)
        out[outer] = scorer.fit(X[inner], y[inner], groups=groups[inner]).predict_disagreement(X[outer])
    return out
