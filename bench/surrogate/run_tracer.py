"""TRACER (tracer-llm 0.3.3) on the benchmark splits. Run with bench/surrogate/.venv-tracer/bin/python.

Uses TRACER's own fit_frontier (its splits, zoo, families, Clopper-Pearson selection and 30% hold-out
check, max_fit_labels=8000) and its kNN OOD gate exactly as ``tracer.fit`` wires them. With
``--memoize`` the zoo sweep (deterministic: every candidate has random_state=42) is cached per
identical (train, val) data, which returns the same models TRACER would refit for each target and
family — identical outputs, less wall time; fit_seconds are then not TRACER's default fit time
(measure that with ``--default-fit-timing``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, SETTINGS, TARGETS, features_path, metrics, read_labels, seed_split, summarize  # noqa: E402

import tracer.fit.pipeline as tp  # noqa: E402
from tracer.fit.ood import fit_ood_gate, ood_mask  # noqa: E402

NONE = "__no_verdict__"
ALL = ("logreg_c1", "logreg_c10", "sgd_log", "mlp_1h", "mlp_2h", "dt", "rf", "et", "gbt", "xgb")


def memoize_zoo() -> None:
    original = tp.search_best_surrogate
    cache: dict = {}

    def cached(X_train, y_train, X_val, y_val, on_candidate=None, skip=()):
        key = tuple(hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()
                    for a in (X_train, y_train, X_val, y_val)) + (tuple(skip),)
        if key not in cache:
            cache[key] = original(X_train, y_train, X_val, y_val, on_candidate=on_candidate, skip=skip)
        return cache[key]

    tp.search_best_surrogate = cached


def run(setting: str, seeds: int, skip: tuple[str, ...]) -> dict:
    fit_file, test_file = SETTINGS[setting]
    X_all = np.load(features_path(fit_file))
    teacher, human = read_labels(fit_file)
    space = sorted({t if t is not None else NONE for t in teacher})
    index = {c: i for i, c in enumerate(space)}
    if test_file:
        X_test_file = np.load(features_path(test_file))
        test_teacher, test_human = read_labels(test_file)
    runs = []
    for seed in range(seeds):
        fit_rows, held = seed_split(len(teacher), seed, test_file is not None)
        X_fit = X_all[fit_rows]
        y_fit = np.array([index[teacher[i] if teacher[i] is not None else NONE] for i in fit_rows])
        if held is None:
            X_test, t_test, h_test = X_test_file, test_teacher, test_human
        else:
            X_test, t_test, h_test = X_all[held], [teacher[i] for i in held], [human[i] for i in held]
        start = time.perf_counter()
        frontier, _ = tp.fit_frontier(X_fit, y_fit, list(TARGETS), skip=skip)
        gates = {}
        for item in frontier:
            best = item["best"]
            if best and best["stages"]:
                preds_fit, _, _ = tp.route_pipeline(best["stages"], X_fit)
                gates[item["target"]] = (best, fit_ood_gate(X_fit, [space[p] if p >= 0 else "?" for p in preds_fit]))
        seconds = time.perf_counter() - start
        run = {"seed": seed, "fit_seconds": seconds, "targets": {}}
        for t in TARGETS:
            if t not in gates:
                run["targets"][str(t)] = {**metrics(np.zeros(len(X_test), bool), [None] * len(X_test), t_test,
                                                    h_test, t), "method": None}
                continue
            best, ood = gates[t]
            preds, handled, _ = tp.route_pipeline(best["stages"], X_test)
            labels = [space[p] if p >= 0 else None for p in preds]
            handled = handled & ~ood_mask(X_test, X_fit, [lab or "?" for lab in labels], ood)
            labels = [None if lab == NONE else lab for lab in labels]
            run["targets"][str(t)] = {**metrics(handled, labels, t_test, h_test, t),
                                      "method": best["summary"]["method"]}
        print(setting, seed, round(seconds, 1), {t: round(v["coverage"], 3) for t, v in run["targets"].items()},
              flush=True)
        runs.append(run)
    return {"tool": "tracer-llm 0.3.3", "setting": setting, "skip": list(skip), "runs": runs,
            "summary": summarize(runs)}


def default_fit_timing(setting: str, skip: tuple[str, ...]) -> dict:
    """Wall and CPU time of an unmodified ``tracer.fit`` (default FitConfig, target 0.92, optional
    skipped candidates) on the fit file, plus its held-out metrics at 0.92."""
    from tracer.api import fit as tracer_fit
    from tracer.config import FitConfig

    fit_file, _ = SETTINGS[setting]
    teacher, _ = read_labels(fit_file)
    rows = [i for i, t in enumerate(teacher) if t is not None]
    work = OUT / f"tracer-default-{setting}"
    work.mkdir(parents=True, exist_ok=True)
    src = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "banking77" / fit_file).read_text()
    lines = src.splitlines()
    with (work / "traces.jsonl").open("w") as f:
        for i in rows:
            r = json.loads(lines[i])
            f.write(json.dumps({"id": r["id"], "input": r["input"]["text"], "teacher": r["judge"]["label"]}) + "\n")
    X = np.load(features_path(fit_file))[rows]
    start, start_cpu = time.perf_counter(), time.process_time()
    tracer_fit(work / "traces.jsonl", work / ".tracer", embeddings=X,
               config=FitConfig(target_teacher_agreement=0.92, verbose=False, skip_candidates=skip))
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"setting": setting, "skip": list(skip), "default_fit_seconds": seconds, "default_fit_cpu_seconds": cpu}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("setting", choices=sorted(SETTINGS))
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--skip", default="", help="comma-separated TRACER candidates to skip")
    p.add_argument("--memoize", action="store_true")
    p.add_argument("--default-fit-timing", action="store_true")
    a = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if a.default_fit_timing:
        skip = tuple(s for s in a.skip.split(",") if s)
        result = default_fit_timing(a.setting, skip)
        suffix = "_only_" + "_".join(sorted(set(ALL) - set(skip))) if skip else ""
        (OUT / f"tracer_default_fit_{a.setting}{suffix}.json").write_text(json.dumps(result, indent=2))
        print(result)
        return
    if a.memoize:
        memoize_zoo()
    result = run(a.setting, a.seeds, tuple(s for s in a.skip.split(",") if s))
    result["memoized_zoo"] = a.memoize
    (OUT / f"tracer_{a.setting}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
