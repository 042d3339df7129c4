"""Pre-routing features g(x): what is known about an item before the judge runs.

``ItemFeaturizer`` turns item inputs (dicts of named fields, as in trace log v1) into a dense
float matrix: per text field a few dense components of a TF-IDF model (or a pluggable
``TextEmbedder``), cosine similarities between text fields, simple text statistics, numeric
metadata fields, and Pillow-derived image features (size, colour statistics and histograms, edge
density) for image fields. Everything is deterministic for a fixed ``random_state``.
"""

from __future__ import annotations

import base64
import io
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["ItemFeaturizer", "TextEmbedder", "image_features", "is_image_value", "load_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
#: Decoded images above this many pixels are refused (decompression-bomb guard).
MAX_IMAGE_PIXELS = 40_000_000
_IMAGE_SIDE = 96  # images are reduced to at most this side before computing statistics
_HIST_BINS = 8
N_IMAGE_FEATURES = 4 + 6 + 3 * _HIST_BINS + 2 + 1


@runtime_checkable
class TextEmbedder(Protocol):
    """Anything that turns texts into fixed-size vectors (a local model, an embeddings endpoint)."""

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dim)."""
        ...


def is_image_value(value: Any) -> bool:
    """Whether a field value denotes an image: a PIL image, a data: URI, or an image path/URL."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(value, Image.Image):
        return True
    if not isinstance(value, str):
        return False
    if value.startswith("data:image/"):
        return True
    if len(value) > 2048 or "\n" in value or " " in value.strip():
        return False
    return value.lower().split("?", 1)[0].endswith(IMAGE_EXTENSIONS)


