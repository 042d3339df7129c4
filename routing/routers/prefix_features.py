"""Features of a reasoning prefix r_1..r_t for the learned router.

Text: TF-IDF (word 1–2 grams within steps) of the prefix. Dense: the step index t, lengths, cue rates (hedges,
self-corrections, contrasts, negations, positive and tie words, verdict words, numbers absent from
the item = number mismatches) for the whole prefix and for its last step, log-lengths of the item's
text fields, and logit(p̂) from the disagreement scorer f_θ(g(x)).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
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


def _cue_counts(text: str) -> tuple[list[int], int]:
    """(occurrences of each cue, number of words) in one text (one dictionary pass over its words)."""
    words = _CUE_TOKEN.findall(text.lower())
    counts = [0] * len(_CUE_NAMES)
    phrases = _PHRASES
    for i in range(len(words)):
        for size in range(_MAX_PHRASE, 0, -1):
            cue = phrases.get(tuple(words[i:i + size]))
            if cue is not None:
                counts[cue] += 1
                break
    return counts, len(words)


def _rates(counts: Sequence[int], n_words: int) -> list[float]:
    scale = 10.0 / max(1, n_words)
    return [c * scale for c in counts]


def item_text(item: dict[str, Any]) -> str:
    return "\n".join(v for v in item.values() if isinstance(v, str))


@lru_cache(maxsize=65536)
def _step_cues(step: str) -> tuple[tuple[int, ...], int, tuple[str, ...]]:
    """(cue counts, words, numbers) of one step: independent of any fitted model, so shared."""
    counts, words = _cue_counts(step)
    return tuple(counts), words, tuple(_NUMBER.findall(step))


class _StepInfo:
    """Everything the features need from one step, computed once per distinct step text."""

    __slots__ = ("chars", "counts", "cues", "numbers", "words")

    def __init__(self, step: str, counts: dict[int, int]):
        self.counts = counts
        self.cues, self.words, self.numbers = _step_cues(step)
        self.chars = len(step)


class PrefixFeaturizer:
    """Sparse TF-IDF of a prefix plus a dense block of cue/position/item features.

    A prefix is represented through its steps: n-gram counts, cue counts and numbers are computed
    per step (and cached), and a prefix sums its steps' — so a trace of T steps costs O(T), not
    O(T²), and the live path (one prefix at a time) computes exactly what batch replay computes.
    The vocabulary and IDF come from complete training traces.
    """

    _CACHE_SIZE = 4096

    def __init__(self, max_features: int = 20000, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2):
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.min_df = min_df

    def fit(self, traces: Sequence[Sequence[str]], items: Sequence[dict[str, Any]]) -> PrefixFeaturizer:
        """Learn the vocabulary/IDF from training traces (lists of steps) and the item's text fields."""
        documents = [" ".join(steps) for steps in traces]
        self.vectorizer_ = TfidfVectorizer(
            max_features=self.max_features, ngram_range=self.ngram_range, min_df=self.min_df, sublinear_tf=True,
            dtype=np.float64,
        )
        try:
            self.vectorizer_.fit(documents)
        except ValueError:  # tiny training sets: min_df leaves no term
            self.vectorizer_.set_params(min_df=1)
            self.vectorizer_.fit(documents)
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

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_analyzer", "_steps")}

    def _info(self, step: str) -> _StepInfo:
        cache: dict[str, _StepInfo] | None = self.__dict__.get("_steps")
        if cache is None:
            cache = self._steps = {}
            self._analyzer = self.vectorizer_.build_analyzer()
        info = cache.get(step)
        if info is None:
            vocabulary = self.vectorizer_.vocabulary_
            counts: dict[int, int] = {}
            for term in self._analyzer(step):
                column = vocabulary.get(term)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            info = _StepInfo(step, counts)
            if len(cache) >= self._CACHE_SIZE:
                cache.clear()
            cache[step] = info
        return info

    def text_vector(self, prefix_steps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """One prefix's TF-IDF row as (column indices, values)."""
        counts: dict[int, int] = {}
        for step in prefix_steps:
            for column, count in self._info(step).counts.items():
                counts[column] = counts.get(column, 0) + count
        if not counts:
            return np.zeros(0, dtype=int), np.zeros(0)
        columns = np.fromiter(counts.keys(), dtype=int, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts))))
        values *= self.vectorizer_.idf_[columns]
        return columns, values / np.sqrt(values @ values)

    def text_matrix(self, prefixes: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """TF-IDF rows of many prefixes (same values as ``text_vector``)."""
        indptr, indices, data = [0], [], []
        for prefix in prefixes:
            columns, values = self.text_vector(prefix)
            indices.append(columns)
            data.append(values)
            indptr.append(indptr[-1] + len(columns))
        n_terms = len(self.vectorizer_.vocabulary_)
        return sparse.csr_matrix(
            (np.concatenate(data) if data else np.zeros(0), np.concatenate(indices) if indices else np.zeros(0, int),
             np.asarray(indptr)),
            shape=(len(prefixes), n_terms),
        )

    def dense_row(self, prefix_steps: Sequence[str], item: dict[str, Any], p_hat: float, item_numbers: set[str]) -> list[float]:
        """Cue/position/item features of one prefix; ``item_numbers`` = ``item_number_set(item)``."""
        infos = [self._info(step) for step in prefix_steps]
        t = len(infos)
        cues = [0] * len(_CUE_NAMES)
        words = chars = 0
        numbers: list[str] = []
        for info in infos:
            cues = [a + b for a, b in zip(cues, info.cues)]
            words += info.words
            chars += info.chars + 1
            numbers.extend(info.numbers)
        last = infos[-1] if infos else None
        p = min(max(p_hat, 1e-4), 1 - 1e-4)
        return [
            math.log1p(t), 1.0 / (1 + t), math.log1p(max(0, chars - 1)) / 8, math.log1p(last.chars if last else 0) / 8,
            float(t == 1),
            *_rates(cues, words), *(_rates(last.cues, last.words) if last else [0.0] * len(_CUE_NAMES)),
            *((math.log1p(len(numbers)), sum(n not in item_numbers for n in numbers) / len(numbers)) if numbers
              else (0.0, 0.0)),
            *(math.log1p(len(v)) / 8 if isinstance(v := item.get(name), str) else 0.0 for name in self.item_fields_),
            math.log(p / (1 - p)),
        ]

    def dense_matrix(
        self, prefixes: Sequence[Sequence[str]], items: Sequence[dict[str, Any]], p_hat: Sequence[float]
    ) -> np.ndarray:
        numbers: dict[int, set[str]] = {}
        rows = []
        for steps, item, p in zip(prefixes, items, p_hat):
            known = numbers.get(id(item))
            if known is None:
                known = numbers[id(item)] = item_number_set(item)
            rows.append(self.dense_row(steps, item, float(p), known))
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), self.n_dense_)


def item_number_set(item: dict[str, Any]) -> set[str]:
    """The numbers written anywhere in the item (a number the judge cites but the item lacks is a cue)."""
    return set(_NUMBER.findall(item_text(item)))
