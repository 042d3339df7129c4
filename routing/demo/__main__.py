"""``python -m routing.demo accuracy [--n 500] [--seed 0]``: the demo judge's accuracy as JSON.
``python -m routing.demo traces --out FILE [--n 500] [--seed 0]``: a trace log of demo items judged
by the demo judge (truth as ``human_label``), e.g. for ``python -m routing.replay_server``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from routing.demo.accuracy import accuracy_report, judge_items, to_trace_records
from routing.demo.scenes import generate_items
from routing.tracelog import write_traces


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routing.demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("accuracy", "traces"):
        sub = commands.add_parser(name)
        sub.add_argument("--n", type=int, default=500, help="number of items")
        sub.add_argument("--seed", type=int, default=0, help="generator seed")
        if name == "traces":
            sub.add_argument("--out", required=True, help="trace log v1 file to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    judged = judge_items(generate_items(args.n, random_state=args.seed))
    if args.command == "traces":
        count = write_traces(args.out, to_trace_records(judged))
        print(f"wrote {count} records to {args.out}")
        return 0
    report = {"items": args.n, "seed": args.seed, "seconds": round(time.perf_counter() - started, 1)}
    report["accuracy"] = accuracy_report(judged)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
