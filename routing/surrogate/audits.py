"""Audits of a fitted gate: per-slice coverage/TA/certification, boundary pairs, deltas between fits."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from routing.surrogate.certify import binomial_p_values, clopper_pearson_lower


def agreement(labels: np.ndarray, teacher_labels: np.ndarray) -> np.ndarray:
    """Surrogate label == teacher label, row by row; a missing teacher label never agrees."""
    return np.array([t is not None and s == t for s, t in zip(labels, teacher_labels)], dtype=bool)


def slice_audit(
    accept: np.ndarray,
    labels: np.ndarray,
    teacher_labels: np.ndarray,
    slices: np.ndarray,
    target: float,
    delta: float,
    min_accepted: int = 30,
) -> list[dict[str, Any]]:
    """Coverage, TA and certification status per slice of a *fixed* gate's decisions.

    A slice with at least ``min_accepted`` accepted rows is tested with the exact binomial test at
    level delta / m (Bonferroni over the m slices tested), so all "certified" statements hold
    together with probability >= 1 - delta — provided these rows played no part in fitting the
    gate (use held-out rows; on calibration rows the status is only indicative).
    """
    accept = np.asarray(accept, dtype=bool)
    agree = agreement(labels, teacher_labels)
    slices = np.asarray([str(s) for s in slices], dtype=object)
    names = sorted(set(slices))
    counts = {s: int((accept & (slices == s)).sum()) for s in names}
    m = max(1, sum(c >= min_accepted for c in counts.values()))
    rows = []
    for s in names:
        in_s = slices == s
        acc = accept & in_s
        n_acc, k = int(acc.sum()), int((acc & agree).sum())
        row = {"slice": s, "n": int(in_s.sum()), "coverage": float(acc.sum() / in_s.sum()),
               "n_accepted": n_acc, "teacher_agreement": (k / n_acc) if n_acc else None}
        if n_acc < min_accepted:
            row.update(status="too small to certify", p_value=None, cp_lower_bound=None)
        else:
            p = float(binomial_p_values(np.array([k]), np.array([n_acc]), target)[0])
            row.update(status="certified" if p <= delta / m else "not certified", p_value=p,
                       cp_lower_bound=clopper_pearson_lower(k, n_acc, delta / m))
        rows.append(row)
    return rows


def boundary_pairs(
    X: np.ndarray, accept: np.ndarray, scores: np.ndarray, ids: list[str], n_pairs: int = 10
) -> list[dict[str, Any]]:
    """Contrastive pairs: an accepted item and the closest deferred item, closest pairs first."""
    accept = np.asarray(accept, dtype=bool)
    acc_rows, def_rows = np.flatnonzero(accept), np.flatnonzero(~accept)
    if len(acc_rows) == 0 or len(def_rows) == 0:
        return []
    nn = NearestNeighbors(n_neighbors=1).fit(X[def_rows])
    dist, nearest = nn.kneighbors(X[acc_rows])
    order = np.argsort(dist[:, 0], kind="stable")
    pairs, seen = [], set()
    for i in order:
        a, d = int(acc_rows[i]), int(def_rows[nearest[i, 0]])
        if d in seen:
            continue
        seen.add(d)
        pairs.append({"accepted_id": ids[a], "deferred_id": ids[d], "distance": float(dist[i, 0]),
                      "accepted_score": float(scores[a]), "deferred_score": float(scores[d])})
        if len(pairs) == n_pairs:
            break
    return pairs


def temporal_delta(old: Any, new: Any, X: np.ndarray) -> dict[str, Any]:
    """What changed between two fitted gates, measured on the same inputs X."""
    acc_old, lab_old, _ = old.decide(X)
    acc_new, lab_new, _ = new.decide(X)
    both = acc_old & acc_new
    return {
        "n": len(X),
        "coverage_old": float(acc_old.mean()), "coverage_new": float(acc_new.mean()),
        "newly_accepted": float((acc_new & ~acc_old).mean()),
        "newly_deferred": float((acc_old & ~acc_new).mean()),
        "label_changes_among_accepted": float((lab_old[both] != lab_new[both]).mean()) if both.any() else 0.0,
        "family": [old.family_name_, new.family_name_],
        "surrogate": [old.surrogate_name_, new.surrogate_name_],
        "threshold": [old.threshold, new.threshold],
        "certified": [old.certified, new.certified],
    }