def load_image(value: Any, root: str | Path | None = None):
    """Open an image field value as an RGB PIL image; None when it is remote or unreadable.

    Paths are relative to ``root`` (the trace log's folder). http(s) URLs are never fetched:
    features must be computable offline.
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, str) and value.startswith("data:image/"):
        try:
            payload = base64.b64decode(value.split(",", 1)[1], validate=False)
            image = Image.open(io.BytesIO(payload))
        except (IndexError, ValueError, OSError):
            return None
    elif isinstance(value, str) and not value.startswith(("http://", "https://")):
        path = Path(value) if root is None else Path(root) / value
        try:
            image = Image.open(path)
        except (OSError, ValueError):
            return None
    else:
        return None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        return None
    try:
        image.draft("RGB", (_IMAGE_SIDE * 2, _IMAGE_SIDE * 2))
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombWarning):
        return None
    rgb.info["original_size"] = (width, height)
    return rgb


def image_features(image) -> np.ndarray:
    """Fixed-length features of one RGB image (all zeros plus a 'missing' flag when None)."""
    out = np.zeros(N_IMAGE_FEATURES, dtype=np.float64)
    if image is None:
        out[-1] = 1.0
        return out
    from PIL import ImageFilter

    width, height = image.info.get("original_size", image.size)
    small = image.copy()
    small.thumbnail((_IMAGE_SIDE, _IMAGE_SIDE))
    pixels = np.asarray(small, dtype=np.float64) / 255.0
    flat = pixels.reshape(-1, 3)
    hist = [np.histogram(flat[:, c], bins=_HIST_BINS, range=(0.0, 1.0))[0] / len(flat) for c in range(3)]
    gray = np.asarray(small.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float64) / 255.0
    gray_hist = np.histogram(np.asarray(small.convert("L")), bins=16, range=(0, 256))[0] / len(flat)
    entropy = -float(np.sum(gray_hist[gray_hist > 0] * np.log2(gray_hist[gray_hist > 0]))) / 4.0
    values = [
        math.log1p(width) / 10, math.log1p(height) / 10, math.log(max(width, 1) / max(height, 1)),
        math.log1p(width * height) / 20,
        *flat.mean(axis=0), *flat.std(axis=0),
        *np.concatenate(hist),
        float(gray[1:-1, 1:-1].mean()) if gray.shape[0] > 2 and gray.shape[1] > 2 else 0.0,
        entropy,
        0.0,
    ]
    out[:] = values
    return out


_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")


def _text_stats(text: str) -> list[float]:
    words = _WORD.findall(text)
    n_chars = len(text)
    return [
        math.log1p(n_chars) / 10,
        math.log1p(len(words)) / 10,
        len(_DIGIT.findall(text)) / n_chars if n_chars else 0.0,
        text.count("\n") / (1 + len(words)),
        float(n_chars == 0),
    ]


class ItemFeaturizer:
    """g(x): dense features of item inputs.

    Parameters
    ----------
    text_fields, image_fields : field names; ``None`` detects them at ``fit`` (strings are text
        unless they look like images; ints/floats/bools become numeric metadata).
    max_features : TF-IDF vocabulary size (shared by all text fields).
    ngram_range : word n-gram range of the TF-IDF vocabulary.
    n_components : dense TF-IDF components kept per text field (TruncatedSVD).
    embedder : a ``TextEmbedder`` used instead of TF-IDF + SVD when given.
    image_root : folder that relative image paths are resolved against.
    """

    def __init__(
        self,
        text_fields: Sequence[str] | None = None,
        image_fields: Sequence[str] | None = None,
        max_features: int = 2**12,
        n_components: int = 48,
        ngram_range: tuple[int, int] = (1, 1),
        embedder: TextEmbedder | None = None,
        image_root: str | Path | None = None,
        random_state: int = 0,
    ):
        self.text_fields = text_fields
        self.image_fields = image_fields
        self.max_features = max_features
        self.n_components = n_components
        self.ngram_range = ngram_range
        self.embedder = embedder
        self.image_root = image_root
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, inputs: Sequence[dict[str, Any]], y: Any = None) -> ItemFeaturizer:
        """Learn the fields, the vocabulary and the dense projection from item inputs."""
        inputs = list(inputs)
        if not inputs:
            raise ValueError("ItemFeaturizer.fit needs at least one item")
        self.text_fields_, self.image_fields_, self.numeric_fields_ = self._detect_fields(inputs)
        self.vectorizer_ = self.svd_ = None
        if self.text_fields_ and self.embedder is None:
            corpus = [self._text(item, name) for name in self.text_fields_ for item in inputs]
            self.vectorizer_ = TfidfVectorizer(
                max_features=self.max_features, ngram_range=self.ngram_range, sublinear_tf=True, min_df=2,
                dtype=np.float64,
            )
            try:
                tfidf = self.vectorizer_.fit_transform(corpus)
            except ValueError:  # too few documents for min_df=2
                self.vectorizer_.set_params(min_df=1)
                tfidf = self.vectorizer_.fit_transform(corpus)
            n_components = min(self.n_components, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
            if n_components >= 1:
                self.svd_ = TruncatedSVD(n_components=n_components, random_state=self.random_state)
                self.svd_.fit(tfidf)
        self.n_features_out_ = self.transform(inputs[:1]).shape[1]
        return self

    def fit_transform(self, inputs: Sequence[dict[str, Any]], y: Any = None) -> np.ndarray:
        return self.fit(inputs).transform(inputs)

    def _detect_fields(self, inputs: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
        seen: dict[str, str] = {}
        for item in inputs:
            for name, value in item.items():
                if name in seen or value is None:
                    continue
                if is_image_value(value):
                    seen[name] = "image"
                elif isinstance(value, str):
                    seen[name] = "text"
                elif isinstance(value, (int, float)):
                    seen[name] = "numeric"
        images = list(self.image_fields) if self.image_fields is not None else [
            n for n, kind in seen.items() if kind == "image"
        ]
        texts = list(self.text_fields) if self.text_fields is not None else [
            n for n, kind in seen.items() if kind == "text" and n not in images
        ]
        numeric = [n for n, kind in seen.items() if kind == "numeric" and n not in texts + images]
        return texts, images, numeric

    # -- transforming -----------------------------------------------------------------------

    @staticmethod
    def _text(item: dict[str, Any], name: str) -> str:
        value = item.get(name)
        return value if isinstance(value, str) else ""

    def transform(self, inputs: Sequence[dict[str, Any]]) -> np.ndarray:
        """Dense features, shape (n_items, n_features_out_)."""
        inputs = list(inputs)
        n = len(inputs)
        blocks: list[np.ndarray] = []
        field_vectors: list[np.ndarray] = []
        for name in self.text_fields_:
            texts = [self._text(item, name) for item in inputs]
            if self.embedder is not None:
                vectors = np.asarray(self.embedder.encode(texts), dtype=np.float64).reshape(n, -1)
                field_vectors.append(vectors)
                blocks.append(vectors)
            elif self.vectorizer_ is not None:
                tfidf = self.vectorizer_.transform(texts)
                field_vectors.append(tfidf)
                if self.svd_ is not None:
                    blocks.append(self.svd_.transform(tfidf))
            blocks.append(np.array([_text_stats(t) for t in texts], dtype=np.float64).reshape(n, -1))
        blocks.append(self._similarities(field_vectors, n))
        if self.numeric_fields_:
            blocks.append(np.array(
                [[_as_float(item.get(name)) for name in self.numeric_fields_] for item in inputs],
                dtype=np.float64,
            ))
        for name in self.image_fields_:
            blocks.append(np.array(
                [image_features(load_image(item.get(name), self.image_root)) for item in inputs],
                dtype=np.float64,
            ).reshape(n, N_IMAGE_FEATURES))
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    @staticmethod
    def _similarities(vectors: list[Any], n: int) -> np.ndarray:
        """Cosine similarity between every pair of text fields (e.g. instruction vs each answer)."""
        columns = []
        for i in range(len(vectors)):
            for j in range(i + 1, len(vectors)):
                a, b = vectors[i], vectors[j]
                if sparse.issparse(a):
                    dots = np.asarray(a.multiply(b).sum(axis=1)).ravel()
                    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel()
                                    * np.asarray(b.multiply(b).sum(axis=1)).ravel())
                else:
                    dots = np.einsum("ij,ij->i", a, b)
                    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
                columns.append(np.divide(dots, norms, out=np.zeros(n), where=norms > 0))
        return np.column_stack(columns) if columns else np.zeros((n, 0))


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return 0.0
