"""Write an evaluation report: report.json, report.md, selection.json and the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routing.plots import plot_report

__all__ = ["render_markdown", "write_report"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_markdown(report: dict[str, Any]) -> str:
    m = report["methods"]
    lines = [
        f"# Routing evaluation: {report['dataset']}",
        "",
        f"- split: **{report['split']}** (groups never separated), seeds: {report['seeds']}, budget ρ = "
        f"{report['budget']}",
        f"- records: {report['n_records']} (judge error rate {_pct(report['judge_error_rate'])}); per seed: "
        f"fit {report['n_train']:.0f}, selection {report['n_dev']:.0f}, test {report['n_test']:.0f}; "
        f"design selection: {report['selection']}",
        f"- judge tokens {'estimated from text (≈4 chars/token)' if report['tokens_estimated'] else 'as logged'}; "
        f"wall time {report['seconds']:.1f} s",
        f"- router decision latency over {report['decision_latency']['n']} decisions: wall p50 "
        f"{report['decision_latency']['p50_ms']:.3f} ms, p99 {report['decision_latency']['p99_ms']:.3f} ms; "
        f"CPU p50 {report['decision_latency'].get('p50_cpu_ms', float('nan')):.3f} ms, p99 "
        f"{report['decision_latency'].get('p99_cpu_ms', float('nan')):.3f} ms",
        "",
        "## Methods (means over seeds, 95% bootstrap intervals)",
        "",
        "| method | accuracy | escalation | error recall | false esc. | esc. precision | judge tokens vs AI-only "
        "| router calls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in m.items():
        ci = v["ci"]["accuracy"]
        share = v["judge_tokens"] / max(1.0, v["judge_tokens_ai_only"])
        lines.append(
            f"| {name} | {v['accuracy']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] | {v['escalation_rate']:.3f} | "
            f"{v['error_recall']:.3f} | {v['false_escalation_rate']:.3f} | {v['escalation_precision']:.3f} | "
            f"{v['judge_tokens']:.0f} ({_pct(share)}) | {v['router_calls']:.0f} |"
        )
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"`{k}` ({v})" for k, v in report["skipped"].items())]
    if "proposed" in report["per_seed"]:
        lines += ["", "## Per seed (proposed)", "", "| seed | accuracy | escalation | tokens vs AI-only |",
                  "|---|---|---|---|"]
        for k, s in enumerate(report["per_seed"]["proposed"]):
            lines.append(f"| {k} | {s['accuracy']:.4f} | {s['escalation_rate']:.3f} | "
                         f"{_pct(s['judge_tokens'] / max(1.0, s['judge_tokens_ai_only']))} |")
    lines += ["", "## Shift between train and test", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in report["shift"].items()]
    if "proposed" in report["per_slice"]:
        lines += ["", "## Per slice (pooled over seeds)", "",
                  "| slice | n | AI accuracy | proposed accuracy | proposed escalation | proposed error recall |",
                  "|---|---|---|---|---|---|"]
        for name, row in report["per_slice"]["proposed"].items():
            lines.append(f"| {name} | {row['n']} | {row['ai_accuracy']:.3f} | {row['accuracy']:.3f} | "
                         f"{row['escalation_rate']:.3f} | {row['error_recall']:.3f} |")
    lines += ["", "## Selected designs (per seed)", ""]
    for method, designs in report["selected_designs"].items():
        lines.append(f"- **{method}**: " + "; ".join(
            f"τ={d['threshold']:.3f}, slope={d['threshold_slope']}, min_step={d['min_step']}, Δ={d['delta']}, "
            f"t0={'off' if d['escalate_at_start_above'] is None else format(d['escalate_at_start_above'], '.3f')}"
            for d in designs if d
        ))
    lines += ["", "Figures: `accuracy_vs_escalation.png`, `escalation_quality.png`, `tokens.png`; the full design "
              "tables of SELECTROUTER are in `selection.json`.", ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write every artefact; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    selection = report.get("_selection", {})
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    paths = {"json": out / "report.json", "markdown": out / "report.md", "selection": out / "selection.json"}
    paths["json"].write_text(json.dumps(public, indent=2, default=float) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(public), encoding="utf-8")
    paths["selection"].write_text(json.dumps(selection, default=float) + "\n", encoding="utf-8")
    for figure in plot_report(public, out):
        paths[figure.stem] = figure
    return paths
