"""Out-of-distribution deferral by nearest-neighbour distance to the training inputs."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


class KNNDistanceOOD:
    """Flags inputs whose mean distance to their k nearest training inputs exceeds a training quantile.

    Parameters
    ----------
    n_neighbors : k.
    quantile : share of training inputs (leave-one-out distances) that count as in-distribution.
    """

    def __init__(self, n_neighbors: int = 10, quantile: float = 0.995):
        self.n_neighbors = n_neighbors
        self.quantile = quantile

    def fit(self, X: np.ndarray) -> KNNDistanceOOD:
        X = np.asarray(X, dtype=np.float32)
        self.k_ = int(max(1, min(self.n_neighbors, len(X) - 1)))
        self.index_ = NearestNeighbors(n_neighbors=self.k_ + 1).fit(X)
        dist, _ = self.index_.kneighbors(X)
        self.threshold_ = float(np.quantile(dist[:, 1:].mean(axis=1), self.quantile))  # drop self
        return self

    def distance(self, X: np.ndarray) -> np.ndarray:
        dist, _ = self.index_.kneighbors(np.asarray(X, dtype=np.float32), n_neighbors=self.k_)
        return dist.mean(axis=1)

    def is_outlier(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0, dtype=bool)
        return self.distance(X) > self.threshold_
