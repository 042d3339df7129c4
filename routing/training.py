"""Fit the models a live deployment routes with, from labelled trace records.

``fit_routing_stack`` is what the app's training task calls, and it fits the ``proposed`` method
exactly as ``python -m routing evaluate`` does by default (``selection="crossfit"``): g(x) on all
labelled records; p̂ out of fold by group (so the router never learns from an overfitted p̂); f_θ on
all of them; the learned prefix router on every prefix; and SELECTROUTER on out-of-fold replays of
the whole labelled set, near-ties going to the cheaper design. ``fit_surrogate_gate`` certifies the
surrogate tier on the judge's labels with the same g(x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from routing.deployment import StepScores, prepare_replays
from routing.features import ItemFeaturizer
from routing.routers.learned import LearnedPrefixRouter, judge_wrong
from routing.scorer import DisagreementScorer, out_of_fold_disagreement
from routing.selection import Design, design_grid, select_router
from routing.surrogate.audits import boundary_pairs, slice_audit
from routing.surrogate.gate import CertifiedSurrogate
from routing.tracelog import TraceRecord

__all__ = ["RoutingStack", "audit_surrogate_gate", "fit_routing_stack", "fit_surrogate_gate"]

MIN_RECORDS = 20


@dataclass
class RoutingStack:
    """What a run needs: the featurizer, f_θ and the selected router design, with the evidence."""

    featurizer: ItemFeaturizer
    scorer: DisagreementScorer
    design: Design
    selection_table: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def fit_routing_stack(
    records: Sequence[TraceRecord], *, rho: float, folds: int = 4, random_state: int = 0
) -> RoutingStack:
    """Fit g(x), f_θ and the prefix router on the labelled records; select the design out of fold."""
    records = [r for r in records if r.human_label is not None]
    if len(records) < MIN_RECORDS:
        raise ValueError(f"need at least {MIN_RECORDS} items with a judge trace and a human label, got {len(records)}")
    wrong = judge_wrong(records)
    if wrong.all() or not wrong.any():
        raise ValueError("the labelled set needs items the judge got right and items it got wrong")
    inputs = [r.input for r in records]
    groups = np.array([r.group_key for r in records])
    folds = min(folds, len(set(groups.tolist())))
    featurizer = ItemFeaturizer(random_state=random_state).fit(inputs)
    g = featurizer.transform(inputs)
    p_oof = out_of_fold_disagreement(g, wrong, groups, folds=folds, random_state=random_state)
    # Fitted on item dicts with the already-fitted featurizer, so the stored scorer scores raw items.
    scorer = DisagreementScorer(model="mlp", featurizer=featurizer, random_state=random_state).fit(
        inputs, wrong, groups=groups
    )
    replays = prepare_replays(records)
    steps = [r.steps for r in replays]

    def fit_router(idx: np.ndarray) -> LearnedPrefixRouter:
        return LearnedPrefixRouter(item_featurizer=featurizer, random_state=random_state).fit(
            [records[i] for i in idx], p_oof[idx], steps=[steps[i] for i in idx], item_features=g[idx]
        )

    router = fit_router(np.arange(len(records)))
    dev_rows: list[np.ndarray | None] = [None] * len(records)
    for inner, outer in GroupKFold(n_splits=folds).split(g, wrong, groups):
        every_step = fit_router(inner).with_policy(min_step=1, delta=1)
        scored = every_step.score_traces([steps[i] for i in outer], [inputs[i] for i in outer], p_oof[outer],
                                         [records[i].judge_label for i in outer], g[outer])
        for i, row in zip(outer, scored):
            dev_rows[i] = row
    dev_scores = StepScores(dev_rows)
    designs = design_grid("proposed", router, dev_scores, p_oof)
    result = select_router(designs, dev_scores, replays, p_oof, wrong, rho, loss_tolerance=1.0 / len(records))
    selected = next(row for row in result.table if row["selected"])
    metrics = {"n_labelled": len(records), "folds": folds, "rho": rho,
               "judge_error_rate": float(wrong.mean()), "selected": selected}
    return RoutingStack(featurizer=featurizer, scorer=scorer, design=result.best, selection_table=result.table,
                        metrics=metrics)


def fit_surrogate_gate(
    X: np.ndarray,
    teacher_labels: Sequence[str | None],
    *,
    target: float = 0.92,
    delta: float = 0.1,
    groups: Sequence[str] | None = None,
    random_state: int = 0,
) -> CertifiedSurrogate:
    """Certify a surrogate on g(x) and the judge's (teacher's) labels; it refuses (coverage 0) when it cannot."""
    return CertifiedSurrogate(target=target, delta=delta, random_state=random_state).fit(
        X, list(teacher_labels), groups=None if groups is None else np.asarray(groups)
    )


def audit_surrogate_gate(
    gate: CertifiedSurrogate, X: np.ndarray, teacher_labels: Sequence[str | None], slices: Sequence[str | None],
    ids: Sequence[str],
) -> dict[str, Any]:
    """Per-slice coverage / TA / certification and contrastive boundary pairs of the deployed gate.

    Run on the rows the gate was fitted on, the slice statuses are indicative, not certificates.
    """
    accept, labels, scores = gate.decide(X)
    teacher = np.array(list(teacher_labels), dtype=object)
    return {
        "slice_audit": slice_audit(accept, labels, teacher, np.array([s or "(none)" for s in slices], dtype=object),
                                   gate.target, gate.delta),
        "boundary_pairs": boundary_pairs(X, accept, scores, list(ids)),
        "audit_rows": "fit and calibration rows (indicative)",
    }
