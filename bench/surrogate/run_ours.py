"""Our certified tier on the benchmark splits (project venv): one fit per seed certifies every target."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, SETTINGS, TARGETS, features_path, metrics, read_labels, seed_split, summarize  # noqa: E402

from routing.surrogate import CertifiedSurrogate  # noqa: E402


def run(setting: str, seeds: int, candidates: tuple[str, ...] | None, delta: float) -> dict:
    fit_file, test_file = SETTINGS[setting]
    X_all = np.load(features_path(fit_file))
    teacher, human = read_labels(fit_file)
    if test_file:
        X_test_file = np.load(features_path(test_file))
        test_teacher, test_human = read_labels(test_file)
    runs = []
    for seed in range(seeds):
        fit_rows, held = seed_split(len(teacher), seed, test_file is not None)
        if held is None:
            X_test, t_test, h_test = X_test_file, test_teacher, test_human
        else:
            X_test, t_test, h_test = X_all[held], [teacher[i] for i in held], [human[i] for i in held]
        gate = CertifiedSurrogate(target=0.92, delta=delta, frontier_targets=TARGETS, candidates=candidates,
                                  random_state=seed).fit(X_all[fit_rows], [teacher[i] for i in fit_rows])
        run = {"seed": seed, "fit_seconds": gate.fit_seconds_, "surrogate": gate.surrogate_name_, "targets": {}}
        for t in TARGETS:
            g = gate.with_target(t)
            accept, labels, _ = g.decide(X_test)
            run["targets"][str(t)] = {**metrics(accept, list(labels), t_test, h_test, t), "method": g.family_name_,
                                      "coverage_cal": g.coverage}
        print(setting, seed, round(gate.fit_seconds_, 1),
              {t: round(v["coverage"], 3) for t, v in run["targets"].items()}, flush=True)
        runs.append(run)
    return {"tool": "routing.surrogate", "setting": setting, "candidates": candidates, "delta": delta,
            "runs": runs, "summary": summarize(runs)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("setting", choices=sorted(SETTINGS))
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--candidates", default="", help="comma-separated zoo names (default: the whole zoo)")
    p.add_argument("--delta", type=float, default=0.1)
    p.add_argument("--tag", default="")
    a = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cands = tuple(c for c in a.candidates.split(",") if c) or None
    result = run(a.setting, a.seeds, cands, a.delta)
    (OUT / f"ours_{a.setting}{a.tag}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
