"""Algorithm 1: budget, order, t = 0 escalation, pacing, token accounting."""

from __future__ import annotations

import numpy as np
import pytest

from routing.deployment import (
    BudgetPacer, StepScores, budget_size, deploy_budgeted, estimate_tokens, prepare_replays, review_order,
)
from routing.routers import LearnedPrefixRouter
from routing.steps import LOOKAHEAD
from routing.tracelog import TraceRecord


def records_with(n_steps: list[int]) -> list[TraceRecord]:
    return [
        TraceRecord(id=str(i), input={"q": "x"}, judge_label="a", human_label="a",
                    judge_reasoning=" ".join(f"Sentence number {k} of trace {i} is here." for k in range(steps)))
        for i, steps in enumerate(n_steps)
    ]


def policy(threshold=0.5, min_step=1, delta=1) -> LearnedPrefixRouter:
    return LearnedPrefixRouter(threshold=threshold, min_step=min_step, delta=delta)


def test_budget_is_floor_and_never_overspent():
    assert budget_size(0.3, 10) == 3 and budget_size(0.3, 9) == 2 and budget_size(0.0, 5) == 0
    with pytest.raises(ValueError):
        budget_size(1.5, 3)
    replays = prepare_replays(records_with([3] * 10))
    scores = [np.array([0.9, 0.9, 0.9])] * 10
    outcome = deploy_budgeted(policy(), scores, replays, np.linspace(0, 1, 10), 0.3)
    assert outcome.escalated.sum() == 3 == outcome.budget
    # Highest p̂ first: the last three items (p̂ 1.0, 0.89, 0.78) take the budget.
    assert outcome.escalated[-3:].all()
    # Items after the budget ran out are not routed at all.
    assert outcome.router_calls[:7].sum() == 0 and (outcome.router_calls[-3:] == 1).all()


def test_first_crossing_policy_and_token_accounting():
    replays = prepare_replays(records_with([4, 4, 4]))
    scores = [np.array([0.1, 0.7, 0.9, 0.9]), np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.8, 0.1])]
    outcome = deploy_budgeted(policy(min_step=1, delta=2), scores, replays, [0.5, 0.4, 0.3], 1.0)
    # Δ=2 from step 1 polls steps 1, 3 and the end (4).
    assert outcome.stop_step.tolist() == [3, -1, 3]
    assert outcome.router_calls.tolist() == [2, 3, 2]
    text = records_with([4])[0].judge_reasoning
    third_end = text.index("3 of trace") - len("Sentence number ")  # where step 3 ends (before step 4)
    assert outcome.tokens[1] == replays[1].total_tokens
    assert outcome.tokens[0] < replays[0].total_tokens
    assert outcome.tokens[0] == estimate_tokens(text[: third_end - 1 + LOOKAHEAD])


def test_escalation_before_the_judge_starts_costs_no_tokens():
    replays = prepare_replays(records_with([3, 3, 3, 3]))
    scores = [np.zeros(3)] * 4
    outcome = deploy_budgeted(policy(), scores, replays, [0.95, 0.2, 0.9, 0.1], 0.5, escalate_at_start_above=0.9)
    assert outcome.escalated.tolist() == [True, False, True, False]
    assert outcome.stop_step.tolist() == [0, -1, 0, -1] and outcome.tokens[[0, 2]].tolist() == [0, 0]
    assert outcome.router_calls[[0, 2]].tolist() == [0, 0]


def test_pacing_keeps_budget_for_later_items():
    replays = prepare_replays(records_with([2] * 20))
    scores = [np.array([0.9, 0.9])] * 20
    p_hat = np.linspace(1, 0, 20)
    unpaced = deploy_budgeted(policy(), scores, replays, p_hat, 0.5)
    paced = deploy_budgeted(policy(), scores, replays, p_hat, 0.5, pacing="proportional", pacing_slack=0.0)
    assert unpaced.escalated[:10].all() and not unpaced.escalated[10:].any()
    assert paced.escalated.sum() == 10 and paced.escalated[::2].sum() + paced.escalated[1::2].sum() == 10
    assert paced.escalated[10:].sum() >= 4
    # With slack ≥ 1 pacing never binds: identical to no pacing.
    loose = deploy_budgeted(policy(), scores, replays, p_hat, 0.5, pacing="proportional", pacing_slack=1.0)
    assert (loose.escalated == unpaced.escalated).all() and (loose.router_calls == unpaced.router_calls).all()
    pacer = BudgetPacer(4, 8, "proportional", slack=0.0)
    assert [pacer.allowance(k) for k in range(8)] == [1, 1, 1, 2, 2, 3, 3, 4]


def test_review_order_is_stable_and_descending():
    assert review_order([0.2, 0.9, 0.2, 0.5]).tolist() == [1, 3, 0, 2]


def test_step_scores_pad_ragged_traces():
    scores = StepScores([np.array([0.1]), np.array([0.2, 0.3, 0.4]), np.array([])])
    assert scores.matrix.shape == (3, 3) and scores.lengths.tolist() == [1, 3, 0]
    first, calls = scores.first_crossing(policy(threshold=0.3))
    assert first.tolist() == [0, 2, 0] and calls.tolist() == [1, 2, 0]
