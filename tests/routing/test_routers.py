"""The StepwiseRouter family: learned prefix router, ablations, policies, persistence."""

from __future__ import annotations

import time

import numpy as np
import pytest

from routing.routers import (
    LearnedPrefixRouter, NoTraceRouter, RouterDecision, dump_model_bytes, full_trace_router, judge_wrong,
    load_model, load_model_bytes, save_model,
)
from routing.steps import parse_steps
from tests.routing.synthetic_traces import make_traces


@pytest.fixture(scope="module")
def fitted():
    records = make_traces(240, seed=1)
    p_hat = np.full(len(records), 0.3)
    return records, LearnedPrefixRouter().fit(records[:160], p_hat[:160])


def test_null_judge_label_counts_as_wrong():
    records = make_traces(4)
    records[0].judge_label = None
    assert judge_wrong(records)[0] == 1


def test_learned_router_escalates_wrong_judges_from_their_prefix(fitted):
    records, router = fitted
    test = records[160:]
    wrong = judge_wrong(test)
    scores_at_2 = np.array([router.score_prefix(parse_steps(r.judge_reasoning)[:2], r.input, 0.3) for r in test])
    assert scores_at_2[wrong == 1].min() > scores_at_2[wrong == 0].max()
    # After one step nothing distinguishes them yet.
    scores_at_1 = np.array([router.score_prefix(parse_steps(r.judge_reasoning)[:1], r.input, 0.3) for r in test])
    assert np.ptp(scores_at_1) < np.ptp(scores_at_2)


def test_decide_matches_offline_replay_scores(fitted):
    records, router = fitted
    test = records[160:180]
    steps = [parse_steps(r.judge_reasoning) for r in test]
    replay = router.score_traces(steps, [r.input for r in test], np.full(20, 0.3), [r.judge_label for r in test])
    for record, item_steps, row in zip(test, steps, replay):
        for t in range(1, len(item_steps) + 1):
            decision = router.decide(item_steps[:t], record.input, 0.3, final=t == len(item_steps))
            assert isinstance(decision, RouterDecision) and decision.step == t
            assert decision.score == pytest.approx(row[t - 1], abs=1e-12)
            expected = "escalate" if row[t - 1] >= router.threshold else "continue"
            assert decision.action == expected


def test_policy_polling_interval_and_minimum_step(fitted):
    _, router = fitted
    design = router.with_policy(min_step=2, delta=3, threshold=0.4)
    assert design.estimator_ is router.estimator_ and design.threshold == 0.4 and router.threshold == 0.5
    assert design.polled_steps(9) == [2, 5, 8, 9]
    assert design.decide(["one step"], {"instruction": "x"}, 0.3).action == "continue"
    assert np.isnan(design.decide(["one step"], {"instruction": "x"}, 0.3).score)
    with pytest.raises(ValueError):
        router.with_policy(C=3)
    sloped = router.with_policy(threshold=0.5, threshold_slope=-0.1)
    assert sloped.threshold_at(3) == pytest.approx(0.3)


def test_ablations_decide_only_at_the_end():
    records = make_traces(160, seed=2)
    p_hat = np.full(len(records), 0.3)
    full = full_trace_router().fit(records, p_hat)
    assert not full.reads_prefixes and full.polled_steps(4) == [4]
    assert full.decide(["a.", "b."], records[0].input, 0.3).action == "continue"
    no_trace = NoTraceRouter().fit(records, p_hat)
    assert no_trace.polled_steps(3) == [3]
    scores = no_trace.score_traces([["x"], ["y", "z"]], [records[0].input, records[1].input], np.full(2, 0.3),
                                   ["output_1", None])
    assert np.isnan(scores[1][0]) and 0 <= scores[1][1] <= 1


def test_save_and_load_round_trip(fitted, tmp_path):
    records, router = fitted
    steps = parse_steps(records[200].judge_reasoning)
    before = router.decide(steps[:2], records[200].input, 0.3)
    loaded = load_model(save_model(router, tmp_path / "router.joblib"))
    assert loaded.decide(steps[:2], records[200].input, 0.3) == before
    assert load_model_bytes(dump_model_bytes(router)).decide(steps[:2], records[200].input, 0.3) == before
    (tmp_path / "other.joblib").write_bytes(b"garbage")
    with pytest.raises(Exception):
        load_model(tmp_path / "other.joblib")


def test_a_decision_is_fast(fitted):
    records, router = fitted
    timings = []
    for record in records[160:]:
        router.prepare(record.input)
        steps = parse_steps(record.judge_reasoning)
        for t in range(1, len(steps) + 1):
            start = time.perf_counter()
            router.decide(steps[:t], record.input, 0.3)
            timings.append(time.perf_counter() - start)
    assert np.percentile(timings, 50) < 0.002
