"""The acceptor: predicts whether the surrogate agrees with the teacher on an item.

Its inputs are the shape of the surrogate's probability vector (top-1, top-2, margin, normalised
entropy) and, optionally, the item's own features. Its output is a score in [0, 1]; the gate accepts
items whose score clears a certified threshold, so only the ranking matters for the guarantee.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def confidence_features(proba: np.ndarray) -> np.ndarray:
    """(n, 4): top-1 probability, top-2 probability, margin, entropy / log(n_classes)."""
    proba = np.nan_to_num(np.asarray(proba, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    ordered = -np.sort(-proba, axis=1)
    top1 = ordered[:, 0]
    top2 = ordered[:, 1] if proba.shape[1] > 1 else np.zeros(len(proba))
    entropy = -(proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1)
    entropy = entropy / np.log(proba.shape[1]) if proba.shape[1] > 1 else np.zeros(len(proba))
    return np.column_stack([top1, top2, top1 - top2, entropy])


class Acceptor:
    """Logistic regression of surrogate–teacher agreement on confidence (and optional input) features.

    Parameters
    ----------
    use_inputs : also feed the item features X to the acceptor.
    C : inverse regularisation strength.
    random_state : seed for the solver and the cross-fitting folds.
    """

    def __init__(self, use_inputs: bool = False, C: float = 1.0, random_state: int = 0):
        self.use_inputs = use_inputs
        self.C = C
        self.random_state = random_state

    def _design(self, proba: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        feats = confidence_features(proba)
        if self.use_inputs:
            if X is None:
                raise ValueError("this acceptor was built with use_inputs=True: pass X")
            feats = np.hstack([feats, np.asarray(X, dtype=float)])
        return feats

    def fit(self, proba: np.ndarray, agree: np.ndarray, X: np.ndarray | None = None) -> Acceptor:
        agree = np.asarray(agree, dtype=int)
        self.constant_ = None
        if len(np.unique(agree)) < 2:
            # Nothing to discriminate: fall back to the surrogate's own top-1 probability.
            self.constant_ = int(agree[0]) if len(agree) else 0
            self.model_ = None
            return self
        self.model_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=500, random_state=self.random_state)
        ).fit(self._design(proba, X), agree)
        return self

    def score(self, proba: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
        """Estimated probability that the surrogate's top-1 label agrees with the teacher."""
        if self.model_ is None:
            return confidence_features(proba)[:, 0]
        return self.model_.predict_proba(self._design(proba, X))[:, 1]

    def cross_fit_score(
        self, proba: np.ndarray, agree: np.ndarray, X: np.ndarray | None = None, n_splits: int = 5
    ) -> np.ndarray:
        """Out-of-fold scores on the fitting rows (honest scores for selection decisions)."""
        agree = np.asarray(agree, dtype=int)
        out = np.empty(len(agree))
        counts = np.bincount(agree, minlength=2)
        if counts.min() < n_splits:
            return Acceptor(self.use_inputs, self.C, self.random_state).fit(proba, agree, X).score(proba, X)
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(proba, agree):
            part = Acceptor(self.use_inputs, self.C, self.random_state).fit(
                proba[train], agree[train], None if X is None else X[train]
            )
            out[test] = part.score(proba[test], None if X is None else X[test])
        return out
