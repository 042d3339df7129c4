"""Metrics, bootstrap intervals and per-slice tables."""

from __future__ import annotations

import numpy as np
import pytest

from routing.metrics import RunOutcome, bootstrap_ci, compute_metrics, per_slice


def outcome() -> RunOutcome:
    return RunOutcome(
        judge_wrong=np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool),
        escalated=np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool),
        tokens=np.array([5, 10, 0, 10, 10, 2, 10, 10, 10, 10], dtype=float),
        tokens_ai_only=np.full(10, 10.0),
        router_calls=np.array([1, 3, 0, 3, 3, 1, 3, 3, 3, 3]),
    )


def test_metrics_by_hand():
    m = compute_metrics(outcome())
    assert m["accuracy"] == pytest.approx(0.9)  # one error missed out of 10
    assert m["escalation_rate"] == pytest.approx(0.3)
    assert m["error_recall"] == pytest.approx(2 / 3)
    assert m["false_escalation_rate"] == pytest.approx(1 / 7)
    assert m["escalation_precision"] == pytest.approx(2 / 3)
    assert (m["judge_tokens"], m["judge_tokens_ai_only"], m["router_calls"]) == (77, 100, 23)


def test_no_escalation_gives_zero_not_nan():
    o = outcome()
    o.escalated[:] = False
    m = compute_metrics(o)
    assert m["escalation_precision"] == 0 and m["error_recall"] == 0 and m["accuracy"] == pytest.approx(0.7)


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    outcomes = [outcome(), outcome()]
    ci = bootstrap_ci(outcomes, n_boot=300)
    assert ci["accuracy"][0] <= 0.9 <= ci["accuracy"][1] and ci["accuracy"][0] < ci["accuracy"][1]
    assert bootstrap_ci(outcomes, n_boot=300) == ci


def test_per_slice_pools_seeds():
    table = per_slice([outcome(), outcome()], [["s1"] * 5 + ["s2"] * 5] * 2)
    assert table["s1"]["n"] == 10 and table["s1"]["accuracy"] == pytest.approx(0.8)
    assert table["s2"]["ai_accuracy"] == pytest.approx(0.8)
