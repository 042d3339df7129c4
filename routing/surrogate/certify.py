"""Learn-Then-Test certification of the acceptor threshold.

Claim certified: with probability at least 1 - delta over the calibration rows, the teacher
agreement (TA) of the items the gate accepts is at least ``target`` (for new items exchangeable
with the calibration rows). How:

* the thresholds to test and their order are fixed *before* the calibration rows are looked at
  (from the selection rows: ``threshold_sequence``);
* each threshold t is the null hypothesis H_t: TA(t) < target, tested with the exact binomial
  p-value P(Binomial(n_t, 1 - target) <= disagreements_t), n_t = accepted calibration rows
  (MAPIE's ``compute_hoeffding_bentkus_p_value`` with ``binary=True``; for 0/1 losses its Bentkus
  term is exactly this tail and the Hoeffding term never undercuts it);
* fixed-sequence testing (MAPIE's ``control_fwer(..., "fixed_sequence")``) walks from the start
  threshold towards looser ones at full level delta and stops at the first non-rejection, which
  controls the family-wise error over the whole sequence at delta; the loosest rejected threshold
  is deployed. If the first test fails nothing is certified and the tier refuses.

MAPIE's ``BinaryClassificationController`` is not used directly because it chooses the testing
direction from the calibration risks themselves (a data-dependent order) and offers no start
point inside the grid; the two MAPIE primitives above keep the order fixed in advance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from mapie.risk_control import control_fwer
from mapie.risk_control.methods import compute_hoeffding_bentkus_p_value
from scipy.stats import beta

#: Score given to items the out-of-distribution guard defers; in-distribution scores are in [0, 1].
DEFERRED_SCORE = -1.0
#: The loosest threshold: accept every in-distribution item.
ACCEPT_ALL = 0.0


@dataclass
class Certificate:
    """The outcome of certifying one gate at one target."""

    certified: bool
    target: float
    delta: float
    threshold: float | None
    n_calibration: int
    n_accepted: int
    n_agree: int
    coverage: float
    teacher_agreement: float | None
    cp_lower_bound: float | None
    n_tested: int
    reason: str

    @property
    def lower_bound(self) -> float | None:
        """The certified statement: TA >= target with probability >= 1 - delta (None if refused)."""
        return self.target if self.certified else None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["lower_bound"] = self.lower_bound
        return out


def binomial_p_values(n_agree: np.ndarray, n_accepted: np.ndarray, target: float) -> np.ndarray:
    """Exact binomial p-values for H: TA < target, one per (n_agree, n_accepted); 1 where n = 0."""
    n_agree = np.asarray(n_agree, dtype=float)
    n_accepted = np.asarray(n_accepted, dtype=float)
    out = np.ones(len(n_accepted))
    ok = n_accepted > 0
    if ok.any():
        # Risk = disagreement rate; nudge down by 1e-9 so MAPIE's ceil(n * r) is exactly the count.
        disagree = np.maximum(n_accepted[ok] - n_agree[ok] - 1e-9, 0.0)
        risk = disagree / n_accepted[ok]
        out[ok] = compute_hoeffding_bentkus_p_value(risk, n_accepted[ok], 1.0 - target, binary=True)[:, 0]
    return np.clip(out, 0.0, 1.0)


def clopper_pearson_lower(n_agree: int, n: int, delta: float) -> float:
    """One-sided (1 - delta) Clopper–Pearson lower bound on a binomial rate."""
    if n == 0 or n_agree == 0:
        return 0.0
    return float(beta.ppf(delta, n_agree, n - n_agree + 1))


def threshold_sequence(
    scores: np.ndarray,
    agree: np.ndarray,
    target: float,
    n_calibration: int,
    step: float = 0.005,
    min_coverage: float = 0.01,
) -> np.ndarray:
    """The thresholds to test, in testing order, chosen on selection rows only.

    Candidate thresholds sit at the selection scores' quantiles for coverages 1.0, 1 - step, ...
    The sequence starts where a calibration set of ``n_calibration`` rows is most likely to pass
    (largest estimated z-score of TA above target) and runs towards looser thresholds, ending
    with ``ACCEPT_ALL``.
    """
    scores = np.asarray(scores, dtype=float)
    agree = np.asarray(agree, dtype=bool)
    inside = scores > DEFERRED_SCORE
    coverages = np.arange(1.0, min_coverage - 1e-12, -step)
    base = scores[inside] if inside.any() else np.array([ACCEPT_ALL])
    thresholds = np.unique(np.quantile(base, 1.0 - coverages, method="lower"))[::-1]  # strict -> loose
    thresholds[-1] = ACCEPT_ALL
    accepted = scores[None, :] >= thresholds[:, None]
    n_acc = accepted.sum(axis=1)
    ta = (accepted & agree[None, :]).sum(axis=1) / np.maximum(n_acc, 1)
    expected_n = n_calibration * n_acc / max(len(scores), 1)
    z = (ta - target) * np.sqrt(expected_n) / np.sqrt(target * (1.0 - target))
    return thresholds[int(np.argmax(z)):]


def certify_fixed_sequence(
    scores: np.ndarray,
    agree: np.ndarray,
    thresholds: np.ndarray,
    target: float,
    delta: float,
) -> Certificate:
    """Fixed-sequence Learn-Then-Test on calibration rows along ``thresholds`` (in testing order)."""
    scores = np.asarray(scores, dtype=float)
    agree = np.asarray(agree, dtype=bool)
    thresholds = np.asarray(thresholds, dtype=float)
    n = len(scores)
    if n == 0 or len(thresholds) == 0:
        return Certificate(False, target, delta, None, n, 0, 0, 0.0, None, None, 0,
                           "no calibration rows" if n == 0 else "no thresholds to test")
    accepted = scores[None, :] >= thresholds[:, None]
    n_acc = accepted.sum(axis=1)
    n_agr = (accepted & agree[None, :]).sum(axis=1)
    p_values = binomial_p_values(n_agr, n_acc, target)
    rejected = np.asarray(control_fwer(p_values, delta, fwer_method="fixed_sequence"), dtype=int)
    if len(rejected) == 0:
        ta0 = n_agr[0] / n_acc[0] if n_acc[0] else float("nan")
        return Certificate(
            False, target, delta, None, n, 0, 0, 0.0, None, None, 1,
            f"refused: the first threshold tested ({int(n_acc[0])} accepted calibration rows, "
            f"TA {ta0:.3f}) gives p = {p_values[0]:.3g} > delta = {delta}; nothing can be certified",
        )
    i = int(rejected.max())
    k, m = int(n_agr[i]), int(n_acc[i])
    return Certificate(
        True, target, delta, float(thresholds[i]), n, m, k, m / n, k / m,
        clopper_pearson_lower(k, m, delta), min(i + 2, len(thresholds)),
        f"certified: {m} of {n} calibration rows accepted, TA {k / m:.4f}, p = {p_values[i]:.3g} <= "
        f"delta = {delta} (fixed sequence, {i + 1} hypotheses rejected)",
    )
