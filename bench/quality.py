"""The quality tables: `python -m routing evaluate` on LLMBar and `python -m routing surrogate evaluate` on
Banking77, their summary numbers copied into bench/results.json.

python -m bench.quality --section routing_evaluate --traces ../shared/data/llmbar/gpt-4.jsonl [--seeds 5]
python -m bench.quality --section router_latency ...  (the same run; router_latency is written by both)
python -m bench.quality --section surrogate_evaluate --surrogate ../shared/data/banking77 [--seeds 5]

Skips cleanly (a "skipped" section) when the data or the command is absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, save_results

OUT = Path("/tmp/tracelab-bench-quality")


def _command_exists(*words: str) -> bool:
    proc = subprocess.run([sys.executable, "-m", "routing", *words, "--help"], cwd=REPO, capture_output=True)
    return proc.returncode == 0


def routing_evaluate(traces: Path, seeds: int) -> dict:
    if not _command_exists("evaluate"):
        return {"skipped": "python -m routing evaluate is not available"}
    out = OUT / "routing"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "routing", "evaluate", str(traces), "--seeds", str(seeds), "--out",
                    str(out), "--quiet"], cwd=REPO, check=True)
    seconds = time.perf_counter() - started
    report = json.loads((out / "report.json").read_text())
    figures = {"traces": traces.name, "seeds": seeds, "seconds": round(seconds, 1),
               "n_records": report["n_records"], "budget": report["budget"],
               "judge_error_rate": round(report["judge_error_rate"], 4),
               "decision_p50_ms": report["decision_latency"]["p50_ms"],
               "decision_p99_ms": report["decision_latency"]["p99_ms"]}
    for name, method in report["methods"].items():
        key = name.replace("-", "_").replace(" ", "_")
        figures[f"{key}_accuracy"] = round(method["accuracy"], 4)
        figures[f"{key}_escalation_rate"] = round(method["escalation_rate"], 4)
        figures[f"{key}_error_recall"] = round(method["error_recall"], 4)
        figures[f"{key}_tokens_share"] = round(method["judge_tokens"] / max(1.0, method["judge_tokens_ai_only"]), 4)
    return figures


def surrogate_evaluate(folder: Path, seeds: int) -> dict:
    if not _command_exists("surrogate", "evaluate"):
        return {"skipped": "python -m routing surrogate evaluate is not available"}
    out = OUT / "surrogate"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "routing", "surrogate", "evaluate",
                    str(folder / "train-oracle-teacher.jsonl"),
                    "--test", str(folder / "test-oracle-teacher.jsonl"), "--candidates", "fast", "--seeds",
                    str(seeds), "--out", str(out)], cwd=REPO, check=True)
    seconds = time.perf_counter() - started
    report = json.loads((out / "report.json").read_text())
    figures = {"traces": "banking77 train/test-oracle-teacher", "seeds": seeds, "seconds": round(seconds, 1),
               "candidates": "fast"}
    for key, value in report["summary"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[key] = round(value, 4)
    figures["notes"] = ("The TRACER side-by-side (tracer-llm 0.3.3, 20 seeds, identical splits) is "
                        "`bench/surrogate/run_all.sh` (about an hour; tables in docs/surrogate.md).")
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--section", required=True,
                        choices=("routing_evaluate", "router_latency", "surrogate_evaluate"))
    parser.add_argument("--traces", type=Path)
    parser.add_argument("--surrogate", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    path = args.traces if args.section == "routing_evaluate" else args.surrogate
    if path is None or not path.exists():
        figures = {"skipped": f"{path} is not available"}
    elif args.section in ("routing_evaluate", "router_latency"):
        figures = routing_evaluate(path, args.seeds)
        if "skipped" not in figures:
            save_results("router_latency", {
                "traces": figures["traces"], "n_records": figures["n_records"], "seeds": args.seeds,
                "decision_p50_ms": figures["decision_p50_ms"], "decision_p99_ms": figures["decision_p99_ms"],
                "evaluation_seconds": figures["seconds"],
                "evaluation_seconds_per_seed": round(figures["seconds"] / args.seeds, 1),
                "notes": "Read from the report.json of `python -m routing evaluate` (its decision latency is "
                         "timed per router poll inside the replay), evaluation time is that command's wall time."})
            if args.section == "router_latency":
                return figures
    else:
        figures = surrogate_evaluate(path, args.seeds)
    save_results(args.section, figures)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
