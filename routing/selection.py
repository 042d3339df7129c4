"""SELECTROUTER: choose a router design ψ by replaying logged prefixes on D_dev.

For every candidate design (a fitted router with a policy: threshold τ, slope, min_step, Δ, plus
the deployment options t = 0 escalation and pacing) run budgeted deployment on D_dev and record
the missed-error loss (share of items the judge gets wrong and nobody escalates), the escalation
rate and the AI-effort proxy Σ τ_i / T_i / n (share of each trace streamed before the stop).
Pick the lowest loss among designs with escalation ≤ ρ; ties go to the lower effort. The whole
table is kept for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from routing.deployment import DeploymentOutcome, Pacing, StepScores, TraceReplay, deploy_budgeted
from routing.routers.base import StepwiseRouter

__all__ = ["Design", "SelectionResult", "candidate_thresholds", "policy_grid", "score_key", "select_router"]


@dataclass
class Design:
    """A candidate: a fitted router carrying its policy, plus deployment options."""

    router: StepwiseRouter
    escalate_at_start_above: float | None = None
    pacing: Pacing = "none"
    pacing_slack: float = 0.1
    name: str = "design"

    def deploy(self, step_scores, replays, p_hat, rho) -> DeploymentOutcome:
        return deploy_budgeted(
            self.router, step_scores, replays, p_hat, rho, escalate_at_start_above=self.escalate_at_start_above,
            pacing=self.pacing, pacing_slack=self.pacing_slack,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, **self.router.policy(), "escalate_at_start_above": self.escalate_at_start_above,
            "pacing": self.pacing,
        }


@dataclass
class SelectionResult:
    best: Design
    table: list[dict[str, Any]] = field(default_factory=list)


def candidate_thresholds(step_scores: Sequence[np.ndarray], n: int = 40) -> list[float]:
    """Quantiles of the scores a router produced on D_dev (thresholds that change decisions)."""
    values = np.concatenate([s[~np.isnan(s)] for s in step_scores if len(s)] or [np.zeros(1)])
    return sorted(set(np.round(np.quantile(values, np.linspace(0.3, 0.995, n)), 6).tolist()))


def policy_grid(
    router: StepwiseRouter, thresholds: Iterable[float], *, slopes: Iterable[float] = (0.0,),
    min_steps: Iterable[int] = (1,), deltas: Iterable[int] = (1,),
) -> list[StepwiseRouter]:
    """The router with every combination of policy parameters (sharing one fitted model)."""
    return [
        router.with_policy(threshold=float(tau), threshold_slope=float(slope), min_step=int(m), delta=int(d))
        for tau in thresholds for slope in slopes for m in min_steps for d in deltas
    ]


def _evaluate(design: Design, step_scores, replays, p_hat, wrong, rho, totals) -> tuple[dict[str, Any], DeploymentOutcome]:
    outcome = design.deploy(step_scores, replays, p_hat, rho)
    row = {
        **design.describe(),
        "loss": float(np.mean(wrong & ~outcome.escalated)),
        "escalation_rate": float(np.mean(outcome.escalated)),
        "effort": float(np.mean(outcome.tokens / totals)),
    }
    return row, outcome


def select_router(
    designs: Sequence[Design],
    step_scores: StepScores | Sequence[np.ndarray] | Mapping[int, StepScores | Sequence[np.ndarray]],
    replays: Sequence[TraceReplay],
    p_hat: np.ndarray,
    wrong: np.ndarray,
    rho: float,
    loss_tolerance: float = 0.0,
) -> SelectionResult:
    """Replay every design on D_dev and pick argmin loss s.t. escalation ≤ ρ, ties by lower effort.

    All designs share one fitted scoring model (they differ in policy and deployment options), so
    ``step_scores`` — its scores after every step of every D_dev trace — is computed once. A mapping
    ``{score_key(router): scores}`` is accepted too (designs over several fitted models).
    ``loss_tolerance``: designs whose loss is within this of the lowest count as tied (e.g. one dev
    item, 1/n: a difference the dev set cannot resolve), and the lowest effort among them wins.
    """
    if isinstance(step_scores, Mapping):
        by_model = {k: v if isinstance(v, StepScores) else StepScores(v) for k, v in step_scores.items()}
    else:
        shared = step_scores if isinstance(step_scores, StepScores) else StepScores(step_scores)
        by_model = None
    wrong = np.asarray(wrong, dtype=bool)
    totals = np.array([max(1, r.total_tokens) for r in replays], dtype=float)
    table: list[dict[str, Any]] = []
    for design in designs:
        scores = shared if by_model is None else by_model[score_key(design.router)]
        row, _ = _evaluate(design, scores, replays, p_hat, wrong, rho, totals)
        row["feasible"] = row["escalation_rate"] <= rho + 1e-12
        row["selected"] = False
        table.append(row)
    feasible = [k for k, row in enumerate(table) if row["feasible"]]
    if not feasible:
        raise ValueError("no design meets the escalation budget on D_dev")
    lowest = min(table[k]["loss"] for k in feasible)
    tied = [k for k in feasible if table[k]["loss"] <= lowest + loss_tolerance + 1e-12]
    chosen = min(tied, key=lambda k: (table[k]["effort"], table[k]["loss"], k))
    table[chosen]["selected"] = True
    return SelectionResult(best=designs[chosen], table=table)


def score_key(router: StepwiseRouter) -> int:
    """Designs that differ only in policy share a fitted model, hence one set of scores."""
    return id(getattr(router, "estimator_", router))


def design_grid(
    method: str, router: StepwiseRouter, dev_scores: StepScores, p_dev: np.ndarray
) -> list[Design]:
    """The candidate designs of one method, over thresholds drawn from its scores on D_dev.

    ``proposed`` varies the threshold, its slope over t, min_step and the t = 0 escalation option
    (p̂ quantiles); ``proposed_delta2/4`` poll every 2 / 4 steps; ``proposed_paper`` has no t = 0
    option; the ablations (and the LLM router) vary the threshold only.
    """
    thresholds = candidate_thresholds([row[~np.isnan(row)] for row in dev_scores.matrix])
    if method in ("full_trace_one_shot", "no_trace", "llm_router"):
        return [Design(r, name=method) for r in policy_grid(router, thresholds)]
    thresholds = thresholds[:: max(1, len(thresholds) // 30)]
    delta = {"proposed_delta2": 2, "proposed_delta4": 4}.get(method, 1)
    grid = policy_grid(router, thresholds, slopes=(-0.02, 0.0, 0.02), min_steps=(1, 2), deltas=(delta,))
    starts: list[float | None] = [None]
    if method != "proposed_paper":
        starts += [float(np.quantile(p_dev, q)) for q in (0.97, 0.9)]
    return [Design(r, escalate_at_start_above=s, name=method) for r in grid for s in starts]
