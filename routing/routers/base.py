"""The StepwiseRouter interface: read a prefix of the judge's reasoning, CONTINUE or ESCALATE.

A router design ψ is a scoring model plus a policy: the polling interval Δ (``delta``), the first
step it may act on (``min_step``) and a threshold schedule over steps τ_t = τ + slope·(t − 1).
The live pipeline calls ``decide`` whenever ``should_poll(t, final)`` is true; offline replay
calls ``score_traces`` once and applies the same policy (``routing.deployment``), so both see the
same scores for the same prefixes.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from routing.tracelog import TraceRecord

Action = Literal["continue", "escalate"]


@dataclass(frozen=True)
class RouterDecision:
    """One decision: ``action`` and the router's score (estimated P(judge wrong)) at ``step``."""

    action: Action
    score: float
    step: int = 0


class StepwiseRouter(ABC):
    """Base of every router in Ψ. Subclasses implement ``fit`` and ``score_prefix``.

    Policy parameters shared by all designs: ``threshold`` τ, ``threshold_slope`` (τ_t = τ +
    slope·(t − 1)), ``min_step`` and ``delta`` (poll at min_step, min_step + Δ, …, and at the end).
    """

    #: Whether the router reads the reasoning before it is complete (False: decides at the end only).
    reads_prefixes: bool = True

    threshold: float
    threshold_slope: float
    min_step: int
    delta: int

    @abstractmethod
    def fit(self, records: Sequence[TraceRecord], p_hat: np.ndarray) -> StepwiseRouter:
        """Learn from labelled trace records (judge label, reasoning, human label) and their p̂."""

    @abstractmethod
    def score_prefix(
        self, prefix_steps: Sequence[str], item: dict[str, Any], p_hat: float, *, judge_label: str | None = None,
        item_features: np.ndarray | None = None,
    ) -> float:
        """Estimated probability that the judge's label will be wrong, given the prefix so far.

        ``item_features`` may pass g(x) when the caller already computed it (else it is computed).
        """

    def prepare(self, item: dict[str, Any], item_features: np.ndarray | None = None) -> None:
        """Called once per item before the judge starts: precompute what depends on the item only."""

    def score_traces(
        self, steps: Sequence[Sequence[str]], items: Sequence[dict[str, Any]], p_hat: np.ndarray,
        judge_labels: Sequence[str | None], item_features: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Scores after every step of every trace (entry t−1 = after step t); NaN where not polled."""
        out = []
        for item_steps, item, p, label in zip(steps, items, p_hat, judge_labels):
            total = len(item_steps)
            scores = np.full(total, np.nan)
            for t in self.polled_steps(total):
                scores[t - 1] = self.score_prefix(item_steps[:t], item, float(p), judge_label=label)
            out.append(scores)
        return out

    def threshold_at(self, t: int) -> float:
        return self.threshold + self.threshold_slope * (t - 1)

    def should_poll(self, t: int, final: bool = False) -> bool:
        """Whether to call ``decide`` after ``t`` completed steps (``final``: the stream ended)."""
        if t < 1:
            return False
        if final:
            return True
        if not self.reads_prefixes or t < self.min_step:
            return False
        return (t - self.min_step) % self.delta == 0

    def polled_steps(self, total_steps: int) -> list[int]:
        """Steps at which the router is consulted on a trace of ``total_steps`` steps."""
        return [t for t in range(1, total_steps + 1) if self.should_poll(t, final=t == total_steps)]

    def decide(
        self, prefix_steps: Sequence[str], item: dict[str, Any], p_hat: float, *, final: bool = False,
        judge_label: str | None = None, item_features: np.ndarray | None = None,
    ) -> RouterDecision:
        """CONTINUE or ESCALATE after ``len(prefix_steps)`` completed steps.

        ``final``: the judge has finished (the whole trace is known; ``judge_label`` is its label).
        Steps that are not polling points (see ``should_poll``) return CONTINUE with a NaN score.
        """
        t = len(prefix_steps)
        if not self.should_poll(t, final):
            return RouterDecision("continue", float("nan"), t)
        score = self.score_prefix(prefix_steps, item, p_hat, judge_label=judge_label, item_features=item_features)
        action: Action = "escalate" if score >= self.threshold_at(t) else "continue"
        return RouterDecision(action, score, t)

    def with_policy(self, **params: Any) -> StepwiseRouter:
        """A copy sharing the fitted model with other policy parameters (threshold, Δ, …)."""
        clone = copy.copy(self)
        for name, value in params.items():
            if name not in {"threshold", "threshold_slope", "min_step", "delta"}:
                raise ValueError(f"{name!r} is not a policy parameter")
            setattr(clone, name, value)
        return clone

    def policy(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold, "threshold_slope": self.threshold_slope,
            "min_step": self.min_step, "delta": self.delta,
        }
