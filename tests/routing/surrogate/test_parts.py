import numpy as np

from routing.surrogate import Acceptor, DriftWatch, KNNDistanceOOD, confidence_features, select_surrogate
from routing.surrogate.audits import boundary_pairs, slice_audit, temporal_delta
from routing.surrogate.gate import CertifiedSurrogate
from routing.surrogate.zoo import CANDIDATES, class_proba, make_candidate

from .synthetic import teacher_data


def test_confidence_features():
    f = confidence_features(np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    assert np.allclose(f[0, :3], [0.7, 0.2, 0.5]) and np.isclose(f[1, 3], 1.0)


def test_zoo_selects_the_best_validation_macro_f1():
    X, y = teacher_data(900, seed=1)
    yi = np.array([int(v[1:]) for v in y])
    res = select_surrogate(X[:600], yi[:600], X[600:], yi[600:], ("decision_tree", "logreg_c1"))
    f1 = {s["name"]: s["macro_f1"] for s in res.scores}
    assert res.name == max(f1, key=f1.get) and len(res.scores) == 2
    proba = class_proba(res.model, X[600:], 6)
    assert proba.shape == (300, 6) and np.allclose(proba.sum(axis=1), 1)


def test_every_candidate_is_constructible():
    for name in CANDIDATES:
        if name != "xgboost":
            assert hasattr(make_candidate(name), "fit")


def test_acceptor_ranks_agreement():
    rng = np.random.default_rng(0)
    conf = rng.random(2000)
    proba = np.column_stack([conf, 1 - conf])
    agree = rng.random(2000) < np.maximum(conf, 1 - conf)
    scores = Acceptor().fit(proba, agree).score(proba)
    top = scores >= np.quantile(scores, 0.7)
    assert agree[top].mean() > agree[~top].mean() + 0.1
    assert len(Acceptor().cross_fit_score(proba, agree)) == 2000


def test_knn_ood():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    ood = KNNDistanceOOD(quantile=0.99).fit(X)
    assert ood.is_outlier(X).mean() < 0.05 and ood.is_outlier(X + 50).all()


def test_drift_watch_keeps_a_good_gate_and_suspends_a_bad_one():
    rng = np.random.default_rng(0)
    good, bad = DriftWatch(0.9, 0.1), DriftWatch(0.9, 0.1)
    good.update_many(rng.random(500) < 0.97)
    bad.update_many(rng.random(500) < 0.7)
    assert not good.suspended and good.ta_upper_bound > 0.9
    assert bad.suspended and bad.suspended_at is not None and bad.ta_upper_bound < 0.9
    bad.update_many(np.ones(500, dtype=bool))
    assert bad.suspended  # only a refit lifts a suspension


def test_slice_audit_and_boundary_pairs():
    accept = np.array([True] * 80 + [False] * 20 + [True] * 10)
    labels = np.array(["a"] * 110, dtype=object)
    teacher = np.array(["a"] * 78 + ["b"] * 2 + ["a"] * 30, dtype=object)
    slices = np.array(["big"] * 100 + ["small"] * 10, dtype=object)
    rows = {r["slice"]: r for r in slice_audit(accept, labels, teacher, slices, 0.9, 0.1)}
    assert rows["big"]["status"] == "certified" and rows["big"]["coverage"] == 0.8
    assert rows["small"]["status"] == "too small to certify"
    X = np.arange(110, dtype=float)[:, None]
    pairs = boundary_pairs(X, accept, np.zeros(110), [str(i) for i in range(110)], n_pairs=3)
    assert pairs and pairs[0]["distance"] == 1.0


def test_temporal_delta_between_two_fits():
    X, y = teacher_data(1200, seed=4)
    a = CertifiedSurrogate(target=0.9, candidates=("logreg_c1",), random_state=0).fit(X, y)
    b = CertifiedSurrogate(target=0.9, candidates=("decision_tree",), random_state=1).fit(X, y)
    d = temporal_delta(a, b, X)
    assert d["surrogate"] == ["logreg_c1", "decision_tree"]
    assert abs(d["coverage_new"] - d["coverage_old"] - (d["newly_accepted"] - d["newly_deferred"])) < 1e-9
