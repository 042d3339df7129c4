"""Markdown tables from bench/surrogate/out/*.json (pasted into docs/surrogate.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, TARGETS  # noqa: E402


def _f(v, pct=False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def side_by_side(setting: str) -> str:
    rows = ["| target | tool | violation rate | mean coverage | mean held-out TA | min TA | mean e2e acc | refusals | mean fit s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for t in TARGETS:
        for tool, name in (("ours", "routing.surrogate"), ("tracer", "tracer-llm 0.3.3")):
            path = OUT / f"{tool}_{setting}.json"
            if not path.exists():
                continue
            s = json.loads(path.read_text())["summary"]
            r = s[str(t)]
            rows.append(f"| {t} | {name} | {_f(r['violation_rate'])} | {_f(r['mean_coverage'], True)} | "
                        f"{_f(r['mean_teacher_agreement'])} | {_f(r['min_teacher_agreement'])} | "
                        f"{_f(r['mean_e2e_accuracy'])} | {r['refusals']} | {s['mean_fit_seconds']:.1f} |")
    return "\n".join(rows)


def default_fits() -> str:
    rows = ["| tool | default fit wall time (s) |", "|---|---|"]
    for tool, name in (("ours", "routing.surrogate"), ("tracer", "tracer-llm 0.3.3")):
        path = OUT / f"{tool}_default_fit_oracle.json"
        if path.exists():
            rows.append(f"| {name} | {json.loads(path.read_text())['default_fit_seconds']:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    for setting in ("oracle", "qwen"):
        print(f"\n### {setting}\n\n{side_by_side(setting)}")
    print(f"\n### default fits\n\n{default_fits()}")
