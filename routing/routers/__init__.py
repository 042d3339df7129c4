"""The router family Ψ: one ``StepwiseRouter`` interface, several designs.

- ``LearnedPrefixRouter``: the learned prefix router (the proposed method).
- ``full_trace_router`` / ``NoTraceRouter``: the full-trace one-shot and no-trace ablations.
- ``LLMRouter``: an OpenAI-compatible model prompted with the item, the prefix and retrieved demos.
- ``save_model`` / ``load_model``: persist any fitted router or scorer.
"""

from routing.routers.ablations import NoTraceRouter, full_trace_router
from routing.routers.base import RouterDecision, StepwiseRouter
from routing.routers.io import dump_model_bytes, load_model, load_model_bytes, save_model
from routing.routers.learned import LearnedPrefixRouter, judge_wrong
from routing.routers.llm import LLMRouter

__all__ = [
    "LLMRouter", "LearnedPrefixRouter", "NoTraceRouter", "RouterDecision", "StepwiseRouter", "dump_model_bytes",
    "full_trace_router", "judge_wrong", "load_model", "load_model_bytes", "save_model",
]
