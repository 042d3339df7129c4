"""`python -m routing surrogate fit|evaluate ...`: fit and evaluate the certified surrogate tier."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from routing.surrogate.audits import boundary_pairs, slice_audit
from routing.surrogate.evaluation import evaluate_repeated
from routing.surrogate.families import FAMILIES
from routing.surrogate.gate import CertifiedSurrogate
from routing.surrogate.report import evaluation_report, fit_report
from routing.surrogate.zoo import CANDIDATES, FAST_CANDIDATES
from routing.tracelog import read_traces


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in text.split(",") if t)


def _names(text: str) -> tuple[str, ...]:
    if text == "fast":
        return FAST_CANDIDATES
    if text == "all":
        return CANDIDATES
    return tuple(t for t in text.split(",") if t)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m routing surrogate")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("fit", "evaluate"):
        s = sub.add_parser(name)
        s.add_argument("traces", type=Path)
        s.add_argument("--target", type=float, default=0.92)
        s.add_argument("--delta", type=float, default=0.1)
        s.add_argument("--embeddings", type=Path, help=".npy features aligned with the rows of TRACES")
        s.add_argument("--out", type=Path, required=True)
        s.add_argument("--candidates", type=_names, default=CANDIDATES,
                       help="comma-separated zoo names, or 'fast' / 'all' (default all)")
        s.add_argument("--families", type=_names, default=FAMILIES)
        s.add_argument("--frontier", type=_floats, default=(0.85, 0.90, 0.95))
        s.add_argument("--no-ood", action="store_true", help="do not defer out-of-distribution inputs")
        s.add_argument("--acceptor-inputs", action="store_true",
                       help="feed the item features to the acceptor")
        s.add_argument("--n-components", type=int, default=256, help="featurizer dense text components")
        s.add_argument("--seed", type=int, default=0)
    ev = sub.choices["evaluate"]
    ev.add_argument("--seeds", type=int, default=20)
    ev.add_argument("--test", type=Path, help="measure on this trace log instead of held-out rows")
    ev.add_argument("--test-embeddings", type=Path, help=".npy features aligned with --test")
    ev.add_argument("--test-size", type=float, default=0.3)
    return p


def _gate_params(a: argparse.Namespace) -> dict[str, Any]:
    return {"target": a.target, "delta": a.delta, "frontier_targets": a.frontier, "candidates": a.candidates,
            "families": a.families, "ood": not a.no_ood, "acceptor_uses_inputs": a.acceptor_inputs}


def _featurizer(a: argparse.Namespace, seed: int):
    from routing.features import ItemFeaturizer

    return ItemFeaturizer(max_features=2**14, n_components=a.n_components, random_state=seed)


def _load_npy(path: Path, n: int) -> np.ndarray:
    X = np.load(path)
    if X.ndim != 2 or len(X) != n:
        raise SystemExit(f"{path}: expected a 2-D array with {n} rows, got shape {X.shape}")
    return X


def _fit(a: argparse.Namespace) -> int:
    log = read_traces(a.traces)
    records = log.records
    inputs = [r.input for r in records]
    a.out.mkdir(parents=True, exist_ok=True)
    if a.embeddings:
        X = _load_npy(a.embeddings, len(records))
        featurizer = None
    else:
        featurizer = _featurizer(a, a.seed).fit(inputs)
        X = featurizer.transform(inputs)
        joblib.dump(featurizer, a.out / "featurizer.joblib")
    teacher = np.array([r.judge_label for r in records], dtype=object)
    groups = [r.group_key for r in records] if any(r.group is not None for r in records) else None
    gate = CertifiedSurrogate(**_gate_params(a), random_state=a.seed).fit(X, teacher, groups)
    gate.save(a.out / "gate.joblib")
    cal = gate.cal_index_
    accept, labels, scores = gate.decide(X[cal])
    slices = [records[i].slice or "(none)" for i in cal]
    audit = slice_audit(accept, labels, teacher[cal], np.array(slices, dtype=object), a.target, a.delta)
    pairs = boundary_pairs(X[cal], accept, scores, [records[i].id for i in cal])
    manifest = {**gate.manifest(), "traces": str(a.traces), "n_rows": len(records),
                "features": str(a.embeddings) if a.embeddings else "routing.features.ItemFeaturizer",
                "model_file": "gate.joblib",
                "featurizer_file": None if featurizer is None else "featurizer.joblib",
                "slices": audit, "boundary_pairs": pairs}
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
    (a.out / "report.md").write_text(fit_report(manifest, audit, pairs))
    status = "certified" if gate.certified else "REFUSED"
    print(f"{status}: family={gate.family_name_} surrogate={gate.surrogate_name_} "
          f"coverage_cal={gate.coverage:.3f} "
          f"{gate.certificate_.reason}; fit {gate.fit_seconds_:.1f}s -> {a.out}")
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    records = read_traces(a.traces).records
    inputs = [r.input for r in records]
    teacher = np.array([r.judge_label for r in records], dtype=object)
    human = np.array([r.human_label for r in records], dtype=object)
    groups = np.array([r.group_key for r in records]) if any(r.group is not None for r in records) else None
    test = None
    test_inputs: list[dict] = []
    if a.test:
        test_records = read_traces(a.test).records
        test_inputs = [r.input for r in test_records]
        test = (np.array([r.judge_label for r in test_records], dtype=object),
                np.array([r.human_label for r in test_records], dtype=object))
    X_all = _load_npy(a.embeddings, len(records)) if a.embeddings else None
    if a.test and a.embeddings and not a.test_embeddings:
        raise SystemExit("--embeddings with --test needs --test-embeddings")
    X_test_file = _load_npy(a.test_embeddings, len(test_inputs)) if a.test_embeddings else None
    cache: dict[str, np.ndarray] = {}

    def make_features(fit_rows: np.ndarray, test_rows: np.ndarray | None):
        if X_all is not None:
            return X_all[fit_rows], (X_all[test_rows] if test_rows is not None else X_test_file)
        if test_rows is None and "fit" in cache:  # one featurizer fit on the fit file serves every seed
            return cache["fit"], cache["test"]
        featurizer = _featurizer(a, a.seed).fit([inputs[i] for i in fit_rows])
        X_fit = featurizer.transform([inputs[i] for i in fit_rows])
        held_inputs = [inputs[i] for i in test_rows] if test_rows is not None else test_inputs
        X_held = featurizer.transform(held_inputs)
        if test_rows is None:
            cache["fit"], cache["test"] = X_fit, X_held
        return X_fit, X_held

    report = evaluate_repeated(make_features, teacher, human, a.seeds, _gate_params(a), test, a.test_size,
                               groups)
    report["params"].update(traces=str(a.traces), test=str(a.test) if a.test else None,
                            features=str(a.embeddings) if a.embeddings else "routing.features.ItemFeaturizer")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (a.out / "report.md").write_text(evaluation_report(report))
    s = report["summary"]
    print(f"violation_rate={s['violation_rate']:.3f} mean_coverage={s['mean_coverage']:.3f} "
          f"mean_TA={_num(s['mean_teacher_agreement'])} mean_e2e={_num(s['mean_e2e_accuracy'])} "
          f"mean_fit_seconds={s['mean_fit_seconds']:.1f} -> {a.out / 'report.json'}")
    return 0


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    return _fit(a) if a.command == "fit" else _evaluate(a)
