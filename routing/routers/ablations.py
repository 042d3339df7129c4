"""Ablations of the trace-aware router.

- full-trace one-shot: ``LearnedPrefixRouter(train_on="full")`` (reads the complete reasoning once);
- no-trace: ``NoTraceRouter`` — the item and the judge's final label only, no reasoning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from routing.features import ItemFeaturizer
from routing.routers.base import StepwiseRouter
from routing.routers.learned import LearnedPrefixRouter, judge_wrong
from routing.tracelog import TraceRecord

__all__ = ["NoTraceRouter", "full_trace_router"]


def full_trace_router(**params) -> LearnedPrefixRouter:
    """The full-trace one-shot router: trained on and consulted with complete traces only."""
    return LearnedPrefixRouter(train_on="full", **params)


class NoTraceRouter(StepwiseRouter):
    """P(judge wrong | g(x), final AI label, p̂): consulted once, when the judge has finished.

    Features: g(x), the one-hot final label (null = its own value), the label × g(x) interactions
    (which answer the judge picked matters for pairwise items), and logit(p̂).
    """

    reads_prefixes = False

    def __init__(
        self, featurizer: ItemFeaturizer | None = None, C: float = 0.5, threshold: float = 0.5,
        threshold_slope: float = 0.0, min_step: int = 1, delta: int = 1, random_state: int = 0,
    ):
        self.featurizer = featurizer
        self.C = C
        self.threshold = threshold
        self.threshold_slope = threshold_slope
        self.min_step = min_step
        self.delta = delta
        self.random_state = random_state

    def _matrix(self, g: np.ndarray, labels: Sequence[str | None], p_hat: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(labels), len(self.labels_) + 1))
        for row, label in enumerate(labels):
            onehot[row, self.labels_.index(label) if label in self.labels_ else len(self.labels_)] = 1.0
        interactions = (onehot[:, :, None] * g[:, None, :]).reshape(len(labels), -1)
        p = np.clip(np.asarray(p_hat, dtype=float), 1e-4, 1 - 1e-4)
        return np.hstack([g, onehot, interactions, np.log(p / (1 - p))[:, None]])

    def fit(
        self, records: Sequence[TraceRecord], p_hat: np.ndarray, steps=None, item_features: np.ndarray | None = None
    ) -> NoTraceRouter:
        featurizer = self.featurizer if self.featurizer is not None else ItemFeaturizer(random_state=self.random_state)
        if not hasattr(featurizer, "n_features_out_"):
            featurizer.fit([r.input for r in records])
        self.featurizer_ = featurizer
        self.labels_ = sorted({r.judge_label for r in records if r.judge_label is not None})
        g = featurizer.transform([r.input for r in records]) if item_features is None else item_features
        x = self._matrix(g, [r.judge_label for r in records], np.asarray(p_hat))
        self.scaler_ = StandardScaler().fit(x)
        self.estimator_ = LogisticRegression(C=self.C, solver="liblinear").fit(
            self.scaler_.transform(x), judge_wrong(records)
        )
        return self

    def _predict(self, items, labels, p_hat, item_features=None) -> np.ndarray:
        g = self.featurizer_.transform(items) if item_features is None else np.asarray(item_features).reshape(len(items), -1)
        x = self._matrix(g, labels, np.asarray(p_hat, dtype=float))
        return self.estimator_.predict_proba(self.scaler_.transform(x))[:, 1]

    def score_prefix(self, prefix_steps, item, p_hat, *, judge_label=None, item_features=None) -> float:
        return float(self._predict([item], [judge_label], [p_hat], item_features)[0])

    def score_traces(self, steps, items, p_hat, judge_labels, item_features=None) -> list[np.ndarray]:
        scores = self._predict(list(items), list(judge_labels), p_hat, item_features)
        out = []
        for item_steps, score in zip(steps, scores):
            row = np.full(len(item_steps), np.nan)
            if len(row):
                row[-1] = score
            out.append(row)
        return out

    def describe(self) -> dict:
        return {"router": "no_trace", "C": self.C, **self.policy()}
