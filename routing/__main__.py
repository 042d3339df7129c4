"""`python -m routing <command> ...`: the routing library's command line.

Commands:
  evaluate    evaluate the trace-aware router and its baselines on a trace log
  surrogate   fit / evaluate the certified surrogate tier
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    # Import lazily so one command's dependencies never slow down or break another.
    if command == "evaluate":
        from routing.evaluation.cli import main as evaluate_main

        return evaluate_main(rest)
    if command == "surrogate":
        from routing.surrogate.cli import main as surrogate_main

        return surrogate_main(rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
