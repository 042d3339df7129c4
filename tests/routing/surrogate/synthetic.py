"""Synthetic teacher data for the surrogate tests: separable clusters with a noisy teacher."""

from __future__ import annotations

import numpy as np


def teacher_data(n: int = 1200, n_classes: int = 4, noise: float = 0.08, seed: int = 0, sample_seed: int | None = None):
    """(X, teacher labels as strings): Gaussian clusters (placed by ``seed``; rows drawn with
    ``sample_seed``, default ``seed``); a share ``noise`` of labels flipped at random."""
    centers = np.random.default_rng(seed).normal(0, 3.0, size=(n_classes, 6))
    rng = np.random.default_rng(seed if sample_seed is None else sample_seed)
    y = rng.integers(0, n_classes, size=n)
    X = centers[y] + rng.normal(0, 1.6, size=(n, 6))
    flip = rng.random(n) < noise
    y = np.where(flip, rng.integers(0, n_classes, size=n), y)
    return X, np.array([f"c{k}" for k in y], dtype=object)
