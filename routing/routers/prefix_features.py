"""Features of a reasoning prefix r_1..r_t for the learned router.

Text: TF-IDF (word 1–2 grams) of the prefix. Dense: the step index t, lengths, cue rates (hedges,
self-corrections, contrasts, negations, positive and tie words, verdict words, numbers absent from
the item = number mismatches) for the whole prefix and for its last step, log-lengths of the item's
text fields, and logit(p̂) from the disagreement scorer f_θ(g(x)).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer


CUES: dict[str, tuple[str, ...]] = {
    "hedge": (
        "maybe", "might", "perhaps", "possibly", "seems", "seem", "appears", "likely", "unclear", "somewhat",
        "arguably", "probably", "could", "may", "slightly", "partially", "mostly", "relatively", "not sure",
    ),
    "self_correction": (
        "wait", "actually", "correction", "mistake", "on second thought", "reconsider", "let me re", "oops",
        "i mean", "rather", "instead", "revise", "i was wrong", "re evaluate", "upon closer",
    ),
    "contrast": (
        "but", "however", "although", "though", "whereas", "while", "nevertheless", "yet", "on the other hand",
        "despite", "still",
    ),
    "negation": (
        "not", "no", "never", "none", "neither", "nor", "cannot", "fail", "fails", "lack", "lacks", "missing",
        "incorrect", "incorrectly", "wrong", "inaccurate", "n't",
    ),
    "positive": (
        "correct", "correctly", "accurate", "accurately", "good", "precise", "precisely", "follows", "fulfills",
        "adheres", "directly", "fully", "complete", "relevant", "clear",
    ),
    "tie": ("both", "equally", "tie", "similar", "same", "either"),
    "verdict": ("better", "prefer", "preferred", "superior", "therefore", "overall", "in conclusion", "thus"),
}
_CUE_NAMES = list(CUES)
# Phrase (as a tuple of lower-case words) -> cue index. Each word position counts at most once.
_PHRASES: dict[tuple[str, ...], int] = {
    tuple(phrase.split()): k for k, name in enumerate(_CUE_NAMES) for phrase in CUES[name]
}
_MAX_PHRASE = max(len(p) for p in _PHRASES)
_CUE_TOKEN = re.compile(r"\w+?(?=n't\b)|n't|\w+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+")


def _cue_rates(text: str) -> list[float]:
    """Occurrences of each cue per 10 words (one dictionary pass over the words)."""
    words = _CUE_TOKEN.findall(text.lower())
    counts = [0] * len(_CUE_NAMES)
    phrases = _PHRASES
    for i in range(len(words)):
        for size in range(_MAX_PHRASE, 0, -1):
            cue = phrases.get(tuple(words[i:i + size]))
            if cue is not None:
                counts[cue] += 1
                break
    scale = 10.0 / max(1, len(words))
    return [c * scale for c in counts]


def number_mismatch(text: str, item_text: str) -> tuple[float, float]:
    """(numbers in the text, share of them that appear nowhere in the item)."""
    numbers = _NUMBER.findall(text)
    if not numbers:
        return 0.0, 0.0
    known = set(_NUMBER.findall(item_text))
    return math.log1p(len(numbers)), sum(n not in known for n in numbers) / len(numbers)


def item_text(item: dict[str, Any]) -> str:
    return "\n".join(v for v in item.values() if isinstance(v, str))


class PrefixFeaturizer:
    """Sparse TF-IDF of the prefix text plus a dense block of cue/position/item features."""

    def __init__(self, max_features: int = 20000, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2):
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.min_df = min_df

    def fit(self, prefix_texts: Sequence[str], items: Sequence[dict[str, Any]]) -> PrefixFeaturizer:
        self.vectorizer_ = TfidfVectorizer(
            max_features=self.max_features, ngram_range=self.ngram_range, min_df=self.min_df, sublinear_tf=True,
            dtype=np.float64,
        )
        try:
            self.vectorizer_.fit(prefix_texts)
        except ValueError:  # tiny training sets: min_df leaves no term
            self.vectorizer_.set_params(min_df=1)
            self.vectorizer_.fit(prefix_texts)
        fields: dict[str, None] = {}
        for item in items:
            for name, value in item.items():
                if isinstance(value, str):
                    fields.setdefault(name, None)
        self.item_fields_ = list(fields)
        return self

    @property
    def n_dense_(self) -> int:
        return 5 + 2 * len(CUES) + 2 + len(self.item_fields_) + 1

    def text_matrix(self, prefix_texts: Sequence[str]) -> sparse.csr_matrix:
        return self.vectorizer_.transform(prefix_texts)

    def text_vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One text's TF-IDF row as (column indices, values): ``text_matrix`` without its overhead."""
        analyzer = self.__dict__.get("_analyzer")
        if analyzer is None:
            analyzer = self._analyzer = self.vectorizer_.build_analyzer()
            self._vocabulary = self.vectorizer_.vocabulary_
            self._idf = self.vectorizer_.idf_
        counts: dict[int, int] = {}
        vocabulary = self._vocabulary
        for term in analyzer(text):
            column = vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        if not counts:
            return np.zeros(0, dtype=int), np.zeros(0)
        columns = np.fromiter(counts.keys(), dtype=int, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))) * self._idf[columns]
        return columns, values / np.sqrt(values @ values)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_analyzer", "_vocabulary", "_idf")}

    def dense_row(
        self, prefix_steps: Sequence[str], prefix_text: str, item: dict[str, Any], p_hat: float, item_blob: str
    ) -> list[float]:
        t = len(prefix_steps)
        last = prefix_steps[-1] if prefix_steps else ""
        p = min(max(p_hat, 1e-4), 1 - 1e-4)
        return [
            math.log1p(t), 1.0 / (1 + t), math.log1p(len(prefix_text)) / 8, math.log1p(len(last)) / 8,
            float(t == 1),
            *_cue_rates(prefix_text), *_cue_rates(last),
            *number_mismatch(prefix_text, item_blob),
            *(math.log1p(len(v)) / 8 if isinstance(v := item.get(name), str) else 0.0 for name in self.item_fields_),
            math.log(p / (1 - p)),
        ]

    def dense_matrix(
        self, prefixes: Sequence[Sequence[str]], texts: Sequence[str], items: Sequence[dict[str, Any]],
        p_hat: Sequence[float],
    ) -> np.ndarray:
        blobs: dict[int, str] = {}
        rows = []
        for steps, text, item, p in zip(prefixes, texts, items, p_hat):
            blob = blobs.get(id(item))
            if blob is None:
                blob = blobs[id(item)] = item_text(item)
            rows.append(self.dense_row(steps, text, item, float(p), blob))
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), self.n_dense_)
