"""SELECTROUTER: lowest missed-error loss within the budget, ties by lower effort, whole table kept."""

from __future__ import annotations

import numpy as np

from routing.deployment import StepScores, prepare_replays
from routing.routers import LearnedPrefixRouter
from routing.selection import Design, candidate_thresholds, policy_grid, select_router
from routing.tracelog import TraceRecord


def test_selects_min_loss_design_and_breaks_ties_by_effort():
    records = [
        TraceRecord(id=str(i), input={"q": "x"}, judge_label="a", human_label="a" if i % 2 else "b",
                    judge_reasoning="First step here. Second step here. Third step is the last one.")
        for i in range(10)
    ]
    replays = prepare_replays(records)
    wrong = np.array([i % 2 == 0 for i in range(10)])
    # Wrong traces are recognisable from step 1 (score 0.8) but also again at step 3 (0.9).
    scores = StepScores([np.array([0.8, 0.5, 0.9]) if w else np.array([0.2, 0.2, 0.2]) for w in wrong])
    router = LearnedPrefixRouter()
    designs = [Design(r) for r in policy_grid(router, [0.85, 0.7, 0.1], min_steps=(1, 3))]
    result = select_router(designs, scores, replays, np.full(10, 0.5), wrong, 0.5)
    assert len(result.table) == 6 and sum(row["selected"] for row in result.table) == 1
    best = result.best.router
    # τ=0.85/0.7 at min_step 1, and τ=0.7/0.85 at min_step 3, all catch every error; τ=0.7 from step 1
    # stops the judge earliest (least effort).
    assert (best.threshold, best.min_step) == (0.7, 1)
    chosen = next(row for row in result.table if row["selected"])
    assert chosen["loss"] == 0 and chosen["escalation_rate"] == 0.5 and chosen["feasible"]
    # τ=0.1 escalates everyone it can: the budget (5) runs out on the first items in order.
    low = next(row for row in result.table if row["threshold"] == 0.1 and row["min_step"] == 1)
    assert low["loss"] > 0


def test_candidate_thresholds_are_sorted_quantiles():
    values = candidate_thresholds([np.linspace(0, 1, 101)], n=5)
    assert values == sorted(values) and 0.25 < values[0] < values[-1] <= 1.0
