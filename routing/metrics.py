"""Post-routing metrics, 95% bootstrap intervals (stratified by seed) and per-slice tables.

Every metric comes from three per-item facts: did the judge err (a null judge label is an error),
was the item escalated (then the human label is final), and how many judge tokens were spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["METRICS", "RunOutcome", "bootstrap_ci", "compute_metrics", "per_slice"]

METRICS = (
    "accuracy", "escalation_rate", "error_recall", "false_escalation_rate", "escalation_precision",
    "judge_tokens", "judge_tokens_ai_only", "router_calls",
)


@dataclass
class RunOutcome:
    """One method on one test set: per-item arrays."""

    judge_wrong: np.ndarray
    escalated: np.ndarray
    tokens: np.ndarray
    tokens_ai_only: np.ndarray
    router_calls: np.ndarray


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def _metrics_from_sums(wrong, esc, tokens, ai_tokens, calls, n) -> dict[str, np.ndarray]:
    """Vectorised over bootstrap replicates: each argument is a (replicates, n)-weighted sum."""
    hit = esc["wrong"]
    return {
        "accuracy": 1.0 - (wrong - hit) / n,
        "escalation_rate": esc["all"] / n,
        "error_recall": _ratio(hit, wrong),
        "false_escalation_rate": _ratio(esc["all"] - hit, n - wrong),
        "escalation_precision": _ratio(hit, esc["all"]),
        "judge_tokens": tokens,
        "judge_tokens_ai_only": ai_tokens,
        "router_calls": calls,
    }


def _weighted(outcome: RunOutcome, weights: np.ndarray) -> dict[str, np.ndarray]:
    wrong = outcome.judge_wrong.astype(float)
    esc = outcome.escalated.astype(float)
    sums = _metrics_from_sums(
        weights @ wrong,
        {"all": weights @ esc, "wrong": weights @ (esc * wrong)},
        weights @ outcome.tokens.astype(float),
        weights @ outcome.tokens_ai_only.astype(float),
        weights @ outcome.router_calls.astype(float),
        weights.sum(axis=-1),
    )
    return sums


def compute_metrics(outcome: RunOutcome) -> dict[str, float]:
    """Point estimates for one run (token and call counts are totals over the test set)."""
    return {k: float(v) for k, v in _weighted(outcome, np.ones(len(outcome.escalated))).items()}


def bootstrap_ci(
    outcomes: Sequence[RunOutcome], n_boot: int = 1000, level: float = 0.95, random_state: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile interval of the mean over seeds, resampling items within each seed's test set."""
    per_seed = []
    for k, outcome in enumerate(outcomes):
        # Seeded by (random_state, seed index): every method sees the same resamples (paired).
        n = len(outcome.escalated)
        draws = np.random.default_rng([random_state, k]).integers(0, n, size=(n_boot, n))
        counts = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)
        per_seed.append(_weighted(outcome, counts))
    alpha = (1 - level) / 2
    out = {}
    for name in METRICS:
        mean = np.mean([seed[name] for seed in per_seed], axis=0)
        low, high = np.quantile(mean, [alpha, 1 - alpha])
        out[name] = (float(low), float(high))
    return out


def per_slice(outcomes: Sequence[RunOutcome], slices: Sequence[Sequence[str | None]]) -> dict[str, dict[str, float]]:
    """Accuracy, escalation rate, error recall and n per slice, pooling the seeds' test sets."""
    pooled = {
        key: np.concatenate([getattr(o, key) for o in outcomes])
        for key in ("judge_wrong", "escalated", "tokens", "tokens_ai_only", "router_calls")
    }
    names = np.array([s if s is not None else "(none)" for seed_slices in slices for s in seed_slices])
    table = {}
    for name in sorted(set(names.tolist())):
        mask = names == name
        sub = RunOutcome(**{k: v[mask] for k, v in pooled.items()})
        m = compute_metrics(sub)
        table[name] = {
            "n": int(mask.sum()), "accuracy": m["accuracy"], "escalation_rate": m["escalation_rate"],
            "error_recall": m["error_recall"], "ai_accuracy": 1.0 - float(sub.judge_wrong.mean()),
        }
    return table
