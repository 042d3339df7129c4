"""Drift watch: spot checks on accepted items keep a running, time-uniform bound on teacher agreement.

A small random share of accepted items is still sent to the teacher (``should_spot_check``); each
result is fed to ``update``. The watch keeps MAPIE's conjugate-mixture empirical-Bernstein
confidence sequence (Podkopaev & Ramdas), a lower bound on the disagreement rate that holds
simultaneously over all times with probability >= 1 - delta, so looking after every check is
allowed. ``ta_upper_bound`` = 1 - that bound. When it falls below the target, the data show (at
level delta) that agreement is below target, and the watch suspends the gate — for good: only a
refit (a new gate) lifts it. While TA stays >= target, a false suspension has probability <= delta.
"""

from __future__ import annotations

import numpy as np
from mapie.exchangeability_testing.bounds import conjugate_mixture_empirical_bernstein_bound


class DriftWatch:
    """Running bound on the gate's teacher agreement from spot checks.

    Parameters
    ----------
    target : the certified TA target.
    delta : error level of the time-uniform bound.
    spot_check_rate : share of accepted items to send to the teacher anyway.
    v_opt : intrinsic time the bound is tightest around (about n_checks * variance).
    """

    def __init__(self, target: float, delta: float = 0.1, spot_check_rate: float = 0.02, v_opt: float = 5.0):
        self.target = target
        self.delta = delta
        self.spot_check_rate = spot_check_rate
        self.v_opt = v_opt
        self.disagreements: list[int] = []
        self.suspended = False
        self.suspended_at: int | None = None

    def should_spot_check(self, rng: np.random.Generator) -> bool:
        """Whether to send this accepted item to the teacher as a spot check."""
        return bool(rng.random() < self.spot_check_rate)

    def update(self, agreed: bool) -> bool:
        """Record one spot check (surrogate label == teacher label?); returns ``suspended``."""
        return self.update_many([agreed])

    def update_many(self, agreed: list[bool] | np.ndarray) -> bool:
        self.disagreements.extend(int(not a) for a in np.asarray(agreed, dtype=bool))
        if not self.suspended and self.ta_upper_bound < self.target:
            self.suspended = True
            self.suspended_at = self.n_checks
        return self.suspended

    @property
    def n_checks(self) -> int:
        return len(self.disagreements)

    @property
    def teacher_agreement(self) -> float | None:
        return 1.0 - float(np.mean(self.disagreements)) if self.disagreements else None

    @property
    def ta_upper_bound(self) -> float:
        """Time-uniform (1 - delta) upper bound on the TA of accepted items (1.0 before any check)."""
        if not self.disagreements:
            return 1.0
        lower = conjugate_mixture_empirical_bernstein_bound(
            np.asarray(self.disagreements, dtype=float), v_opt=self.v_opt, alpha=self.delta,
            bound_side="lower",
        )
        return float(1.0 - np.clip(lower[-1], 0.0, 1.0))

    def state(self) -> dict:
        return {"target": self.target, "delta": self.delta, "n_checks": self.n_checks,
                "teacher_agreement": self.teacher_agreement, "ta_upper_bound": self.ta_upper_bound,
                "suspended": self.suspended, "suspended_at": self.suspended_at}
