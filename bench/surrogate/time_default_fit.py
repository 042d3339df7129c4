"""Our default fit (whole zoo, default parameters, target 0.92) on oracle-train: wall time and the
held-out coverage/TA on oracle-test, to set beside one unmodified ``tracer.fit``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, SETTINGS, features_path, metrics, read_labels  # noqa: E402

from routing.surrogate import CertifiedSurrogate  # noqa: E402


def main() -> None:
    fit_file, test_file = SETTINGS["oracle"]
    teacher, _ = read_labels(fit_file)
    t_test, h_test = read_labels(test_file)
    start = time.perf_counter()
    gate = CertifiedSurrogate(target=0.92, delta=0.1).fit(np.load(features_path(fit_file)), teacher)
    seconds = time.perf_counter() - start
    accept, labels, _ = gate.decide(np.load(features_path(test_file)))
    result = {"setting": "oracle", "default_fit_seconds": seconds, "surrogate": gate.surrogate_name_,
              "family": gate.family_name_, "zoo": gate.zoo_scores_,
              "test": metrics(accept, list(labels), t_test, h_test, 0.92)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ours_default_fit_oracle.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
