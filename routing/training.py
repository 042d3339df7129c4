"""Fit the models a live deployment routes with, from labelled trace records.

``fit_routing_stack`` is what the app's training task calls: g(x) on the training part, the
disagreement scorer f_θ, the learned prefix router on D_train prefixes, and SELECTROUTER on a
grouped dev split, returning the selected design (router + policy + deployment options) and the
whole Loss / Escalation / Effort table. ``fit_surrogate_gate`` certifies the surrogate tier on the
judge's labels with the same featurizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from routing.deployment import StepScores, prepare_replays
from routing.features import ItemFeaturizer
from routing.routers.learned import LearnedPrefixRouter, judge_wrong
from routing.scorer import DisagreementScorer
from routing.selection import Design, candidate_thresholds, policy_grid, score_key, select_router
from routing.splits import grouped_random_split
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
    records: Sequence[TraceRecord],
    *,
    rho: float,
    dev_size: float = 0.25,
    deltas: Sequence[int] = (1, 2),
    random_state: int = 0,
) -> RoutingStack:
    """Fit g(x), f_θ and the prefix router on a grouped train split; select the design on dev."""
    records = [r for r in records if r.human_label is not None]
    if len(records) < MIN_RECORDS:
        raise ValueError(f"need at least {MIN_RECORDS} items with a judge trace and a human label, got {len(records)}")
    wrong = judge_wrong(records)
    if wrong.all() or not wrong.any():
        raise ValueError("the labelled set needs items the judge got right and items it got wrong")
    split = grouped_random_split([r.group_key for r in records], dev_size=dev_size, test_size=0.0,
                                 random_state=random_state)
    # No test part here: the run itself is the test. Fold the one group the splitter keeps aside back in.
    train, dev = _ensure_both_classes(np.concatenate([split.train, split.test]), split.dev, wrong)
    inputs = [r.input for r in records]
    featurizer = ItemFeaturizer(random_state=random_state).fit([inputs[i] for i in train])
    g = featurizer.transform(inputs)
    # Fitted on item dicts with the already-fitted featurizer, so the stored scorer scores raw items.
    scorer = DisagreementScorer(model="mlp", featurizer=featurizer, random_state=random_state).fit(
        [inputs[i] for i in train], wrong[train]
    )
    p_hat = scorer.predict_disagreement(g)
    replays = prepare_replays(records)
    steps = [r.steps for r in replays]
    router = LearnedPrefixRouter(random_state=random_state).fit(
        [records[i] for i in train], p_hat[train], steps=[steps[i] for i in train]
    )
    every_step = router.with_policy(min_step=1, delta=1)
    dev_scores = StepScores(every_step.score_traces(
        [steps[i] for i in dev], [inputs[i] for i in dev], p_hat[dev], [records[i].judge_label for i in dev]
    ))
    thresholds = candidate_thresholds([row[~np.isnan(row)] for row in dev_scores.matrix])
    grid = policy_grid(router, thresholds, slopes=(-0.02, 0.0, 0.02), min_steps=(1, 2), deltas=tuple(deltas))
    starts = [None, *(float(np.quantile(p_hat[dev], q)) for q in (0.97, 0.9))]
    designs = [Design(r, escalate_at_start_above=s, name="proposed") for r in grid for s in starts]
    result = select_router(designs, {score_key(router): dev_scores}, [replays[i] for i in dev], p_hat[dev],
                           wrong[dev], rho)
    selected = next(row for row in result.table if row["selected"])
    metrics = {
        "n_train": int(len(train)), "n_dev": int(len(dev)), "rho": rho,
        "judge_error_rate_dev": float(wrong[dev].mean()), "selected": selected,
    }
    return RoutingStack(featurizer=featurizer, scorer=scorer, design=result.best, selection_table=result.table,
                        metrics=metrics)


def _ensure_both_classes(train: np.ndarray, dev: np.ndarray, wrong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if wrong[train].all() or not wrong[train].any():
        raise ValueError("the training split has only one outcome; label more items")
    return train, dev


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
