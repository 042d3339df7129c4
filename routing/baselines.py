"""Baselines that decide before the judge runs (deferred items cost no judge tokens).

- AI-only: never escalate.
- Random: escalate a uniformly random ⌊ρ·n⌋ items.
- L2D-rule: a training-free risk score, escalate the top ⌊ρ·n⌋.
- L2D-LogReg / L2D-MLP: the disagreement scorer on g(x) (``routing.scorer``), escalate the top ⌊ρ·n⌋.
(No-trace and full-trace one-shot are router ablations: ``routing.routers.ablations``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from routing.deployment import budget_size, review_order

__all__ = ["defer_random", "defer_top", "rule_risk"]


def defer_top(scores: Sequence[float], rho: float) -> np.ndarray:
    """Escalation mask of the ⌊ρ·n⌋ highest scores (ties keep input order)."""
    scores = np.asarray(scores, dtype=float)
    mask = np.zeros(len(scores), dtype=bool)
    mask[review_order(scores)[: budget_size(rho, len(scores))]] = True
    return mask


def defer_random(n: int, rho: float, random_state: int = 0) -> np.ndarray:
    """Escalation mask of ⌊ρ·n⌋ items drawn uniformly without replacement."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(random_state).choice(n, size=budget_size(rho, n), replace=False)] = True
    return mask


def rule_risk(items: Sequence[dict[str, Any]]) -> np.ndarray:
    """Training-free risk: how alike the item's text fields are, plus how long the item is.

    Judges err most when the candidates (or an image caption and its context) are near-duplicates
    and when there is much to read; both are measurable without any labels.
    """
    fields: dict[str, None] = {}
    for item in items:
        for name, value in item.items():
            if isinstance(value, str):
                fields.setdefault(name, None)
    names = list(fields)
    texts = [[item.get(n) if isinstance(item.get(n), str) else "" for n in names] for item in items]
    lengths = np.array([np.log1p(sum(len(t) for t in row)) for row in texts])
    if len(names) < 2:
        return lengths / max(1.0, lengths.max())
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit([t for row in texts for t in row if t] or ["empty"])
    matrices = [vectorizer.transform([row[j] for row in texts]) for j in range(len(names))]
    similarity = np.zeros(len(items))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            similarity = np.maximum(similarity, np.asarray(matrices[a].multiply(matrices[b]).sum(axis=1)).ravel())
    return similarity + 0.1 * lengths / max(1.0, lengths.max())
