"""How often the demo judge agrees with the generator's truth, overall and per slice / difficulty."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from routing.demo.judge import MODEL_NAME, DemoJudge
from routing.demo.scenes import LABELS, DemoItem
from routing.tracelog import TraceRecord


def judge_items(items: Iterable[DemoItem], judge: DemoJudge | None = None) -> list[tuple[DemoItem, str]]:
    """(item, full reasoning) for every item."""
    judge = judge or DemoJudge()
    return [(item, judge.reason(item.image, item.caption)) for item in items]


def accuracy_report(judged: list[tuple[DemoItem, str]]) -> dict[str, Any]:
    """Accuracy overall, by caption type, by difficulty tag, on clean items and by true label."""
    total: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for item, reasoning in judged:
        right = reasoning.rsplit("Label: ", 1)[1].strip() == item.label
        keys = ["all", f"slice:{item.slice}", f"truth:{item.label}", "clean" if not item.tags else "hard"]
        keys += [f"tag:{tag}" for tag in item.tags]
        for key in keys:
            total[key] += 1
            correct[key] += right
    return {key: {"n": total[key], "accuracy": round(correct[key] / total[key], 4)} for key in sorted(total)}


def to_trace_records(judged: list[tuple[DemoItem, str]]) -> list[TraceRecord]:
    """Trace log v1 records: the item (image as a data: URL), the demo judge's trace, the truth as human label."""
    return [
        TraceRecord(
            id=item.id,
            input=item.to_input(),
            judge_label=reasoning.rsplit("Label: ", 1)[1].strip(),
            judge_reasoning=reasoning,
            judge_model=MODEL_NAME,
            labels=list(LABELS),
            human_label=item.label,
            slice=item.slice,
            extra={"tags": list(item.tags)},
        )
        for item, reasoning in judged
    ]
