"""The paper's LLM router: an OpenAI-compatible model reads the item, the reasoning prefix and m
retrieved labelled demonstrations, and answers with the probability that the judge is wrong.

Works against any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a local test server) through
the official ``openai`` SDK. Designs vary m (``n_demos``), the retrieval (``"tfidf"`` nearest
demonstrations or ``"random"``) and the strictness wording.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from routing.routers.base import StepwiseRouter
from routing.routers.learned import judge_wrong
from routing.routers.prefix_features import item_text
from routing.steps import parse_steps
from routing.tracelog import TraceRecord

__all__ = ["LLMRouter", "parse_probability"]

STRICTNESS = {
    "lenient": "Flag the judge only when its reasoning is clearly going wrong.",
    "balanced": "Flag the judge when its reasoning is more likely wrong than right.",
    "strict": "Flag the judge at any sign of a mistake, a misreading or unjustified certainty.",
}
SYSTEM = (
    "You monitor an AI judge that labels items while it writes its reasoning step by step. Estimate the "
    "probability that the judge's final label will DISAGREE with a careful human annotator. {strictness} "
    "Reply with one line exactly: p_wrong: <a number between 0 and 1>"
)
_PROBABILITY = re.compile(r"p_wrong\s*[:=]\s*([01](?:\.\d+)?|\.\d+)", re.I)
_MAX_CHARS = 1500  # per field / prefix in the prompt, to bound cost


def parse_probability(text: str) -> float | None:
    """The probability in a reply ("p_wrong: 0.7"; ESCALATE/CONTINUE accepted); None if absent."""
    match = _PROBABILITY.search(text or "")
    if match:
        return min(1.0, max(0.0, float(match.group(1))))
    upper = (text or "").upper()
    if "ESCALATE" in upper:
        return 1.0
    if "CONTINUE" in upper:
        return 0.0
    return None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS] + " …"


def _render_item(item: dict[str, Any]) -> str:
    return "\n".join(f"[{name}] {_clip(value)}" for name, value in item.items() if isinstance(value, str))


class LLMRouter(StepwiseRouter):
    """An LLM asked, every Δ steps, for P(judge wrong | item, prefix, demonstrations)."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        n_demos: int = 4,
        retrieval: Literal["tfidf", "random"] = "tfidf",
        strictness: Literal["lenient", "balanced", "strict"] = "balanced",
        demo_steps: int = 2,
        threshold: float = 0.5,
        threshold_slope: float = 0.0,
        min_step: int = 1,
        delta: int = 2,
        timeout: float = 30.0,
        max_retries: int = 2,
        random_state: int = 0,
    ):
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.n_demos = n_demos
        self.retrieval = retrieval
        self.strictness = strictness
        self.demo_steps = demo_steps
        self.threshold = threshold
        self.threshold_slope = threshold_slope
        self.min_step = min_step
        self.delta = delta
        self.timeout = timeout
        self.max_retries = max_retries
        self.random_state = random_state

    def fit(self, records: Sequence[TraceRecord], p_hat: np.ndarray | None = None, steps=None, item_features=None):
        """Build the demonstration bank: item, the first ``demo_steps`` steps, and whether the judge erred."""
        steps = [parse_steps(r.judge_reasoning) for r in records] if steps is None else steps
        wrong = judge_wrong(records)
        self.demos_ = [
            {"item": r.input, "prefix": " ".join(s[: self.demo_steps]), "wrong": bool(w)}
            for r, s, w in zip(records, steps, wrong)
        ]
        self.index_ = None
        if self.demos_ and self.retrieval == "tfidf":
            self.index_ = TfidfVectorizer(sublinear_tf=True).fit(
                [item_text(d["item"]) + " " + d["prefix"] for d in self.demos_]
            )
            self.demo_matrix_ = self.index_.transform([item_text(d["item"]) + " " + d["prefix"] for d in self.demos_])
        self.calls_ = 0
        self.unparsed_ = 0
        return self

    def _client(self):
        client = self.__dict__.get("_client_obj")
        if client is None:
            from openai import OpenAI

            client = self._client_obj = OpenAI(
                base_url=self.base_url, api_key=self.api_key or "not-needed", timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return client

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_client_obj"}

    def retrieve(self, item: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
        """The m demonstrations shown with this query (nearest by TF-IDF, or seeded random)."""
        if not self.demos_ or self.n_demos <= 0:
            return []
        m = min(self.n_demos, len(self.demos_))
        if self.retrieval == "random" or self.index_ is None:
            rng = np.random.default_rng([self.random_state, len(prefix)])
            return [self.demos_[i] for i in rng.choice(len(self.demos_), size=m, replace=False)]
        query = self.index_.transform([item_text(item) + " " + prefix])
        similarity = (self.demo_matrix_ @ query.T).toarray().ravel()
        return [self.demos_[i] for i in np.argsort(-similarity, kind="stable")[:m]]

    def messages(self, prefix_steps: Sequence[str], item: dict[str, Any], p_hat: float) -> list[dict[str, str]]:
        prefix = " ".join(prefix_steps)
        parts = []
        for k, demo in enumerate(self.retrieve(item, prefix), start=1):
            parts.append(
                f"### Example {k}\n{_render_item(demo['item'])}\nReasoning so far: {_clip(demo['prefix'])}\n"
                f"Outcome: the judge was {'WRONG' if demo['wrong'] else 'RIGHT'}."
            )
        parts.append(
            f"### Now\n{_render_item(item)}\nReasoning so far ({len(prefix_steps)} steps): {_clip(prefix)}\n"
            f"Prior estimate from the item alone: {p_hat:.2f}"
        )
        return [
            {"role": "system", "content": SYSTEM.format(strictness=STRICTNESS[self.strictness])},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def score_prefix(self, prefix_steps, item, p_hat, *, judge_label=None, item_features=None) -> float:
        response = self._client().chat.completions.create(
            model=self.model, messages=self.messages(prefix_steps, item, float(p_hat)), temperature=0, max_tokens=16,
        )
        self.calls_ = self.__dict__.get("calls_", 0) + 1
        probability = parse_probability(response.choices[0].message.content or "")
        if probability is None:
            # An unreadable reply carries no evidence: fall back on the item-only estimate.
            self.unparsed_ = self.__dict__.get("unparsed_", 0) + 1
            return float(p_hat)
        return probability

    def describe(self) -> dict[str, Any]:
        return {"router": "llm", "model": self.model, "n_demos": self.n_demos, "retrieval": self.retrieval,
                "strictness": self.strictness, **self.policy()}
