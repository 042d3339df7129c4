"""``CertifiedSurrogate``: the surrogate tier's estimator — zoo, acceptor, families, OOD, certification.

Rows are split three ways (stratified by teacher label, or by group when groups are given):
``train`` fits the surrogates and the OOD guard; ``val`` selects the surrogate (macro-F1 vs the
teacher), fits the acceptors and — with out-of-fold acceptor scores — chooses the family and the
threshold sequence for each target; ``cal`` is touched once per target, by the fixed-sequence test
of the one chosen family (``certify.py``). Nothing certified is selected on ``cal``, so the
certificate holds at level delta for the deployed gate without any multiplicity correction for
the families and models considered.

Selection rule (per target): the family whose fixed-sequence certification *on the val rows*
reaches the largest coverage; ties go to l2d, then rsb, then global (l2d and rsb end their
threshold sequence at "accept everything", so on a tie they can only do better than global, whose
single all-or-nothing test fails half the time when it passed on val by a hair).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from routing.surrogate.acceptor import Acceptor
from routing.surrogate.certify import (
    DEFERRED_SCORE,
    Certificate,
    certify_fixed_sequence,
    threshold_sequence,
)
from routing.surrogate.drift import DriftWatch
from routing.surrogate.families import FAMILIES, GateFamily, Stage
from routing.surrogate.ood import KNNDistanceOOD
from routing.surrogate.zoo import class_proba, fit_with_local_labels, make_candidate, select_surrogate

NO_LABEL = -1
#: Preference among families whose selection coverage ties.
TIE_ORDER = ("l2d", "rsb", "global")


def split_indices(
    y: np.ndarray, groups: np.ndarray | None, val_size: float, cal_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (train, val, cal) row indices: stratified by ``y``, or whole groups when given."""
    rng = np.random.default_rng(random_state)
    parts: list[list[int]] = [[], [], []]
    if groups is not None:
        uniq, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        order = rng.permutation(len(uniq))
        cut1 = int(round(len(uniq) * (1 - val_size - cal_size)))
        cut2 = int(round(len(uniq) * (1 - cal_size)))
        where = np.empty(len(uniq), dtype=int)
        where[order[:cut1]], where[order[cut1:cut2]], where[order[cut2:]] = 0, 1, 2
        part_of_row = where[inverse]
        return tuple(np.flatnonzero(part_of_row == p) for p in range(3))  # type: ignore[return-value]
    for cls in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == cls))
        n = len(rows)
        n_val = int(round(n * val_size))
        n_cal = int(round(n * cal_size))
        if n >= 3:
            n_val, n_cal = max(n_val, 1), max(n_cal, 1)
        parts[0].extend(rows[: n - n_val - n_cal])
        parts[1].extend(rows[n - n_val - n_cal: n - n_cal])
        parts[2].extend(rows[n - n_cal:])
    return tuple(np.sort(np.asarray(p, dtype=int)) for p in parts)  # type: ignore[return-value]


