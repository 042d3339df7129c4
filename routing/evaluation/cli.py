"""`python -m routing evaluate TRACES.jsonl [--budget 0.3] [--split random|topic] [--seeds 5] [--out DIR]`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from routing.evaluation.report import write_report
from routing.evaluation.runner import evaluate_traces
from routing.tracelog import TraceLogError, read_traces

ENV_BASE_URL = "TRACELAB_ROUTER_LLM_BASE_URL"
ENV_MODEL = "TRACELAB_ROUTER_LLM_MODEL"


def llm_router_from_env(environ: Mapping[str, str] = os.environ):
    """(LLMRouter, None) when an endpoint is configured, else (None, reason)."""
    base_url = environ.get(ENV_BASE_URL)
    model = environ.get(ENV_MODEL)
    if not base_url or not model:
        return None, f"no LLM endpoint configured (set {ENV_BASE_URL} and {ENV_MODEL}; key in OPENAI_API_KEY)"
    from routing.routers.llm import LLMRouter

    api_key = environ.get("TRACELAB_ROUTER_LLM_API_KEY") or environ.get("OPENAI_API_KEY")
    return LLMRouter(base_url=base_url, model=model, api_key=api_key), None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m routing evaluate", description=__doc__)
    parser.add_argument("traces", type=Path, help="trace log v1 (JSON Lines) with human labels")
    parser.add_argument("--budget", type=float, default=0.3, help="human budget ρ as a share of items")
    parser.add_argument("--split", choices=("random", "topic"), default="random")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: routing-report/<name>)")
    parser.add_argument("--selection", choices=("crossfit", "holdout"), default="crossfit",
                        help="select designs on out-of-fold replays of train+dev, or on D_dev only")
    parser.add_argument("--folds", type=int, default=4, help="group folds for cross-fitted selection")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip invalid lines instead of failing")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.budget < 1:
        print("--budget must be in (0, 1)", file=sys.stderr)
        return 2
    try:
        log = read_traces(args.traces, on_error="skip" if args.skip_bad_lines else "fail")
    except (OSError, TraceLogError) as exc:
        print(f"cannot read {args.traces}: {exc}", file=sys.stderr)
        return 1
    if log.errors:
        print(f"skipped {len(log.errors)} bad line(s)", file=sys.stderr)
    llm_router, skip_reason = llm_router_from_env()
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        report = evaluate_traces(
            log.records, budget=args.budget, split=args.split, seeds=args.seeds, dataset=args.traces.stem,
            llm_router=llm_router, llm_skip_reason=skip_reason, selection=args.selection, folds=args.folds,
            progress=progress,
        )
    except ValueError as exc:
        print(f"cannot evaluate: {exc}", file=sys.stderr)
        return 1
    out = args.out or Path("routing-report") / args.traces.stem
    paths = write_report(report, out)
    if not args.quiet:
        print((paths["markdown"]).read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0
