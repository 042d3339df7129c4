"""Offline evaluation of the trace-aware router and its baselines on a trace log."""

from routing.evaluation.runner import METHODS, evaluate_traces

__all__ = ["METHODS", "evaluate_traces"]
