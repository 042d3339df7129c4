"""Splits that never separate a group, and the topic-shift split with its shift measures.

- ``grouped_random_split``: train / dev / test by group (e.g. both presentation orders of one item).
- ``topic_shift_split``: embed items, k-means them, hold out as test the clusters farthest from the
  overall centroid (the paper's topic shift); dev is a grouped random part of the rest.
- ``shift_measures``: how different test is from train (the paper's Table 1): a train-vs-test
  classifier's cross-validated AUC, unigram Jensen–Shannon divergence, centroid cosine distance,
  mean nearest-neighbour distance (test → train, relative to train → train) and label rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

__all__ = ["Split", "embed_texts", "grouped_random_split", "shift_measures", "topic_shift_split"]


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray


def _group_ids(groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    return unique, inverse


def _take_groups(inverse: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(inverse, chosen))


def grouped_random_split(
    groups: Sequence[str], dev_size: float = 0.2, test_size: float = 0.2, random_state: int = 0
) -> Split:
    """Shuffle groups and cut them into train / dev / test by group counts."""
    unique, inverse = _group_ids(groups)
    order = np.random.default_rng(random_state).permutation(len(unique))
    n_test = max(1, round(test_size * len(unique)))
    n_dev = max(1, round(dev_size * len(unique)))
    return Split(
        train=_take_groups(inverse, order[n_test + n_dev:]),
        dev=_take_groups(inverse, order[n_test:n_test + n_dev]),
        test=_take_groups(inverse, order[:n_test]),
    )


def embed_texts(texts: Sequence[str], n_components: int = 64, random_state: int = 0) -> np.ndarray:
    """L2-normalised LSA embedding (TF-IDF + TruncatedSVD): offline, deterministic."""
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=20000).fit_transform(texts)
    k = max(1, min(n_components, tfidf.shape[1] - 1, tfidf.shape[0] - 1))
    return normalize(TruncatedSVD(n_components=k, random_state=random_state).fit_transform(tfidf))


def topic_shift_split(
    texts: Sequence[str], groups: Sequence[str], n_clusters: int = 8, test_size: float = 0.2,
    dev_size: float = 0.2, random_state: int = 0, embeddings: np.ndarray | None = None,
) -> Split:
    """Hold out whole k-means clusters, farthest from the centroid first, until ≥ test_size of items.

    A group's items share the cluster of the group's mean embedding, so groups are never split.
    """
    x = embed_texts(texts, random_state=random_state) if embeddings is None else np.asarray(embeddings)
    unique, inverse = _group_ids(groups)
    group_x = np.zeros((len(unique), x.shape[1]))
    np.add.at(group_x, inverse, x)
    group_x = normalize(group_x)
    kmeans = KMeans(n_clusters=min(n_clusters, len(unique)), n_init=4, random_state=random_state).fit(group_x)
    centre = group_x.mean(axis=0)
    distance = np.linalg.norm(kmeans.cluster_centers_ - centre, axis=1)
    sizes = np.bincount(kmeans.labels_[inverse], minlength=len(distance))
    test_clusters: list[int] = []
    for cluster in np.argsort(-distance):
        if sizes[test_clusters].sum() >= test_size * len(x) or len(test_clusters) == len(distance) - 1:
            break
        test_clusters.append(int(cluster))
    test_groups = np.flatnonzero(np.isin(kmeans.labels_, test_clusters))
    rest = np.flatnonzero(~np.isin(kmeans.labels_, test_clusters))
    rest = rest[np.random.default_rng(random_state).permutation(len(rest))]
    n_dev = max(1, round(dev_size * len(unique)))
    return Split(
        train=_take_groups(inverse, rest[n_dev:]), dev=_take_groups(inverse, rest[:n_dev]),
        test=_take_groups(inverse, test_groups),
    )


def shift_measures(
    texts: Sequence[str], embeddings: np.ndarray, labels: np.ndarray, split: Split, random_state: int = 0
) -> dict[str, float]:
    """Train-vs-test shift. ``labels`` is any per-item binary rate to compare (e.g. judge errors)."""
    texts = list(texts)
    train, test = split.train, split.test
    x = np.vstack([embeddings[train], embeddings[test]])
    side = np.r_[np.zeros(len(train)), np.ones(len(test))]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state)
    proba = cross_val_predict(LogisticRegression(max_iter=2000), x, side, cv=folds, method="predict_proba")[:, 1]
    counts = CountVectorizer(min_df=1).fit([texts[i] for i in train] + [texts[i] for i in test])
    p = np.asarray(counts.transform([texts[i] for i in train]).sum(axis=0)).ravel() + 1.0
    q = np.asarray(counts.transform([texts[i] for i in test]).sum(axis=0)).ravel() + 1.0
    c_train, c_test = embeddings[train].mean(axis=0), embeddings[test].mean(axis=0)
    cosine = 1.0 - float(c_train @ c_test / (np.linalg.norm(c_train) * np.linalg.norm(c_test) + 1e-12))
    nn = NearestNeighbors(n_neighbors=2).fit(embeddings[train])
    test_nn = nn.kneighbors(embeddings[test], n_neighbors=1)[0][:, 0].mean()
    train_nn = nn.kneighbors(embeddings[train], n_neighbors=2)[0][:, 1].mean()
    labels = np.asarray(labels, dtype=float)
    return {
        "domain_classifier_auc": float(roc_auc_score(side, proba)),
        "unigram_js_divergence": float(jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2),
        "centroid_cosine_distance": cosine,
        "mean_nn_distance_test": float(test_nn),
        "mean_nn_distance_train": float(train_nn),
        "label_rate_train": float(labels[train].mean()),
        "label_rate_test": float(labels[test].mean()),
    }
