"""Our default fit (default parameters, target 0.92; whole zoo unless --candidates) on oracle-train:
wall and CPU time and the held-out coverage/TA on oracle-test, to set beside one ``tracer.fit``.
Run with OMP_NUM_THREADS=1 so CPU time is not inflated by spinning worker threads."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, SETTINGS, features_path, metrics, read_labels  # noqa: E402

from routing.surrogate import CertifiedSurrogate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", default="", help="comma-separated zoo names (default: the whole zoo)")
    a = p.parse_args()
    candidates = tuple(c for c in a.candidates.split(",") if c) or None
    fit_file, test_file = SETTINGS["oracle"]
    teacher, _ = read_labels(fit_file)
    t_test, h_test = read_labels(test_file)
    X = np.load(features_path(fit_file))
    start, start_cpu = time.perf_counter(), time.process_time()
    gate = CertifiedSurrogate(target=0.92, delta=0.1, candidates=candidates).fit(X, teacher)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    accept, labels, _ = gate.decide(np.load(features_path(test_file)))
    result = {"setting": "oracle", "candidates": candidates, "default_fit_seconds": seconds,
              "default_fit_cpu_seconds": cpu, "surrogate": gate.surrogate_name_,
              "family": gate.family_name_, "zoo": gate.zoo_scores_,
              "test": metrics(accept, list(labels), t_test, h_test, 0.92)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"ours_default_fit_oracle{'_' + '_'.join(candidates) if candidates else ''}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
