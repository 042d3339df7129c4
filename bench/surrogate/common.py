"""Shared by both benchmark runners (ours in the project venv, TRACER in .venv-tracer): the data,
the splits and the metrics, so both tools are measured on identical rows with identical formulas.
Only numpy and json here: this file runs in both environments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / ".." / "shared" / "data" / "banking77"
OUT = HERE / "out"
TARGETS = (0.85, 0.90, 0.92, 0.95)

#: name -> (fit file, test file or None for held-out splits of the fit file)
SETTINGS = {
    "oracle": ("train-oracle-teacher.jsonl", "test-oracle-teacher.jsonl"),
    "qwen": ("qwen2.5-7b-instruct.jsonl", None),
}


def read_labels(name: str) -> tuple[list, list]:
    """(teacher labels with None for no verdict, human labels) of a banking77 trace log."""
    teacher, human = [], []
    for line in (DATA / name).read_text().splitlines():
        row = json.loads(line)
        teacher.append((row.get("judge") or {}).get("label"))
        human.append(row.get("human_label"))
    return teacher, human


def features_path(name: str) -> Path:
    return OUT / (Path(name).stem + ".npy")


def seed_split(n: int, seed: int, test_file: bool, test_size: float = 0.3) -> tuple[np.ndarray, np.ndarray | None]:
    """(fit rows in a seed-specific order, held-out rows or None when a test file is used)."""
    perm = np.random.RandomState(1000 + seed).permutation(n)
    if test_file:
        return perm, None
    cut = int(round(n * test_size))
    return perm[cut:], np.sort(perm[:cut])


def metrics(handled: np.ndarray, surrogate: list, teacher: list, human: list, target: float) -> dict:
    """Coverage, TA on handled items (a missing teacher label never agrees), violation, honest e2e."""
    handled = np.asarray(handled, dtype=bool)
    agree = np.array([t is not None and s == t for s, t in zip(surrogate, teacher)], dtype=bool)
    n = int(handled.sum())
    ta = float(agree[handled].mean()) if n else None
    final = [s if h else t for s, t, h in zip(surrogate, teacher, handled)]
    pairs = [(f, g) for f, g in zip(final, human) if g is not None]
    e2e = float(np.mean([f is not None and f == g for f, g in pairs])) if pairs else None
    return {"coverage": float(handled.mean()), "n_handled": n, "teacher_agreement": ta,
            "violation": bool(ta is not None and ta < target), "e2e_accuracy": e2e}


def summarize(runs: list[dict], targets=TARGETS) -> dict:
    out = {}
    for t in targets:
        rows = [r["targets"][str(t)] for r in runs]
        tas = [r["teacher_agreement"] for r in rows if r["teacher_agreement"] is not None]
        e2e = [r["e2e_accuracy"] for r in rows if r["e2e_accuracy"] is not None]
        out[str(t)] = {"violation_rate": float(np.mean([r["violation"] for r in rows])),
                       "mean_coverage": float(np.mean([r["coverage"] for r in rows])),
                       "mean_teacher_agreement": float(np.mean(tas)) if tas else None,
                       "min_teacher_agreement": float(min(tas)) if tas else None,
                       "mean_e2e_accuracy": float(np.mean(e2e)) if e2e else None,
                       "refusals": int(sum(r["coverage"] == 0 for r in rows))}
    out["mean_fit_seconds"] = float(np.mean([r["fit_seconds"] for r in runs]))
    return out
