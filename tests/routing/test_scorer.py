"""Disagreement scorer f_θ: calibrated p̂ from g(x), on item dicts or feature matrices."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from routing.features import ItemFeaturizer
from routing.scorer import DisagreementScorer


def items(n=300, seed=0):
    rng = np.random.default_rng(seed)
    out, y = [], []
    for k in range(n):
        hard = rng.random() < 0.4
        topic = "tricky riddle with a subtle trap" if hard else "plain arithmetic sum"
        out.append({"instruction": f"Solve this {topic} number {k}.", "output_1": "yes", "output_2": "no"})
        y.append(int(rng.random() < (0.7 if hard else 0.1)))
    return out, np.array(y)


@pytest.mark.parametrize("model", ["mlp", "logreg"])
def test_scorer_ranks_hard_items_higher(model):
    x, y = items()
    groups = [f"g{k // 2}" for k in range(len(x))]
    scorer = DisagreementScorer(model=model).fit(x[:200], y[:200], groups=groups[:200])
    p = scorer.predict_disagreement(x[200:])
    assert p.shape == (100,) and ((0 <= p) & (p <= 1)).all()
    assert roc_auc_score(y[200:], p) > 0.7
    assert scorer.predict_proba(x[200:]).shape == (100, 2)


def test_scorer_accepts_a_shared_fitted_featurizer_or_a_matrix():
    x, y = items()
    featurizer = ItemFeaturizer().fit(x)
    by_items = DisagreementScorer(model="logreg", featurizer=featurizer).fit(x, y)
    assert by_items.featurizer_ is featurizer
    g = featurizer.transform(x)
    by_matrix = DisagreementScorer(model="logreg").fit(g, y)
    np.testing.assert_allclose(by_items.predict_disagreement(x), by_matrix.predict_disagreement(g))
    with pytest.raises(ValueError):
        by_matrix.predict_disagreement(x)
    with pytest.raises(ValueError):
        DisagreementScorer().fit(g, np.zeros(len(y)))
