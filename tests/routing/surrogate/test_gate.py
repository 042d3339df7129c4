import numpy as np
import pytest

from routing.surrogate import CertifiedSurrogate
from routing.surrogate.gate import split_indices

from .synthetic import teacher_data

FAST = ("logreg_c1", "decision_tree")


@pytest.fixture(scope="module")
def fitted():
    X, y = teacher_data(1500, seed=0)
    return CertifiedSurrogate(target=0.9, delta=0.1, candidates=FAST, random_state=0).fit(X, y), X, y


def test_certifies_and_holds_the_target_on_fresh_data(fitted):
    gate, _, _ = fitted
    assert gate.certified and gate.lower_bound == 0.9 and 0 < gate.coverage <= 1
    X_new, y_new = teacher_data(3000, seed=0, sample_seed=99)  # same distribution, fresh rows
    accept, labels, scores = gate.decide(X_new)
    assert accept.shape == labels.shape == scores.shape == (3000,)
    assert accept.mean() > 0.3
    assert (labels[accept] == y_new[accept]).mean() >= 0.88  # target 0.9 minus sampling slack
    predicted = gate.predict(X_new)
    assert all(p is None for p in predicted[~accept]) and list(predicted[accept]) == list(labels[accept])


def test_refuses_when_the_teacher_is_unlearnable():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 5))
    y = np.array([f"c{k}" for k in rng.integers(0, 4, 800)], dtype=object)
    gate = CertifiedSurrogate(target=0.9, candidates=("logreg_c1",), random_state=0).fit(X, y)
    assert not gate.certified and gate.coverage == 0 and "refused" in gate.certificate_.reason
    assert not gate.decide(X)[0].any() and all(p is None for p in gate.predict(X))


def test_frontier_targets_and_with_target(fitted):
    gate, X, _ = fitted
    targets = [f["target"] for f in gate.manifest()["frontier"]]
    assert targets == sorted({0.85, 0.9, 0.95})
    loose, strict = gate.with_target(0.85), gate.with_target(0.95)
    if loose.certified and strict.certified:
        assert loose.decide(X)[0].mean() >= strict.decide(X)[0].mean()
    with pytest.raises(ValueError):
        gate.with_target(0.5)


def test_missing_teacher_labels_count_as_disagreement():
    X, y = teacher_data(1200, seed=3)
    y = y.copy()
    y[::7] = None
    gate = CertifiedSurrogate(target=0.85, candidates=("logreg_c1",), random_state=0).fit(X, list(y))
    assert None not in set(gate.classes_)


def test_save_load_round_trip(fitted, tmp_path):
    gate, X, _ = fitted
    loaded = CertifiedSurrogate.load(gate.save(tmp_path / "gate.joblib"))
    a1, l1, s1 = gate.decide(X)
    a2, l2, s2 = loaded.decide(X)
    assert (a1 == a2).all() and (l1 == l2).all() and np.allclose(s1, s2)


def test_drift_watch_suspends_the_gate(fitted):
    gate, X, _ = fitted
    gate = gate.with_target(0.9)  # a fresh watch, leaves the fixture alone
    for _ in range(200):
        if gate.record_spot_check(False):
            break
    assert gate.suspended and not gate.decide(X)[0].any()


def test_ood_inputs_are_deferred(fitted):
    gate, X, _ = fitted
    far = X[:20] + 100.0
    assert not gate.decide(far)[0].any()


def test_groups_never_straddle_splits():
    y = np.repeat(np.arange(4), 50)
    groups = np.repeat(np.arange(100), 2)
    parts = split_indices(y, groups, 0.2, 0.2, 0)
    seen = [set(groups[p]) for p in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sum(len(p) for p in parts) == 200
