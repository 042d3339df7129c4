"""tracelab's routing science: Django-free.

Trace log I/O, the incremental step parser, pre-routing features, the disagreement scorer,
the trace-aware stepwise routers and their selection, budgeted deployment, the certified
surrogate tier, baselines, metrics, splits, judge clients and the replay server.

Nothing in this package imports Django or the app (a test asserts it).
"""

__version__ = "0.1.0"
