"""Markdown reports for a fitted gate and for a repeated-split evaluation."""

from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |\n" for r in rows)


def fit_report(manifest: dict[str, Any], slices: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> str:
    cert = manifest["certificate"]
    out = [
        "# Certified surrogate: fit report\n",
        f"**{'CERTIFIED' if manifest['certified'] else 'REFUSED'}** — target TA {manifest['target']}, "
        f"δ = {manifest['delta']}. {cert['reason']}.\n",
        f"Family `{manifest['family']}`, surrogate `{manifest['surrogate']}`, "
        f"threshold {_fmt(manifest['threshold'])}, calibration coverage {_fmt(manifest['coverage_cal'])}, "
        f"calibration TA {_fmt(manifest['teacher_agreement_cal'])}, "
        f"fit {manifest['fit_seconds']:.1f} s. Split: {manifest['split_sizes']}.\n",
        "What is certified: with probability ≥ 1 − δ over the calibration rows, the teacher agreement of the "
        "items this gate accepts is ≥ the target, for items exchangeable with the calibration rows. "
        "It says nothing about single items, about shifted traffic (the drift watch covers that), or about "
        "agreement with the ground truth.\n",
        "## Surrogate zoo (validation vs teacher)\n",
        _table(manifest["zoo"], ["name", "macro_f1", "accuracy", "fit_seconds", "error"]),
        "\n## Frontier (each target certified on its own at level δ)\n",
        _table(manifest["frontier"], ["target", "family", "certified", "threshold", "coverage",
                                      "teacher_agreement", "cp_lower_bound", "n_accepted"]),
        f"\nSelection rule: {manifest['selection_rule']}.\n",
        "\n## Slices (calibration rows; the threshold was chosen on them, so this status is indicative)\n",
        _table(slices, ["slice", "n", "coverage", "teacher_agreement", "status", "cp_lower_bound"]),
        "\n## Boundary pairs (accepted item, closest deferred item)\n",
        _table(pairs, ["accepted_id", "deferred_id", "distance", "accepted_score", "deferred_score"]),
    ]
    return "".join(out)


def evaluation_report(report: dict[str, Any]) -> str:
    s = report["summary"]
    return "".join([
        "# Certified surrogate: repeated-split evaluation\n\n",
        f"Parameters: {report['params']}\n\n",
        _table([s], ["n_seeds", "violation_rate", "refusal_rate", "mean_coverage", "mean_teacher_agreement",
                     "min_teacher_agreement", "mean_e2e_accuracy", "mean_teacher_accuracy",
                     "mean_fit_seconds"]),
        "\n",
        _table(report["runs"], ["seed", "certified", "family", "surrogate", "coverage", "teacher_agreement",
                                "violation", "e2e_accuracy", "fit_seconds"]),
    ])
