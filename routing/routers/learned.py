"""The learned prefix router: a classifier of P(judge wrong | r_1..r_t, g(x), p̂) trained on prefixes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from routing.features import ItemFeaturizer
from routing.routers.base import StepwiseRouter
from routing.routers.prefix_features import PrefixFeaturizer, item_number_set
from routing.steps import parse_steps
from routing.tracelog import TraceRecord


def judge_wrong(records: Sequence[TraceRecord]) -> np.ndarray:
    """1 where the judge disagrees with the human (a null judge label counts as wrong)."""
    return np.array([0 if r.judge_correct else 1 for r in records], dtype=int)


class LearnedPrefixRouter(StepwiseRouter):
    """Design ψ = (model, threshold schedule, min_step, Δ) over prefix features.

    Features: the prefix TF-IDF (sparse), the cue/position block of ``PrefixFeaturizer``
    (standardised, scaled by ``dense_weight``), logit(p̂), and g(x) itself (``item_featurizer``;
    the featurizer's own scale acts as a mild prior). ``model="logreg"``: L2 logistic regression
    (one sparse dot product per decision). ``model="mlp"``: a small MLP on TruncatedSVD components
    of the TF-IDF plus the dense blocks. ``train_on="prefixes"`` trains on every prefix (each trace
    weighted 1 in total); ``"full"`` on complete traces only (the one-shot ablation).
    """

    def __init__(
        self,
        model: Literal["logreg", "mlp"] = "logreg",
        C: float = 4.0,
        dense_weight: float = 0.25,
        use_item_features: bool = True,
        item_featurizer: ItemFeaturizer | None = None,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        n_components: int = 96,
        train_on: Literal["prefixes", "full"] = "prefixes",
        threshold: float = 0.5,
        threshold_slope: float = 0.0,
        min_step: int = 1,
        delta: int = 1,
        max_features: int = 20000,
        random_state: int = 0,
    ):
        self.model = model
        self.C = C
        self.dense_weight = dense_weight
        self.use_item_features = use_item_features
        self.item_featurizer = item_featurizer
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_components = n_components
        self.train_on = train_on
        self.threshold = threshold
        self.threshold_slope = threshold_slope
        self.min_step = min_step
        self.delta = delta
        self.max_features = max_features
        self.random_state = random_state

    @property
    def reads_prefixes(self) -> bool:  # type: ignore[override]
        return self.train_on == "prefixes"

    # -- item features ------------------------------------------------------------------------

    def _item_matrix(self, items: Sequence[dict[str, Any]], item_features: np.ndarray | None) -> np.ndarray:
        if not self.use_item_features:
            return np.zeros((len(items), 0))
        if item_features is not None:
            return np.asarray(item_features, dtype=np.float64).reshape(len(items), -1)
        return self.item_featurizer_.transform(items)

    def prepare(self, item: dict[str, Any], item_features: np.ndarray | None = None) -> None:
        """Cache the item's numbers and g(x) for the decisions that follow (one item at a time)."""
        g = self._item_matrix([item], None if item_features is None else np.asarray(item_features)[None, :])[0]
        self._prepared = (item, item_number_set(item), g)

    def _prepared_for(self, item: dict[str, Any], item_features: np.ndarray | None) -> tuple[set[str], np.ndarray]:
        cached = self.__dict__.get("_prepared")
        if cached is None or cached[0] is not item:
            self.prepare(item, item_features)
            cached = self._prepared
        return cached[1], cached[2]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_prepared"}

    # -- training ---------------------------------------------------------------------------

    def fit(
        self, records: Sequence[TraceRecord], p_hat: np.ndarray, steps: Sequence[list[str]] | None = None,
        item_features: np.ndarray | None = None,
    ) -> LearnedPrefixRouter:
        """Train on the prefixes of labelled traces. ``steps`` / ``item_features`` may pass precomputed
        steps and g(x). Pass out-of-fold p̂ for the training traces, or the router learns to trust an
        overfitted p̂."""
        steps = [parse_steps(r.judge_reasoning) for r in records] if steps is None else steps
        if self.use_item_features:
            featurizer = self.item_featurizer or ItemFeaturizer(random_state=self.random_state)
            if not hasattr(featurizer, "n_features_out_"):
                featurizer.fit([r.input for r in records])
            self.item_featurizer_ = featurizer
        g_all = self._item_matrix([r.input for r in records], item_features)
        wrong = judge_wrong(records)
        prefixes, owners, ps, ys, weights = [], [], [], [], []
        for k, (item_steps, p, y) in enumerate(zip(steps, p_hat, wrong)):
            total = max(1, len(item_steps))
            ts = range(1, total + 1) if self.train_on == "prefixes" else [total]
            for t in ts:
                prefixes.append(list(item_steps[:t]))
                owners.append(k)
                ps.append(float(p))
                ys.append(y)
                weights.append(1.0 / len(ts))
        self.featurizer_ = PrefixFeaturizer(max_features=self.max_features).fit(steps, [r.input for r in records])
        text_x = self.featurizer_.text_matrix(prefixes)
        dense = self.featurizer_.dense_matrix(prefixes, [records[k].input for k in owners], ps)
        self.scaler_ = StandardScaler().fit(dense)
        x_dense = np.hstack([self._scale(dense), g_all[owners]])
        y = np.asarray(ys)
        w = np.asarray(weights)
        if self.model == "logreg":
            self.estimator_ = LogisticRegression(C=self.C, solver="liblinear", max_iter=1000)
            self.estimator_.fit(sparse.hstack([text_x, sparse.csr_matrix(x_dense)]).tocsr(), y, sample_weight=w)
            coef = self.estimator_.coef_.ravel()
            n_text = text_x.shape[1]
            self.text_coef_, self.dense_coef_ = coef[:n_text], coef[n_text:]
            self.intercept_ = float(self.estimator_.intercept_[0])
        elif self.model == "mlp":
            n_comp = max(1, min(self.n_components, text_x.shape[1] - 1, text_x.shape[0] - 1))
            self.svd_ = TruncatedSVD(n_components=n_comp, random_state=self.random_state).fit(text_x)
            self.estimator_ = MLPClassifier(
                hidden_layer_sizes=self.hidden_layer_sizes, alpha=1e-2, max_iter=300, early_stopping=True,
                random_state=self.random_state,
            )
            self.estimator_.fit(np.hstack([self.svd_.transform(text_x) * 4.0, x_dense]), y, sample_weight=w)
        else:
            raise ValueError(f"unknown model {self.model!r}")
        return self

    # -- scoring ----------------------------------------------------------------------------

    def _scale(self, dense: np.ndarray) -> np.ndarray:
        # The cue block is small next to the TF-IDF block; down-weighting it keeps it from dominating.
        return (dense - self.scaler_.mean_) / self.scaler_.scale_ * self.dense_weight

    def _scores(self, text_x: sparse.csr_matrix, dense: np.ndarray, g: np.ndarray) -> np.ndarray:
        x_dense = np.hstack([self._scale(dense), g])
        if self.model == "logreg":
            logits = text_x @ self.text_coef_ + x_dense @ self.dense_coef_ + self.intercept_
            return 1.0 / (1.0 + np.exp(-logits))
        return self.estimator_.predict_proba(np.hstack([self.svd_.transform(text_x) * 4.0, x_dense]))[:, 1]

    def score_prefix(self, prefix_steps, item, p_hat, *, judge_label=None, item_features=None) -> float:
        numbers, g = self._prepared_for(item, item_features)
        dense = np.asarray([self.featurizer_.dense_row(prefix_steps, item, float(p_hat), numbers)])
        if self.model == "logreg":
            columns, values = self.featurizer_.text_vector(prefix_steps)
            x_dense = np.concatenate([self._scale(dense)[0], g])
            logit = values @ self.text_coef_[columns] + x_dense @ self.dense_coef_ + self.intercept_
            return float(1.0 / (1.0 + np.exp(-logit)))
        return float(self._scores(self.featurizer_.text_matrix([prefix_steps]), dense, g[None, :])[0])

    def score_traces(self, steps, items, p_hat, judge_labels, item_features=None) -> list[np.ndarray]:
        g_items = self._item_matrix(list(items), item_features)
        prefixes, owners, positions = [], [], []
        for i, item_steps in enumerate(steps):
            for t in self.polled_steps(len(item_steps)):
                prefixes.append(list(item_steps[:t]))
                owners.append(i)
                positions.append(t - 1)
        out = [np.full(len(s), np.nan) for s in steps]
        if not prefixes:
            return out
        dense = self.featurizer_.dense_matrix(prefixes, [items[i] for i in owners], [p_hat[i] for i in owners])
        scores = self._scores(self.featurizer_.text_matrix(prefixes), dense, g_items[owners])
        for score, i, pos in zip(scores, owners, positions):
            out[i][pos] = score
        return out

    def describe(self) -> dict[str, Any]:
        return {"router": "learned_prefix", "model": self.model, "C": self.C, "train_on": self.train_on, **self.policy()}
