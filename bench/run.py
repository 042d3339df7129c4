"""Run the benchmark suite, merge every figure into bench/results.json and rewrite docs/benchmarks.md.

python -m bench.run [--quick] [--only NAME [--only NAME ...]] [--docs-only]

Each benchmark is a module ``bench.<name>`` with ``main(argv) -> dict`` that saves its own section of
results.json (bench.common.save_results); this runner starts each one in its own process (each configures
Django on its own scratch database), bounded by a time limit, then renders the docs from results.json —
so a section that was not re-run keeps its last figures, with the date and load average they were taken at.
``make bench`` points DATABASE_URL / REDIS_URL at the local services first.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO, load_average, load_results, machine, scratch_database

SHARED_DATA = REPO.parent / "shared" / "data"
DOCS = REPO / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Goal:
    key: str
    op: str  # "<=", ">=", "=="; "==key" compares with another figure of the section
    target: Any
    text: str

    def check(self, figures: dict[str, Any]) -> bool | None:
        value = figures.get(self.key)
        target = figures.get(self.target[1:]) if isinstance(self.target, str) and self.target.startswith("@") \
            else self.target
        if value is None or target is None:
            return None
        return {"<=": value <= target, ">=": value >= target, "==": value == target, "<": value < target}[self.op]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    argv_full: list[str]
    argv_quick: list[str]
    goals: list[Goal] = field(default_factory=list)
    timeout_s: int = 3600
    module: str | None = None  # default bench.<name>
    needs: Callable[[], str | None] = lambda: None  # a reason to skip, or None
    default: bool = True  # part of a plain `python -m bench.run`
    scratch_db: str | None = None  # for modules that use DATABASE_URL as given: run them on this scratch DB
    also_writes: tuple[str, ...] = ()  # further results sections the same command writes


def _needs_services() -> str | None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return "needs PostgreSQL (DATABASE_URL=postgres://…; `make bench` sets it)"
    return None


def _needs_workers() -> str | None:
    return _needs_services() or (None if os.environ.get("REDIS_URL") else "needs Redis (REDIS_URL) for Celery workers")


def _needs(path: Path) -> Callable[[], str | None]:
    return lambda: None if path.exists() else f"{path} is not available"


LLMBAR = SHARED_DATA / "llmbar" / "gpt-4.jsonl"
BANKING = SHARED_DATA / "banking77"

BENCHMARKS = [
    Benchmark("import_export", "Import and streaming export through the REST API",
              ["--items", "1000000"], ["--items", "20000"],
              [Goal("import_items_per_s", ">=", 5000, "import ≥ 5,000 items/s"),
               Goal("export_jsonl_items_per_s", ">=", 20000, "JSONL export ≥ 20,000 items/s"),
               Goal("export_ls_json_items_per_s", ">=", 20000, "Label Studio JSON export ≥ 20,000 items/s"),
               Goal("export_csv_items_per_s", ">=", 20000, "CSV export ≥ 20,000 items/s"),
               Goal("export_peak_rss_mb", "<", 300, "export peak RSS < 300 MB (every format)")],
              needs=_needs_services),
    Benchmark("queue_load", "Review queue under 50 annotators, closed loop (no think time: a stress test)",
              ["--items", "1000000", "--annotators", "50", "--seconds", "60"],
              ["--items", "20000", "--annotators", "20", "--seconds", "10"],
              [Goal("claim_p99_ms", "<", 50, "claim p99 < 50 ms"),
               Goal("double_claims", "==", 0, "zero items claimed twice"),
               Goal("lost_submissions", "==", 0, "zero submissions lost")],
              needs=_needs_services),
    Benchmark("queue_load_paced", "Review queue under 50 annotators who look at each item for 2 ± 1 s",
              ["--items", "1000000", "--annotators", "50", "--seconds", "60", "--think-seconds", "2",
               "--section", "queue_load_paced"],
              ["--items", "20000", "--annotators", "20", "--seconds", "10", "--think-seconds", "2",
               "--section", "queue_load_paced"],
              [Goal("claim_p99_ms", "<", 50, "claim p99 < 50 ms"),
               Goal("double_claims", "==", 0, "zero items claimed twice"),
               Goal("lost_submissions", "==", 0, "zero submissions lost")],
              needs=_needs_services, module="bench.queue_load"),
    Benchmark("ui_pages", "Browser pages with 1,000,000 items in one project (server time, in-process)",
              ["--items", "1000000"], ["--items", "20000", "--requests", "5", "--review-requests", "30"],
              [Goal("slowest_page_p95_ms", "<", 200, "every page p95 < 200 ms"),
               Goal("dashboard_p95_ms", "<", 200, "admin dashboard p95 < 200 ms")],
              needs=_needs_services),
    Benchmark("pipeline_throughput", "Pipeline throughput (two Celery workers, replay judge)",
              ["--items", "10000", "--paced-items", "200"], ["--items", "300", "--paced-items", "20"],
              [Goal("items_per_s_per_worker", ">=", 50, "≥ 50 items/s per worker"),
               Goal("paced_overhead_share", "<=", 0.05, "pipeline overhead ≤ 5% of wall time at 50 tokens/s"),
               Goal("inconsistent_items", "==", 0, "every item in exactly one terminal state")],
              needs=_needs_workers),
    Benchmark("pipeline_one_worker", "Pipeline throughput, one Celery worker (a core of its own; PostgreSQL "
              "and the replay judge share the other)",
              ["--items", "3000", "--paced-items", "0", "--workers", "1", "--section", "pipeline_one_worker"],
              ["--items", "200", "--paced-items", "0", "--workers", "1", "--section", "pipeline_one_worker"],
              [Goal("items_per_s_per_worker", ">=", 50, "≥ 50 items/s per worker"),
               Goal("inconsistent_items", "==", 0, "every item in exactly one terminal state")],
              needs=_needs_workers, module="bench.pipeline_throughput"),
    Benchmark("ledger_race", "Ledger race (eight processes)",
              ["--attempts", "10000", "--cap", "1000", "--workers", "8"],
              ["--attempts", "2000", "--cap", "200", "--workers", "8"],
              [Goal("spent", "==", "@cap", "spent = cap exactly"),
               Goal("ledger_entries", "==", "@spent", "ledger entries = spent")],
              needs=_needs_services),
    Benchmark("crashes", "Crashes: SIGKILL of worker pool processes mid-stream",
              ["--kills", "20", "--items", "400"], ["--kills", "3", "--items", "40"],
              [Goal("kills", ">=", "@kills_requested", "every requested kill happened mid-stream"),
               Goal("inconsistent_items", "==", 0, "every item in exactly one terminal state"),
               Goal("double_charges", "==", 0, "no double charge"),
               Goal("stuck_leases", "==", 0, "no stuck lease after expiry")],
              needs=_needs_workers),
    Benchmark("routing_evaluate", "Routing quality on LLMBar (python -m routing evaluate)",
              ["--traces", str(LLMBAR)], ["--traces", str(LLMBAR), "--seeds", "1"], [], needs=_needs(LLMBAR),
              module="bench.quality", also_writes=("router_latency",)),
    # Written by the routing_evaluate run above (same command); --only router_latency re-runs it.
    Benchmark("router_latency", "Router decision latency and evaluation time of a 1,468-row trace file",
              ["--traces", str(LLMBAR)], ["--traces", str(LLMBAR), "--seeds", "1"],
              [], needs=_needs(LLMBAR), module="bench.quality", default=False),
    Benchmark("surrogate_evaluate", "Certified surrogate on Banking77 (python -m routing surrogate evaluate)",
              ["--surrogate", str(BANKING)], ["--surrogate", str(BANKING), "--seeds", "1"], [],
              needs=_needs(BANKING), module="bench.quality"),
    Benchmark("online_offline", "Online equals offline (live pipeline vs deploy_budgeted on LLMBar)",
              [], [], [Goal("escalation_sets_equal", "==", True, "same escalation set online and offline")],
              needs=_needs(LLMBAR), scratch_db="tracelab_bench_online"),
]
BY_NAME = {b.name: b for b in BENCHMARKS}


def run_one(bench: Benchmark, *, quick: bool) -> dict[str, Any]:
    module = bench.module or f"bench.{bench.name}"
    if not (REPO / (module.replace(".", "/") + ".py")).exists():
        return {"skipped": f"{module} is not present"}
    reason = bench.needs()
    if reason:
        print(f"[bench] {bench.name}: skipped ({reason})", file=sys.stderr)
        return {"skipped": reason}
    argv = bench.argv_quick if quick else bench.argv_full
    if module == "bench.quality":
        argv = ["--section", bench.name, *argv]
    command = [sys.executable, "-m", module, *argv]
    shown = "python -m " + " ".join(shlex.quote(a) for a in [module, *argv]).replace(str(REPO.parent), "..")
    print(f"[bench] {bench.name}: {shown}  (load {load_average()})", file=sys.stderr)
    env = dict(os.environ)
    if bench.scratch_db and env.get("DATABASE_URL", "").startswith("postgres"):
        env["DATABASE_URL"] = scratch_database(bench.scratch_db)
    started = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, timeout=bench.timeout_s)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        status = f"timed out after {bench.timeout_s} s"
    results = load_results()
    for name in (bench.name, *bench.also_writes):
        results.setdefault(name, {}).update(command=shown, quick=quick, status=status,
                                            wall_seconds=round(time.monotonic() - started, 1))
    section = results[bench.name]
    (REPO / "bench" / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return section


# ---------------------------------------------------------------- docs


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 80 else text[:77] + "…"
    return str(value)


HIDDEN = {"machine", "measured_at", "command", "status", "quick", "wall_seconds", "load_average"}

INTRO = """# Benchmarks

