"""Chat messages for the judge: one template per item kind, each asking for numbered steps and a
final ``Label: <label>`` line. Image fields become ``image_url`` parts; text fields become text."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from routing.judges.errors import JudgeInputError
from routing.judges.images import image_url, looks_like_image

KINDS = ("image_caption", "text_classification", "pairwise", "generic")

SYSTEM_PROMPT = (
    "You are a careful data annotator. Think step by step and write your reasoning as numbered steps, "
    'one short step per line ("1. ...", "2. ...", ...). Then write one final line of the exact form '
    "`Label: <label>`, where <label> is one of: {labels}. Write nothing after that line."
)

QUESTIONS = {
    "image_caption": "Does this caption accurately describe the image? Check every claim it makes "
    "(objects, counts, colours, positions, negations) against the image. "
    'Answer "{first}" if it does and "{second}" if it does not.',
    "text_classification": "Which label fits this text best?",
    "pairwise": "Which output follows the instruction better? Judge honesty, helpfulness and precise "
    "instruction following; do not prefer an output because it is longer or comes first.",
    "generic": "Which label fits this item?",
}


def infer_kind(item: Mapping[str, Any]) -> str:
    """The template for an item, from its fields."""
    names = set(item)
    if any(looks_like_image(name, value) for name, value in item.items()) and "caption" in names:
        return "image_caption"
    if {"output_1", "output_2"} <= names:
        return "pairwise"
    if len(item) == 1 and isinstance(next(iter(item.values())), str):
        return "text_classification"
    return "generic"


def build_messages(
    item: Mapping[str, Any],
    *,
    labels: Sequence[str],
    kind: str | None = None,
    instructions: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """System + user messages asking the judge to label ``item`` with one of ``labels``.

    ``instructions`` (the project's labeling guideline) replaces the kind's default question.
    """
    if not labels:
        raise JudgeInputError("the label set is empty")
    if not item:
        raise JudgeInputError("the item has no fields")
    kind = kind or infer_kind(item)
    if kind not in KINDS:
        raise JudgeInputError(f"unknown item kind {kind!r}; expected one of {KINDS}")
    if kind == "image_caption":
        missing = [name for name in ("caption",) if name not in item]
        if missing or not any(looks_like_image(n, v) for n, v in item.items()):
            raise JudgeInputError("an image_caption item needs an image field and a 'caption' field")
        question = instructions or QUESTIONS[kind].format(first=labels[0], second=labels[-1])
    else:
        question = instructions or QUESTIONS[kind]
    label_list = ", ".join(labels)
    parts: list[dict[str, Any]] = [{"type": "text", "text": question}]
    for name, value in item.items():
        if looks_like_image(name, value):
            parts.append({"type": "text", "text": f"{_heading(name)}:"})
            parts.append({"type": "image_url", "image_url": {"url": image_url(value, root=image_root)}})
        elif kind == "image_caption" and name == "caption":
            parts.append({"type": "text", "text": f"Caption: {value}"})
        else:
            parts.append({"type": "text", "text": f"{_heading(name)}:\n{_as_text(value)}"})
    parts.append({"type": "text", "text": f"Possible labels: {label_list}. End with `Label: <label>`."})
    if all(part["type"] == "text" for part in parts):
        user_content: Any = "\n\n".join(part["text"] for part in parts)
    else:
        user_content = parts
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(labels=label_list)},
        {"role": "user", "content": user_content},
    ]


def _heading(name: str) -> str:
    return f"[{name}]"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict, int, float, bool)) or value is None:
        return json.dumps(value, ensure_ascii=False)
    raise JudgeInputError(f"cannot send a field of type {type(value).__name__} to the judge")
