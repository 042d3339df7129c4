"""Budgeted deployment (Algorithm 1) and the offline replay of logged traces.

Algorithm 1: order the batch U by p̂ descending; the budget is B = ⌊ρ·|U|⌋ human labels. For each
item, stream the judge; at every polled step the router may ESCALATE, which stops the judge and
spends one unit of budget if any remains; otherwise the judge completes. The final label is the
human's if escalated, else the judge's.

Two options go beyond the paper (off by default, both measured in the report):
- ``escalate_at_start_above``: escalate before the judge starts (t = 0, no judge tokens) when p̂
  alone is at least this high;
- ``pacing="proportional"``: after k of the n items, at most ⌊B·k/n + slack·B⌋ units may be spent,
  so the first (highest-p̂) items cannot take the whole budget.

Judge tokens are counted up to the stop: a step is known complete only once ``LOOKAHEAD`` more
characters have streamed, so a stop after step t costs the text up to its end plus that look-ahead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from routing.judges.tokens import estimate_tokens  # the live judge client's counter: offline == online
from routing.routers.base import StepwiseRouter
from routing.steps import LOOKAHEAD, StepParser
from routing.tracelog import TraceRecord

__all__ = [
    "BudgetPacer", "DeploymentOutcome", "StepScores", "TraceReplay", "budget_size", "deploy_budgeted", "estimate_tokens",
    "prepare_replays", "review_order",
]

Pacing = Literal["none", "proportional"]


def budget_size(rho: float, n: int) -> int:
    """B = ⌊ρ·n⌋ (with a tolerance so that e.g. 0.3·10 gives 3)."""
    if not 0 <= rho <= 1:
        raise ValueError(f"budget must be in [0, 1], got {rho}")
    return int(math.floor(rho * n + 1e-9))


def review_order(p_hat: Sequence[float]) -> np.ndarray:
    """Item indices by p̂ descending (stable: ties keep the input order)."""
    return np.argsort(-np.asarray(p_hat, dtype=float), kind="stable")


@dataclass(frozen=True)
class TraceReplay:
    """One logged trace prepared for replay: its steps and the judge tokens spent by each step."""

    steps: list[str]
    tokens_after: np.ndarray  # tokens streamed when step t (index t−1) is known complete
    total_tokens: int


def prepare_replays(records: Sequence[TraceRecord]) -> list[TraceReplay]:
    """Parse every trace into steps and count the tokens streamed up to each step's emission."""
    replays = []
    for record in records:
        text = record.judge_reasoning
        parser = StepParser()
        steps = parser.feed(text) + parser.close()
        total = record.judge_output_tokens if record.judge_output_tokens is not None else estimate_tokens(text)
        scale = total / max(1, estimate_tokens(text))
        ends = [min(len(text), end + LOOKAHEAD) for _, end in parser.spans]
        tokens = np.array([min(total, round(estimate_tokens(text[:e]) * scale)) for e in ends], dtype=float)
        if len(tokens):
            tokens[-1] = total  # the last step is only known complete when the stream ends
        replays.append(TraceReplay(steps=steps, tokens_after=tokens, total_tokens=int(total)))
    return replays


class BudgetPacer:
    """The budget ledger of one batch: B units, optionally paced over the n items in order."""

    def __init__(self, budget: int, n_items: int, pacing: Pacing = "none", slack: float = 0.1):
        if pacing not in ("none", "proportional"):
            raise ValueError(f"unknown pacing {pacing!r}")
        self.budget = budget
        self.n_items = n_items
        self.pacing = pacing
        self.slack = slack
        self.spent = 0

    def allowance(self, position: int) -> int:
        """Units that may have been spent once the item at ``position`` (0-based) is processed."""
        if self.pacing == "none" or self.n_items == 0:
            return self.budget
        paced = math.floor(self.budget * (position + 1) / self.n_items + self.slack * self.budget + 1e-9)
        return min(self.budget, max(1, paced))

    def can_spend(self, position: int) -> bool:
        return self.spent < self.allowance(position)

    def try_spend(self, position: int) -> bool:
        if not self.can_spend(position):
            return False
        self.spent += 1
        return True


@dataclass
class DeploymentOutcome:
    """Per item (input order): escalated?, stop step (0 = before the judge, −1 = judge completed),
    judge tokens spent, router calls."""

    escalated: np.ndarray
    stop_step: np.ndarray
    tokens: np.ndarray
    router_calls: np.ndarray
    budget: int