Generated by `python -m bench.run` (`make bench`) from `bench/results.json` — do not edit by hand;
every figure is kept there under a stable key so runs can be compared by script. Each section says when
it was measured, on which machine, under which load average (the development machine has 2 cores shared
with other jobs: a load average far above 2 means the figures are pessimistic), and with which command.
`--quick` runs (small sizes, a smoke test) are marked as such and are not the goal-sized runs.

Anchors: Label Studio recommends at most about 100,000 tasks per project, and its users report export
timeouts at tens of thousands of tasks; the goals below are set at 1,000,000 items in one project.
"""


def render_docs(results: dict[str, Any]) -> str:
    lines = [INTRO]
    rows = []
    for bench in BENCHMARKS:
        figures = results.get(bench.name)
        for goal in bench.goals:
            ok = goal.check(figures) if figures else None
            rows.append(f"| {bench.title} | {goal.text} | "
                        f"{_fmt(figures.get(goal.key)) if figures and goal.key in figures else '—'} | "
                        f"{'not measured' if ok is None else ('pass' if ok else '**miss**')}"
                        f"{' (quick run)' if figures and figures.get('quick') else ''} |")
    lines += ["## Goals", "", "| benchmark | goal | measured | result |", "|---|---|---|---|", *rows, ""]
    for bench in BENCHMARKS:
        figures = results.get(bench.name)
        lines += [f"## {bench.title} (`{bench.name}`)", ""]
        if not figures:
            lines += ["Not measured yet.", ""]
            continue
        m = figures.get("machine") or machine()
        lines += [f"- command: `{figures.get('command', 'python -m bench.' + bench.name)}`"
                  f"{' (quick)' if figures.get('quick') else ''}",
                  f"- measured: {figures.get('measured_at', '?')}, load average {figures.get('load_average', '?')}"
                  f" (1 min) on {m.get('cpus')} × {m.get('cpu')}, {m.get('memory_mb', 0):,} MB, Python "
                  f"{m.get('python')}",
                  ""]
        if figures.get("status", "ok") != "ok":
            lines += [f"**The last run of this command failed ({figures['status']}); the figures below are from "
                      f"the run before it.**", ""]
        if figures.get("skipped"):
            lines += [f"Skipped: {figures['skipped']}", ""]
        for goal in bench.goals:
            ok = goal.check(figures)
            verdict = "not measured" if ok is None else ("pass" if ok else "**miss**")
            lines.append(f"- goal: {goal.text} — {verdict}")
        if bench.goals:
            lines.append("")
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} |" for k, v in sorted(figures.items()) if k not in HIDDEN]
        lines.append("")
        if figures.get("notes"):
            lines += [str(figures["notes"]), ""]
    others = sorted(set(results) - set(BY_NAME))
    for name in others:
        lines += [f"## {name}", "", "| figure | value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} |" for k, v in sorted(results[name].items()) if k not in HIDDEN]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--only", action="append", choices=sorted(BY_NAME), help="run only this benchmark")
    parser.add_argument("--docs-only", action="store_true", help="only rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    failed = []
    if not args.docs_only:
        chosen = [BY_NAME[n] for n in args.only] if args.only else [b for b in BENCHMARKS if b.default]
        for bench in chosen:
            section = run_one(bench, quick=args.quick)
            if section.get("status", "ok") != "ok":
                failed.append(bench.name)
    DOCS.write_text(render_docs(load_results()))
    print(f"[bench] wrote {DOCS.relative_to(REPO)} and bench/results.json", file=sys.stderr)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
