import numpy as np
from scipy.stats import binom

from routing.surrogate.certify import (
    ACCEPT_ALL,
    binomial_p_values,
    certify_fixed_sequence,
    clopper_pearson_lower,
    threshold_sequence,
)


def test_p_values_are_the_exact_binomial_tail():
    k = np.array([95, 930, 50, 0])
    n = np.array([100, 1000, 50, 0])
    expected = binom.cdf(n - k, n, 1 - 0.92)
    expected[-1] = 1.0
    assert np.allclose(binomial_p_values(k, n, 0.92), expected)


def test_refuses_when_the_first_hypothesis_fails():
    scores = np.linspace(0, 1, 200)
    agree = np.zeros(200, dtype=bool)  # never agrees
    cert = certify_fixed_sequence(scores, agree, np.array([0.5, 0.2, ACCEPT_ALL]), 0.9, 0.1)
    assert not cert.certified and cert.coverage == 0 and cert.threshold is None
    assert "refused" in cert.reason and cert.lower_bound is None


def test_stops_at_the_first_failure_and_deploys_the_loosest_rejected_threshold():
    rng = np.random.default_rng(0)
    scores = rng.random(4000)
    agree = rng.random(4000) < np.where(scores > 0.4, 0.99, 0.3)  # good above 0.4, bad below
    thresholds = np.array([0.8, 0.6, 0.45, 0.3, 0.1, ACCEPT_ALL])
    cert = certify_fixed_sequence(scores, agree, thresholds, 0.95, 0.1)
    assert cert.certified and cert.threshold == 0.45
    assert cert.teacher_agreement >= 0.95 and cert.cp_lower_bound >= 0.95 - 1e-9


def test_sequence_is_ordered_strict_to_loose_and_ends_accepting_everything():
    rng = np.random.default_rng(1)
    scores = rng.random(1000)
    agree = rng.random(1000) < scores
    seq = threshold_sequence(scores, agree, 0.8, 1000)
    assert np.all(np.diff(seq) < 0) and seq[-1] == ACCEPT_ALL


def test_true_agreement_of_certified_gates_is_below_target_at_most_delta_of_the_time():
    """The guarantee itself, by simulation: the true TA at the deployed threshold is known."""
    rng = np.random.default_rng(2)
    target, delta, reps, n = 0.9, 0.1, 400, 600
    thresholds = np.linspace(0.9, 0.0, 46)
    failures = certified = 0
    for _ in range(reps):
        s = rng.random(n)
        # P(agree | s) = 0.5 + 0.5 s with s ~ U(0, 1), so TA(score >= t) = 0.75 + 0.25 t exactly.
        agree = rng.random(n) < 0.5 + 0.5 * s
        cert = certify_fixed_sequence(s, agree, thresholds, target, delta)
        if cert.certified:
            certified += 1
            t = cert.threshold
            failures += 0.75 + 0.25 * t < target
    assert certified > reps / 2
    assert failures / reps <= delta + 0.03
    assert 0.75 < target  # accepting everything would violate: the test is not trivial


def test_clopper_pearson_matches_the_beta_quantile_edge_cases():
    assert clopper_pearson_lower(0, 10, 0.1) == 0.0
    assert abs(clopper_pearson_lower(10, 10, 0.1) - 0.1 ** (1 / 10)) < 1e-9
