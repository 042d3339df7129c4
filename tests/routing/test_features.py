"""Pre-routing features g(x): text, images, metadata; deterministic and pluggable."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from routing.features import ItemFeaturizer, N_IMAGE_FEATURES, is_image_value, load_image

ITEMS = [
    {"instruction": "Add 75 and 48.", "output_1": "The sum is 123.", "output_2": "The sum is 134.", "n": 3},
    {"instruction": "Name a fruit.", "output_1": "Apple.", "output_2": "A car is not a fruit.", "n": 1},
    {"instruction": "Translate hello to French.", "output_1": "Bonjour.", "output_2": "Hola.", "n": 2},
    {"instruction": "Add 2 and 2.", "output_1": "The sum is 4.", "output_2": "The sum is 5.", "n": 7},
]


def data_uri(colour: tuple[int, int, int], size=(20, 10)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_text_items_become_a_dense_deterministic_matrix():
    first = ItemFeaturizer(n_components=2).fit_transform(ITEMS)
    again = ItemFeaturizer(n_components=2).fit(ITEMS).transform(ITEMS)
    assert first.shape[0] == 4 and first.ndim == 2 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    featurizer = ItemFeaturizer(n_components=2).fit(ITEMS)
    assert featurizer.text_fields_ == ["instruction", "output_1", "output_2"]
    assert featurizer.numeric_fields_ == ["n"]
    assert featurizer.n_features_out_ == first.shape[1]


def test_unseen_and_missing_fields_still_transform():
    featurizer = ItemFeaturizer(n_components=2).fit(ITEMS)
    out = featurizer.transform([{"instruction": "Something new entirely."}, {}])
    assert out.shape == (2, featurizer.n_features_out_)
    assert np.isfinite(out).all()


class CountingEmbedder:
    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=float)


def test_a_pluggable_embedder_replaces_tfidf():
    embedder = CountingEmbedder()
    out = ItemFeaturizer(embedder=embedder).fit_transform(ITEMS)
    assert embedder.calls > 0
    # 3 fields x (2 embedding dims + 5 text statistics) + 3 pairwise similarities + 1 numeric
    assert out.shape == (4, 3 * 7 + 3 + 1)
    assert out[0, 0] == len(ITEMS[0]["instruction"])


def test_image_fields_from_data_uris_paths_and_pil(tmp_path):
    Image.new("RGB", (30, 30), (0, 0, 255)).save(tmp_path / "blue.png")
    items = [
        {"image": data_uri((255, 0, 0)), "caption": "a red square"},
        {"image": "blue.png", "caption": "a blue square"},
        {"image": Image.new("RGB", (8, 8), (0, 255, 0)), "caption": "a green square"},
        {"image": "https://example.com/remote.jpg", "caption": "never fetched"},
    ]
    assert all(is_image_value(item["image"]) for item in items)
    assert not is_image_value("a caption with words.png inside")
    featurizer = ItemFeaturizer(image_root=tmp_path, n_components=1).fit(items)
    assert featurizer.image_fields_ == ["image"] and featurizer.text_fields_ == ["caption"]
    out = featurizer.transform(items)
    image_block = out[:, -N_IMAGE_FEATURES:]
    red_mean, blue_mean = image_block[0, 4:7], image_block[1, 4:7]
    assert red_mean[0] == pytest.approx(1.0) and red_mean[2] == pytest.approx(0.0)
    assert blue_mean[2] == pytest.approx(1.0)
    assert image_block[3, -1] == 1.0  # remote image: missing flag, no download
    assert image_block[0, -1] == 0.0


def test_oversized_or_broken_images_are_refused(tmp_path, monkeypatch):
    import routing.features as features

    monkeypatch.setattr(features, "MAX_IMAGE_PIXELS", 100)
    assert load_image(data_uri((1, 2, 3), size=(20, 20))) is None
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert load_image("broken.png", tmp_path) is None
    assert load_image("data:image/png;base64,@@@") is None
