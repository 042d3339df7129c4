import json
from pathlib import Path

import numpy as np
import pytest

from routing.surrogate.cli import main
from routing.tracelog import write_traces

from .synthetic import teacher_data

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
WORDS = {"c0": "card arrival late", "c1": "refund missing money", "c2": "pin blocked locked", "c3": "exchange rate fee"}


def _log(path: Path, n: int, seed: int) -> np.ndarray:
    X, y = teacher_data(n, seed=0, sample_seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for i, label in enumerate(y):
        truth = label if rng.random() > 0.1 else "c0"
        text = f"{WORDS[truth]} please help {rng.integers(0, 50)}"
        rows.append({"id": f"r{seed}-{i}", "input": {"text": text}, "human_label": truth, "slice": truth,
                     "judge": {"model": "t", "label": label, "reasoning": ""}})
    write_traces(path, rows)
    return X


def test_fit_writes_manifest_model_and_report(tmp_path):
    X = _log(tmp_path / "t.jsonl", 1500, 1)
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "t.jsonl"), "--target", "0.85", "--delta", "0.1", "--embeddings",
                 str(tmp_path / "X.npy"), "--candidates", "logreg_c1", "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["certified"] and m["family"] in {"global", "l2d", "rsb"} and m["threshold"] is not None
    assert {"lower_bound", "coverage_cal", "teacher_agreement_cal", "frontier", "slices", "boundary_pairs"} <= set(m)
    assert (out / "gate.joblib").exists() and "Frontier" in (out / "report.md").read_text()


def test_fit_uses_the_featurizer_without_embeddings(tmp_path):
    _log(tmp_path / "t.jsonl", 600, 2)
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "t.jsonl"), "--target", "0.85", "--candidates", "logreg_c1",
                 "--n-components", "8", "--out", str(out)]) == 0
    assert (out / "featurizer.joblib").exists() and (out / "manifest.json").exists()


def test_evaluate_reports_per_seed_and_summary(tmp_path):
    X = _log(tmp_path / "a.jsonl", 900, 3)
    X_test = _log(tmp_path / "b.jsonl", 400, 4)
    np.save(tmp_path / "a.npy", X)
    np.save(tmp_path / "b.npy", X_test)
    out = tmp_path / "ev"
    assert main(["evaluate", str(tmp_path / "a.jsonl"), "--target", "0.9", "--seeds", "2", "--embeddings",
                 str(tmp_path / "a.npy"), "--test", str(tmp_path / "b.jsonl"), "--test-embeddings",
                 str(tmp_path / "b.npy"), "--candidates", "logreg_c1", "--out", str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert len(r["runs"]) == 2
    for run in r["runs"]:
        assert {"coverage", "teacher_agreement", "violation", "e2e_accuracy", "fit_seconds"} <= set(run)
        # deferred items take the teacher's label; e2e can never beat "every item right"
        assert 0 <= run["e2e_accuracy"] <= 1
    assert {"violation_rate", "mean_coverage"} <= set(r["summary"])


@pytest.mark.shared_data
def test_banking77_qwen_teacher_end_to_end_is_honest(tmp_path):
    path = SHARED / "banking77" / "qwen2.5-7b-instruct.jsonl"
    if not path.exists():
        pytest.skip("shared data absent")
    out = tmp_path / "ev"
    assert main(["evaluate", str(path), "--target", "0.85", "--seeds", "1", "--candidates", "logreg_c10",
                 "--n-components", "64", "--frontier", "", "--out", str(out)]) == 0
    run = json.loads((out / "report.json").read_text())["runs"][0]
    # The teacher is right on ~64% of rows; where it is refused the tier must not claim more.
    assert run["e2e_accuracy"] < 0.75
    assert run["teacher_agreement"] is None or run["teacher_agreement"] > 0.75
