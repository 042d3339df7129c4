"""Pixel analysis for the demo judge: colour segmentation, connected components, shape by geometry.

It sees only the image. Shapes of one colour that touch merge into one region, a shape cut by
another is measured as what is left of it, tiny shapes fall under the noise threshold or lose their
geometry, and paint between two palette colours goes to the nearer one: the errors are real.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from routing.demo.scenes import PALETTE

MAX_PIXELS = 4_000_000
_NAMES = list(PALETTE)
_COLOURS = np.array([PALETTE[name] for name in _NAMES], dtype=float)


@dataclass(frozen=True)
class Region:
    """One connected region of one colour."""

    colour: str
    shape: str
    area: int
    cx: float
    cy: float
    width: int
    height: int
    fill: float
    rgb: tuple[int, int, int]
    runner_up: str
    colour_ambiguity: float  # distance to the nearest palette colour / to the second nearest

    @property
    def elongated(self) -> bool:
        ratio = self.width / self.height
        return ratio > 1.35 or ratio < 1 / 1.35


def decode_image(data: bytes) -> np.ndarray:
    """RGB pixels (height, width, 3) of encoded image bytes; refuses images over MAX_PIXELS."""
    with Image.open(io.BytesIO(data)) as image:
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"image of {image.width}x{image.height} pixels is over the {MAX_PIXELS} limit")
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def classify_shape(fill: float) -> str:
    """Square fills its bounding box, a circle about pi/4 of it, a triangle about half."""
    if fill >= 0.88:
        return "square"
    if fill >= 0.64:
        return "circle"
    return "triangle"


def find_regions(pixels: np.ndarray, *, min_area: int = 20, background_threshold: float = 60.0) -> tuple[list[Region], int]:
    """Regions larger than ``min_area`` pixels (in reading order) and the number of smaller specks."""
    rgb = pixels.astype(float)
    foreground = np.linalg.norm(255.0 - rgb, axis=2) > background_threshold
    nearest = np.full(foreground.shape, -1)
    ys_fg, xs_fg = np.nonzero(foreground)
    fg = rgb[ys_fg, xs_fg]
    nearest[ys_fg, xs_fg] = np.argmin(np.linalg.norm(fg[:, None, :] - _COLOURS[None, :, :], axis=2), axis=1)
    regions: list[Region] = []
    specks = 0
    for index, name in enumerate(_NAMES):
        labelled, count = ndimage.label(nearest == index)
        for component, box in enumerate(ndimage.find_objects(labelled), start=1):
            ys, xs = np.nonzero(labelled[box] == component)
            area = len(xs)
            if area < min_area:
                specks += 1
                continue
            ys, xs = ys + box[0].start, xs + box[1].start
            width, height = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
            fill = area / (width * height)
            mean = rgb[ys, xs].mean(axis=0)
            gaps = np.linalg.norm(_COLOURS - mean, axis=1)
            first, second = np.argsort(gaps)[:2]
            regions.append(Region(
                colour=name, shape=classify_shape(fill), area=area, cx=float(xs.mean()), cy=float(ys.mean()),
                width=width, height=height, fill=float(fill), rgb=tuple(int(round(v)) for v in mean),
                runner_up=_NAMES[second], colour_ambiguity=float(gaps[first] / max(gaps[second], 1e-9)),
            ))
    regions.sort(key=lambda r: (round(r.cy / 10), r.cx))
    return regions, specks
