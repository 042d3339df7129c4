"""Gate families. Each turns inputs into (label, acceptance score, stage) so that one threshold on the
score gives a nested family of accept sets — which is what the certification needs.

* ``global``: the surrogate answers everything (score 1 for every item).
* ``l2d``: surrogate + acceptor; the score is the acceptor's agreement probability.
* ``rsb``: a second surrogate and acceptor trained on the first stage's rejects; items with a
  first-stage score >= ``tau`` keep the first stage's label and score, the others take the second
  stage's label and score. Lowering the threshold only ever adds items, so the family stays nested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from routing.surrogate.acceptor import Acceptor
from routing.surrogate.zoo import class_proba

FAMILIES = ("global", "l2d", "rsb")


@dataclass
class Stage:
    """One surrogate with its acceptor."""

    model_name: str
    model: Any
    acceptor: Acceptor | None
    n_classes: int

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(integer labels, acceptor scores; top-1 probability when there is no acceptor)."""
        proba = class_proba(self.model, X, self.n_classes)
        labels = proba.argmax(axis=1)
        scores = self.acceptor.score(proba, X) if self.acceptor is not None else proba.max(axis=1)
        return labels, scores


@dataclass
class GateFamily:
    """A routed family: ``route`` gives labels, scores and the stage index answering each item."""

    name: str
    stages: list[Stage]
    tau: float | None = None

    def route(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels, scores = self.stages[0].predict(X)
        stage = np.zeros(len(X), dtype=int)
        if self.name == "global":
            return labels, np.ones(len(X)), stage
        if self.name == "rsb" and len(self.stages) > 1 and len(X):
            second = scores < self.tau
            if second.any():
                labels2, scores2 = self.stages[1].predict(X[second])
                labels, scores = labels.copy(), scores.copy()
                labels[second], scores[second], stage[second] = labels2, scores2, 1
        return labels, scores, stage

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "models": [s.model_name for s in self.stages], "tau": self.tau}