class CertifiedSurrogate:
    """A surrogate that answers for the teacher only where its gate is certified.

    Parameters
    ----------
    target : teacher-agreement target for accepted items.
    delta : allowed probability that the certificate is wrong.
    frontier_targets : further targets certified (each at level delta) for the Pareto frontier.
    candidates : surrogate zoo names (``zoo.CANDIDATES``); None = all.
    families : families considered (``"global"``, ``"l2d"``, ``"rsb"``).
    acceptor_uses_inputs : feed the item features to the acceptor besides the confidence features.
    ood : defer out-of-distribution inputs (kNN distance) before the gate.
    val_size, cal_size : shares of rows for selection and for certification.
    grid_step : coverage step of the threshold grid.
    spot_check_rate : share of accepted items the drift watch sends to the teacher anyway.
    random_state : seed for splits and models.
    """

    def __init__(
        self,
        target: float = 0.92,
        delta: float = 0.1,
        frontier_targets: tuple[float, ...] = (0.85, 0.90, 0.95),
        candidates: tuple[str, ...] | None = None,
        families: tuple[str, ...] = FAMILIES,
        acceptor_uses_inputs: bool = False,
        ood: bool = True,
        val_size: float = 0.2,
        cal_size: float = 0.2,
        grid_step: float = 0.005,
        spot_check_rate: float = 0.02,
        random_state: int = 0,
    ):
        self.target = target
        self.delta = delta
        self.frontier_targets = frontier_targets
        self.candidates = candidates
        self.families = families
        self.acceptor_uses_inputs = acceptor_uses_inputs
        self.ood = ood
        self.val_size = val_size
        self.cal_size = cal_size
        self.grid_step = grid_step
        self.spot_check_rate = spot_check_rate
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------------

    def fit(
        self, X: np.ndarray, teacher_labels: list[str | None] | np.ndarray, groups: Any = None
    ) -> CertifiedSurrogate:
        """Fit, select and certify. ``teacher_labels`` may contain None (no verdict: never agreed with)."""
        start, start_cpu = time.perf_counter(), time.process_time()
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown families {sorted(unknown)}; choose from {FAMILIES}")
        X = np.asarray(X, dtype=float)
        labels = np.asarray([None if t is None else str(t) for t in teacher_labels], dtype=object)
        if len(labels) != len(X):
            raise ValueError(f"{len(X)} feature rows but {len(labels)} teacher labels")
        self.classes_ = np.array(sorted({t for t in labels if t is not None}), dtype=object)
        if len(self.classes_) < 2:
            raise ValueError("the teacher must use at least two labels to train a surrogate")
        index = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([NO_LABEL if t is None else index[t] for t in labels], dtype=int)
        train, val, cal = split_indices(y, None if groups is None else np.asarray(groups), self.val_size,
                                        self.cal_size, self.random_state)
        self.split_sizes_ = {"train": len(train), "val": len(val), "cal": len(cal)}
        self.cal_index_ = cal
        k = len(self.classes_)
        fit_rows = train[y[train] != NO_LABEL]

        zoo = select_surrogate(X[fit_rows], y[fit_rows], X[val], y[val], self.candidates, self.random_state)
        self.zoo_scores_ = zoo.scores
        self.surrogate_name_ = zoo.name
        self.ood_ = KNNDistanceOOD().fit(X[train]) if self.ood else None
        out_val = self._outliers(X[val])
        out_cal = self._outliers(X[cal])

        # Stage 1 acceptor on val; out-of-fold scores on val for selection.
        proba_val = class_proba(zoo.model, X[val], k)
        pred_val = proba_val.argmax(axis=1)
        agree_val = pred_val == y[val]
        acc1 = Acceptor(self.acceptor_uses_inputs, random_state=self.random_state)
        x_acc = X[val] if self.acceptor_uses_inputs else None
        cf1 = acc1.cross_fit_score(proba_val, agree_val, x_acc)
        acc1.fit(proba_val, agree_val, x_acc)
        stage1 = Stage(zoo.name, zoo.model, acc1, k)

        built: dict[str, GateFamily] = {}
        sel: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # family -> (val scores, val agree)
        if "global" in self.families:
            built["global"] = GateFamily("global", [Stage(zoo.name, zoo.model, None, k)])
            sel["global"] = (np.ones(len(val)), agree_val)
        if "l2d" in self.families:
            built["l2d"] = GateFamily("l2d", [stage1])
            sel["l2d"] = (cf1, agree_val)
        if "rsb" in self.families:
            rsb = self._fit_rsb(X, y, fit_rows, val, stage1, cf1, agree_val, proba_val)
            if rsb is not None:
                built["rsb"], sel["rsb"] = rsb
        self.family_notes_ = {
            f: "built" if f in built else "not enough stage-1 rejects to train a second stage"
            for f in self.families
        }

        agree_cal_by_family: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, family in built.items():
            lab, sc, _ = family.route(X[cal])
            sc = np.where(out_cal, DEFERRED_SCORE, sc)
            agree_cal_by_family[name] = (sc, lab == y[cal])
            vs, va = sel[name]
            sel[name] = (np.where(out_val, DEFERRED_SCORE, vs), va)

        targets = sorted({float(self.target), *map(float, self.frontier_targets)})
        self.frontier_ = []
        chosen: dict[float, tuple[str, Certificate]] = {}
        for target in targets:
            options = []
            for name in TIE_ORDER:
                if name not in built:
                    continue
                vs, va = sel[name]
                seq = threshold_sequence(vs, va, target, len(cal), self.grid_step)
                estimate = certify_fixed_sequence(vs, va, seq, target, self.delta)
                options.append((estimate.coverage, -TIE_ORDER.index(name), name, seq, estimate))
            best = max(options, key=lambda o: (o[0], o[1]))
            name, seq = best[2], best[3]
            sc, ag = agree_cal_by_family[name]
            cert = certify_fixed_sequence(sc, ag, seq, target, self.delta)
            chosen[target] = (name, cert)
            self.frontier_.append({
                "target": target, "family": name, **built[name].describe(),
                "selection_coverage": {o[2]: o[0] for o in options},
                **cert.as_dict(),
            })
        self.certificates_ = chosen
        self.family_name_, self.certificate_ = chosen[float(self.target)]
        self.families_ = built
        self.family_ = built[self.family_name_]
        self.drift_ = DriftWatch(self.target, self.delta, self.spot_check_rate)
        self.fit_seconds_ = time.perf_counter() - start
        self.fit_cpu_seconds_ = time.process_time() - start_cpu  # robust to other jobs on the machine
        return self

    def with_target(self, target: float) -> CertifiedSurrogate:
        """The same fitted gate deployed at another frontier target (certified at fit time; no refit)."""
        if float(target) not in self.certificates_:
            raise ValueError(f"target {target} was not certified at fit time; "
                             f"have {sorted(self.certificates_)}")
        gate = copy.copy(self)
        gate.target = float(target)
        gate.family_name_, gate.certificate_ = self.certificates_[float(target)]
        gate.family_ = self.families_[gate.family_name_]
        gate.drift_ = DriftWatch(gate.target, self.delta, self.spot_check_rate)
        return gate

    def _outliers(self, X: np.ndarray) -> np.ndarray:
        return self.ood_.is_outlier(X) if self.ood_ is not None else np.zeros(len(X), dtype=bool)

    def _fit_rsb(self, X, y, fit_rows, val, stage1, cf1, agree_val, proba_val):
        """Second stage on the first stage's rejects; None when there are too few of them."""
        seq = threshold_sequence(cf1, agree_val, self.target, len(val), self.grid_step)
        est = certify_fixed_sequence(cf1, agree_val, seq, self.target, self.delta)
        tau = est.threshold if est.certified else float(np.median(cf1))
        reject_val = cf1 < tau
        share = reject_val.mean()
        # In-sample stage-1 scores on train are optimistic, so take the same *share* of hardest rows.
        _, train_scores = stage1.predict(X[fit_rows])
        n_hard = int(round(share * len(fit_rows)))
        hard = fit_rows[np.argsort(train_scores, kind="stable")[:n_hard]]
        if n_hard < 50 or reject_val.sum() < 20 or len(np.unique(y[hard])) < 2:
            return None
        model2 = fit_with_local_labels(make_candidate(stage1.model_name, self.random_state), X[hard], y[hard])
        k = len(self.classes_)
        rows = val[reject_val]
        proba2 = class_proba(model2, X[rows], k)
        agree2 = proba2.argmax(axis=1) == y[rows]
        acc2 = Acceptor(self.acceptor_uses_inputs, random_state=self.random_state)
        x2 = X[rows] if self.acceptor_uses_inputs else None
        cf2 = acc2.cross_fit_score(proba2, agree2, x2)
        acc2.fit(proba2, agree2, x2)
        family = GateFamily("rsb", [stage1, Stage(stage1.model_name, model2, acc2, k)], tau=float(tau))
        scores = cf1.copy()
        agree = agree_val.copy()
        scores[reject_val], agree[reject_val] = cf2, agree2
        return family, (scores, agree)

    # -- deployment -----------------------------------------------------------------------------

    @property
    def certified(self) -> bool:
        return bool(self.certificate_.certified)

    @property
    def threshold(self) -> float | None:
        return self.certificate_.threshold

    @property
    def lower_bound(self) -> float | None:
        """Certified TA lower bound (= target when certified, None when the tier refuses)."""
        return self.certificate_.lower_bound

    @property
    def coverage(self) -> float:
        """Share of calibration rows accepted by the deployed gate."""
        return self.certificate_.coverage

    @property
    def suspended(self) -> bool:
        return self.drift_.suspended

    def record_spot_check(self, agreed: bool) -> bool:
        """Feed one spot-check result to the drift watch; returns whether the gate is now suspended."""
        return self.drift_.update(agreed)

    def decide(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accept mask, surrogate labels as strings, acceptance scores); the tier answers where accepted.

        Nothing is accepted when the gate was not certified or the drift watch suspended it.
        """
        X = np.asarray(X, dtype=float)
        lab, scores, _ = self.family_.route(X)
        scores = np.where(self._outliers(X), DEFERRED_SCORE, scores)
        labels = self.classes_[lab]
        if not self.certified or self.suspended:
            return np.zeros(len(X), dtype=bool), labels, scores
        return scores >= self.certificate_.threshold, labels, scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Surrogate label where accepted, None where the item is deferred to the teacher."""
        accept, labels, _ = self.decide(X)
        return np.where(accept, labels, None)

    def manifest(self) -> dict[str, Any]:
        """A JSON-safe summary of the fitted gate."""
        return {
            "target": self.target, "delta": self.delta, "certified": self.certified,
            "family": self.family_name_, **self.family_.describe(),
            "surrogate": self.surrogate_name_, "threshold": self.threshold,
            "lower_bound": self.lower_bound, "certificate": self.certificate_.as_dict(),
            "coverage_cal": self.certificate_.coverage,
            "teacher_agreement_cal": self.certificate_.teacher_agreement,
            "n_classes": len(self.classes_), "split_sizes": self.split_sizes_,
            "zoo": self.zoo_scores_, "families_built": self.family_notes_,
            "ood": None if self.ood_ is None else {"k": self.ood_.k_, "threshold": self.ood_.threshold_},
            "frontier": self.frontier_, "fit_seconds": self.fit_seconds_, "fit_cpu_seconds": self.fit_cpu_seconds_, "drift": self.drift_.state(),
            "selection_rule": "per target: family with the largest coverage when certified on the "
                              "selection (val) rows; ties prefer l2d, rsb, global; certified once on "
                              "the disjoint calibration rows by fixed-sequence LTT",
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CertifiedSurrogate:
        gate = joblib.load(path)
        if not isinstance(gate, cls):
            raise TypeError(f"{path} does not hold a {cls.__name__}")
        return gate