class StepScores:
    """Router scores after each step of each trace, padded into an (n, max steps) matrix (NaN = none)."""

    def __init__(self, step_scores: Sequence[np.ndarray]):
        self.lengths = np.array([len(s) for s in step_scores], dtype=int)
        width = max(1, int(self.lengths.max(initial=0)))
        self.matrix = np.full((len(step_scores), width), np.nan)
        for i, scores in enumerate(step_scores):
            self.matrix[i, : len(scores)] = scores

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, index: np.ndarray) -> StepScores:
        out = StepScores.__new__(StepScores)
        out.lengths, out.matrix = self.lengths[index], self.matrix[index]
        return out

    def _polled(self, reads_prefixes: bool, min_step: int, delta: int) -> tuple[np.ndarray, np.ndarray]:
        """(polled mask, cumulative polls) for a polling policy; cached, as selection reuses them."""
        cache = self.__dict__.setdefault("_polled_cache", {})
        key = (reads_prefixes, min_step, delta)
        if key not in cache:
            steps = np.arange(1, self.matrix.shape[1] + 1)
            polled = steps[None, :] == self.lengths[:, None]  # the end of the stream is always polled
            if reads_prefixes:
                periodic = (steps >= min_step) & ((steps - min_step) % delta == 0)
                polled = polled | (periodic[None, :] & (steps[None, :] <= self.lengths[:, None]))
            cache[key] = (polled, np.cumsum(polled, axis=1))
        return cache[key]

    def first_crossing(self, router: StepwiseRouter) -> tuple[np.ndarray, np.ndarray]:
        """Per trace: the first polled step whose score reaches τ_t (0 = none), and polls up to it."""
        polled, calls_to = self._polled(router.reads_prefixes, router.min_step, router.delta)
        thresholds = router.threshold + router.threshold_slope * np.arange(self.matrix.shape[1])
        with np.errstate(invalid="ignore"):
            crossed = polled & (self.matrix >= thresholds[None, :])
        any_cross = crossed.any(axis=1)
        first = np.where(any_cross, crossed.argmax(axis=1) + 1, 0)
        calls = np.where(any_cross, calls_to[np.arange(len(first)), np.maximum(first - 1, 0)], calls_to[:, -1])
        return first, calls


def deploy_budgeted(
    router: StepwiseRouter,
    step_scores: Sequence[np.ndarray] | StepScores,
    replays: Sequence[TraceReplay],
    p_hat: Sequence[float],
    rho: float,
    *,
    escalate_at_start_above: float | None = None,
    pacing: Pacing = "none",
    pacing_slack: float = 0.1,
) -> DeploymentOutcome:
    """Algorithm 1 on logged traces, with the router's policy applied to precomputed step scores.

    ``step_scores[i][t − 1]`` is the router's score after step t of trace i (what ``decide`` would
    return there); the policy decides which steps are polled and the threshold at each.
    """
    scores = step_scores if isinstance(step_scores, StepScores) else StepScores(step_scores)
    n = len(replays)
    p_hat = np.asarray(p_hat, dtype=float)
    budget = budget_size(rho, n)
    pacer = BudgetPacer(budget, n, pacing, pacing_slack)
    first, polls = scores.first_crossing(router)
    order = review_order(p_hat)
    start = escalate_at_start_above if escalate_at_start_above is not None else np.inf
    at_start = p_hat >= start
    wants = at_start | (first > 0)
    if pacing == "none":
        # Without pacing the loop below reduces to: the first B items (in p̂ order) that want to
        # escalate get the budget; items after the budget ran out are not routed at all.
        ranked_wants = wants[order]
        granted_ranked = ranked_wants & (np.cumsum(ranked_wants) <= budget)
        exhausted_at = np.flatnonzero(np.cumsum(granted_ranked) >= budget)
        routed_ranked = np.ones(n, dtype=bool)
        if budget == 0:
            routed_ranked[:] = False
        elif len(exhausted_at):
            routed_ranked[exhausted_at[0] + 1:] = False
        granted, routed = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        granted[order], routed[order] = granted_ranked, routed_ranked
    else:
        pacer = BudgetPacer(budget, n, pacing, pacing_slack)
        granted, routed = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for position, i in enumerate(order):
            if not pacer.can_spend(position):
                continue  # no budget for this item: the judge completes, the router is not consulted
            routed[i] = True
            if wants[i]:
                granted[i] = pacer.try_spend(position)
    escalated = granted
    stop_step = np.where(granted, np.where(at_start, 0, first), -1)
    tokens = np.array([r.total_tokens for r in replays], dtype=float)
    stopped = np.flatnonzero(granted & ~at_start)
    tokens[stopped] = [replays[i].tokens_after[first[i] - 1] for i in stopped]
    tokens[granted & at_start] = 0.0
    calls = np.where(routed & ~at_start, polls, 0)
    return DeploymentOutcome(escalated, stop_step, tokens, calls, budget)
