"""Judge clients: the OpenAI-compatible streaming judge, its prompts, label parsing and token counts."""

from routing.judges.errors import (
    JudgeConnectionError,
    JudgeError,
    JudgeInputError,
    JudgeOutputError,
    JudgeRateLimited,
    JudgeRequestError,
    JudgeServerError,
    JudgeTimeout,
)
from routing.judges.labels import is_label_line, normalize_label, parse_label
from routing.judges.openai_judge import RECORD_ID_HEADER, JudgeResult, JudgeStream, OpenAIJudge
from routing.judges.prompts import KINDS, build_messages, infer_kind
from routing.judges.tokens import estimate_tokens, split_tokens

__all__ = [
    "KINDS",
    "RECORD_ID_HEADER",
    "JudgeConnectionError",
    "JudgeError",
    "JudgeInputError",
    "JudgeOutputError",
    "JudgeRateLimited",
    "JudgeRequestError",
    "JudgeResult",
    "JudgeServerError",
    "JudgeStream",
    "JudgeTimeout",
    "OpenAIJudge",
    "build_messages",
    "estimate_tokens",
    "infer_kind",
    "is_label_line",
    "normalize_label",
    "parse_label",
    "split_tokens",
]
