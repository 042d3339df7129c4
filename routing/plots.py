"""Figures of an evaluation report (matplotlib, Agg backend; PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_report"]

_HIGHLIGHT = {"proposed": "tab:red", "full_trace_one_shot": "tab:purple", "no_trace": "tab:brown",
              "l2d_mlp": "tab:blue", "l2d_logreg": "tab:cyan", "random": "tab:gray", "ai_only": "black"}


def plot_accuracy_vs_escalation(report: dict[str, Any], path: Path) -> Path:
    """Each method at every evaluated budget; the report's budget band is shaded."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    budgets = sorted(float(b) for b in next(iter(report["curves"].values())))
    for budget in budgets:
        ax.axvline(budget, color="0.8", lw=0.8, ls="--")
    ax.axvspan(0, report["budget"], color="tab:green", alpha=0.07, label=f"within budget ρ={report['budget']}")
    for method, curve in report["curves"].items():
        xs = [curve[str(b)]["escalation_rate"] for b in budgets]
        ys = [curve[str(b)]["accuracy"] for b in budgets]
        ax.plot(xs, ys, marker="o", lw=2 if method in _HIGHLIGHT else 1, color=_HIGHLIGHT.get(method), label=method)
    ax.set_xlabel("escalation rate (share of items sent to humans)")
    ax.set_ylabel("post-routing accuracy")
    ax.set_title(f"{report['dataset']} ({report['split']} split): budgets {', '.join(map(str, budgets))}")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_escalation_quality(report: dict[str, Any], path: Path) -> Path:
    """Error recall, escalation precision and false escalation rate per method."""
    methods = [m for m in report["methods"] if m != "ai_only"]
    metrics = ("error_recall", "escalation_precision", "false_escalation_rate")
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(metrics)
    for k, metric in enumerate(metrics):
        values = [report["methods"][m][metric] for m in methods]
        lows = [report["methods"][m][metric] - report["methods"][m]["ci"][metric][0] for m in methods]
        highs = [report["methods"][m]["ci"][metric][1] - report["methods"][m][metric] for m in methods]
        ax.bar([i + k * width for i in range(len(methods))], values, width, yerr=[lows, highs], capsize=2,
               label=metric)
    ax.set_xticks([i + width for i in range(len(methods))], methods, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"escalation quality at ρ={report['budget']} (95% bootstrap CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_tokens(report: dict[str, Any], path: Path) -> Path:
    """Judge output tokens spent per method, relative to AI-only."""
    methods = list(report["methods"])
    shares = [report["methods"][m]["judge_tokens"] / max(1.0, report["methods"][m]["judge_tokens_ai_only"])
              for m in methods]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(methods, shares, color=[_HIGHLIGHT.get(m, "tab:olive") for m in methods])
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_ylabel("judge tokens / AI-only")
    ax.set_title("judge output tokens (pre-judge deferral spends none on deferred items)")
    ax.tick_params(axis="x", rotation=35, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_accuracy_vs_escalation(report, out / "accuracy_vs_escalation.png"),
        plot_escalation_quality(report, out / "escalation_quality.png"),
        plot_tokens(report, out / "tokens.png"),
    ]
