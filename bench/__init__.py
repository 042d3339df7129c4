"""tracelab benchmarks: `make bench` runs them and rewrites docs/benchmarks.md and bench/results.json."""
