"""Write the features both tools use: the project's ItemFeaturizer (TF-IDF + SVD), fitted on the
oracle *train* queries' text only (no labels), applied to every banking77 file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, OUT, SETTINGS, features_path  # noqa: E402

from routing.features import ItemFeaturizer  # noqa: E402


def inputs(name: str) -> list[dict]:
    return [json.loads(line)["input"] for line in (DATA / name).read_text().splitlines()]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    featurizer = ItemFeaturizer(max_features=2**14, n_components=256, random_state=0)
    featurizer.fit(inputs(SETTINGS["oracle"][0]))
    for name in {f for pair in SETTINGS.values() for f in pair if f}:
        X = featurizer.transform(inputs(name)).astype(np.float32)
        np.save(features_path(name), X)
        print(name, X.shape)


if __name__ == "__main__":
    main()
