"""Synthetic labelled judge traces for router tests: errors leave cues in the reasoning."""

from __future__ import annotations

import numpy as np

from routing.tracelog import TraceRecord

TOPICS = ["math addition", "poem about spring", "capital of France", "sorting a list", "email to a boss"]


def make_traces(n: int = 200, error_rate: float = 0.3, seed: int = 0) -> list[TraceRecord]:
    """Pairs of records (two presentation orders share a group). Wrong judges hedge and contradict
    themselves from step 2 on; right judges state clear, checked facts."""
    rng = np.random.default_rng(seed)
    records = []
    for k in range(n):
        topic = TOPICS[k % len(TOPICS)]
        wrong = rng.random() < error_rate
        human = "output_1" if rng.random() < 0.5 else "output_2"
        other = "output_2" if human == "output_1" else "output_1"
        judge = other if wrong else human
        middle = (
            "However, it might be that the second one is slightly better, although I am not sure."
            if wrong else "It correctly follows every constraint of the instruction."
        )
        reasoning = (
            f"Output (a) answers the {topic} request. {middle} "
            f"The other output {'is similar' if wrong else 'misses a requirement'}. "
            f"Therefore, Output ({'a' if judge == 'output_1' else 'b'}) is better."
        )
        records.append(TraceRecord(
            id=f"item-{k}", input={"instruction": f"Please handle the {topic} task number {k}.",
                                   "output_1": f"Answer one for {topic}.", "output_2": f"Answer two on {topic}."},
            judge_label=judge, judge_reasoning=reasoning, judge_model="synthetic", labels=["output_1", "output_2"],
            human_label=human, slice=topic, group=f"group-{k // 2}",
        ))
    return records
