"""Repeated-split evaluation of the certified surrogate tier: coverage, held-out TA, violations, e2e."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from routing.surrogate.audits import agreement
from routing.surrogate.gate import CertifiedSurrogate


def held_out_metrics(
    gate: CertifiedSurrogate, X: np.ndarray, teacher: np.ndarray, human: np.ndarray, target: float
) -> dict[str, Any]:
    """Coverage, TA on handled items, violation and honest end-to-end accuracy on held-out rows.

    End-to-end: the surrogate's label where it answers, the teacher's label elsewhere (a missing
    teacher label is wrong), scored against ``human`` on rows that have a human label.
    """
    accept, labels, _ = gate.decide(X)
    agree = agreement(labels, teacher)
    n_acc = int(accept.sum())
    ta = float(agree[accept].mean()) if n_acc else None
    final = np.where(accept, labels, teacher)
    known = np.array([h is not None for h in human])
    e2e = (float(np.mean([f is not None and f == h for f, h in zip(final[known], human[known])]))
           if known.any() else None)
    teacher_acc = (float(np.mean([t is not None and t == h for t, h in zip(teacher[known], human[known])]))
                   if known.any() else None)
    return {"coverage": float(accept.mean()), "n_handled": n_acc, "teacher_agreement": ta,
            "violation": bool(ta is not None and ta < target), "e2e_accuracy": e2e,
            "teacher_accuracy": teacher_acc}


def evaluate_repeated(
    make_features: Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]],
    teacher: np.ndarray,
    human: np.ndarray,
    seeds: int,
    gate_params: dict[str, Any],
    test: tuple[np.ndarray, np.ndarray] | None = None,
    test_size: float = 0.3,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit on one part and measure on held-out rows, once per seed; summary over seeds.

    ``make_features(fit_rows, test_rows)`` returns features for the fit rows and for the held-out
    rows (row indices into the fit file; ``test_rows`` is None when ``test`` = (teacher, human) of
    a separate file is given, and the features of that file are returned instead).
    """
    teacher = np.asarray(teacher, dtype=object)
    human = np.asarray(human, dtype=object)
    target = float(gate_params["target"])
    runs = []
    for seed in range(seeds):
        if test is None:
            rng = np.random.default_rng(10_000 + seed)
            keys = np.asarray(groups if groups is not None else np.arange(len(teacher)), dtype=str)
            uniq, inverse = np.unique(keys, return_inverse=True)
            held_keys = rng.random(len(uniq)) < test_size
            held = held_keys[inverse]
            fit_rows, test_rows = np.flatnonzero(~held), np.flatnonzero(held)
            X_fit, X_test = make_features(fit_rows, test_rows)
            t_test, h_test = teacher[test_rows], human[test_rows]
            g_fit = None if groups is None else np.asarray(groups)[fit_rows]
        else:
            fit_rows = np.arange(len(teacher))
            X_fit, X_test = make_features(fit_rows, None)
            t_test, h_test = test
            g_fit = groups
        gate = CertifiedSurrogate(**{**gate_params, "random_state": seed})
        gate.fit(X_fit, teacher[fit_rows], g_fit)
        run = {"seed": seed, "certified": gate.certified, "family": gate.family_name_,
               "surrogate": gate.surrogate_name_, "threshold": gate.threshold,
               "coverage_cal": gate.coverage, "fit_seconds": gate.fit_seconds_,
               **held_out_metrics(gate, X_test, np.asarray(t_test, dtype=object),
                                  np.asarray(h_test, dtype=object), target)}
        runs.append(run)
    return {"params": {**gate_params, "seeds": seeds}, "runs": runs, "summary": summarize(runs)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "n_seeds": len(runs),
        "violation_rate": float(np.mean([r["violation"] for r in runs])),
        "refusal_rate": float(np.mean([not r["certified"] for r in runs])),
        "mean_coverage": mean("coverage"), "mean_teacher_agreement": mean("teacher_agreement"),
        "min_teacher_agreement": min(
            (r["teacher_agreement"] for r in runs if r["teacher_agreement"] is not None), default=None),
        "mean_e2e_accuracy": mean("e2e_accuracy"), "mean_teacher_accuracy": mean("teacher_accuracy"),
        "mean_fit_seconds": mean("fit_seconds"),
        "families": {f: sum(r["family"] == f for r in runs) for f in sorted({r["family"] for r in runs})},
    }
