"""Seeded image–caption items for the demo: PNG scenes of shapes with true and subtly false captions.

Every item knows its truth (from the scene description, never from pixels) and the slice it belongs
to (caption type) plus difficulty tags: ``touching`` (shapes touching or overlapping, same colour
half the time), ``tiny`` (a shape a few pixels wide), ``close_colour`` (a shape painted part-way
towards a neighbouring palette colour). These are where a vision judge errs.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from routing.demo.captions import COLOUR_NAMES, OPPOSITE, SHAPE_NAMES, Claim

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "orange": (240, 130, 30),
    "yellow": (230, 200, 40),
    "green": (50, 160, 70),
    "blue": (45, 90, 215),
    "purple": (135, 65, 185),
}
# the colour each one is easiest to confuse with
NEIGHBOUR = {"red": "orange", "orange": "red", "yellow": "orange", "green": "yellow", "blue": "purple", "purple": "blue"}
BACKGROUND = (255, 255, 255)
LABELS = ("yes", "no")


@dataclass(frozen=True)
class Shape:
    """One drawn shape; ``(cx, cy)`` is its centre, ``r`` its half-size, ``rgb`` the paint used."""

    kind: str
    colour: str
    cx: float
    cy: float
    r: float
    rgb: tuple[int, int, int]

    def corners(self) -> list[tuple[float, float]]:
        return [(self.cx, self.cy - self.r), (self.cx + self.r, self.cy + self.r), (self.cx - self.r, self.cy + self.r)]


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    shapes: tuple[Shape, ...]

    def render(self) -> bytes:
        """The scene as PNG bytes (shapes drawn in order, later ones on top, no anti-aliasing)."""
        image = Image.new("RGB", (self.width, self.height), BACKGROUND)
        draw = ImageDraw.Draw(image)
        for s in self.shapes:
            box = (s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r)
            if s.kind == "circle":
                draw.ellipse(box, fill=s.rgb)
            elif s.kind == "square":
                draw.rectangle(box, fill=s.rgb)
            else:
                draw.polygon(s.corners(), fill=s.rgb)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def count(self, colour: str, kind: str) -> int:
        return sum(s.colour == colour and s.kind == kind for s in self.shapes)


def claim_holds(claim: Claim, scene: Scene) -> bool:
    """The truth of a claim about a scene, from the scene description."""
    n = scene.count(claim.colour, claim.shape)
    if claim.type == "exists":
        return n >= 1
    if claim.type == "absent":
        return n == 0
    if claim.type == "count":
        return n == claim.count
    first = [s for s in scene.shapes if (s.colour, s.kind) == (claim.colour, claim.shape)]
    second = [s for s in scene.shapes if (s.colour, s.kind) == (claim.other_colour, claim.other_shape)]
    if len(first) != 1 or len(second) != 1:
        return False
    a, b = first[0], second[0]
    return {"left of": a.cx < b.cx, "right of": a.cx > b.cx, "above": a.cy < b.cy, "below": a.cy > b.cy}[claim.relation]


@dataclass(frozen=True)
class DemoItem:
    """One generated item: the PNG, its caption, the true label and where it sits (slice, tags)."""

    id: str
    image: bytes
    caption: str
    label: str
    claim: Claim
    scene: Scene
    tags: tuple[str, ...] = field(default=())

    @property
    def slice(self) -> str:
        return self.claim.type

    def image_data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.image).decode("ascii")

    def to_input(self) -> dict[str, str]:
        """The item as trace-log / judge input: ``{"image": data URL, "caption": ...}``."""
        return {"image": self.image_data_url(), "caption": self.caption}


class SceneGenerator:
    """Generates demo items; item ``i`` depends only on ``(random_state, i)``.

    ``p_touching``, ``p_tiny`` and ``p_close_colour`` are the chances that a scene contains that
    difficulty. Captions are true half of the time.
    """

    def __init__(
        self,
        *,
        width: int = 160,
        height: int = 120,
        p_touching: float = 0.4,
        p_tiny: float = 0.25,
        p_close_colour: float = 0.25,
        random_state: int = 0,
    ):
        self.width = width
        self.height = height
        self.p_touching = p_touching
        self.p_tiny = p_tiny
        self.p_close_colour = p_close_colour
        self.random_state = random_state

    def generate(self, n: int, *, start: int = 0) -> list[DemoItem]:
        """Items ``start .. start+n-1``."""
        return [self.item(index) for index in range(start, start + n)]

    def item(self, index: int) -> DemoItem:
        rng = np.random.default_rng([self.random_state, index])
        while True:  # rejection: the scene must fit on the canvas and the caption must be decidable
            made = self._try_item(rng)
            if made is not None:
                break
        claim, scene, tags = made
        label = "yes" if claim_holds(claim, scene) else "no"
        return DemoItem(
            id=f"demo-{self.random_state}-{index}", image=scene.render(), caption=claim.sentence(),
            label=label, claim=claim, scene=scene, tags=tags,
        )

    # -- construction ------------------------------------------------------------------------------
    def _try_item(self, rng: np.random.Generator):
        kind = str(rng.choice(["count", "exists", "absent", "relation"], p=[0.3, 0.2, 0.2, 0.3]))
        want_true = bool(rng.random() < 0.5)
        combos = [(c, s) for c in COLOUR_NAMES for s in SHAPE_NAMES]
        order = rng.permutation(len(combos))
        target = combos[order[0]]
        other = combos[order[1]]
        tags: list[str] = []
        plan: list[tuple[str, str]] = []  # (colour, kind) of every shape to draw
        if kind == "count":
            k = int(rng.integers(1, 5))
            plan += [target] * k
            if want_true:
                claimed = k
            else:  # off by one, never claiming zero
                claimed = k + 1 if k == 1 else k + int(rng.choice([-1, 1]))
            claim = Claim("count", *target, count=claimed)
        elif kind in ("exists", "absent"):
            present = want_true if kind == "exists" else not want_true
            if present:
                plan += [target] * int(rng.integers(1, 3))
            # a near miss: the same shape in another colour, or the same colour in another shape
            if rng.random() < 0.6:
                plan.append((str(rng.choice([c for c in COLOUR_NAMES if c != target[0]])), target[1]))
            else:
                plan.append((target[0], str(rng.choice([s for s in SHAPE_NAMES if s != target[1]]))))
            claim = Claim(kind, *target)
        else:
            plan += [target, other]
            claim = None  # the relation is read off the placed scene
        reserved = {target, other} if kind == "relation" else {target}
        for _ in range(int(rng.integers(0, 4))):
            extra = combos[order[int(rng.integers(2, len(combos)))]]
            if extra not in reserved:
                plan.append(extra)
        plan = [plan[i] for i in rng.permutation(len(plan))]

        sizes = [float(rng.uniform(7, 15)) for _ in plan]
        # difficulties land on a shape the caption is about when there is one
        about = [i for i, combo in enumerate(plan) if combo in reserved] or list(range(len(plan)))
        if rng.random() < self.p_tiny:
            sizes[int(rng.choice(about))] = float(rng.uniform(1.5, 3.5))
            tags.append("tiny")
        paints = [PALETTE[c] for c, _ in plan]
        if rng.random() < self.p_close_colour:
            at = int(rng.choice(about))
            colour = plan[at][0]
            t = float(rng.uniform(0.25, 0.6))
            paints[at] = tuple(int(round((1 - t) * a + t * b)) for a, b in zip(PALETTE[colour], PALETTE[NEIGHBOUR[colour]]))
            tags.append("close_colour")
        touch_at = None
        if len(plan) >= 2 and rng.random() < self.p_touching:
            # half the time touch a shape of the same colour when there is one: the hardest case
            same = [i for i in range(1, len(plan)) if any(plan[j][0] == plan[i][0] for j in range(i))]
            touch_at = int(rng.choice(same)) if same and rng.random() < 0.5 else int(rng.integers(1, len(plan)))
            tags.append("touching")
        shapes = self._place(rng, plan, sizes, paints, touch_at)
        if shapes is None:
            return None
        scene = Scene(self.width, self.height, tuple(shapes))
        if claim is None:
            a = next(s for s in shapes if (s.colour, s.kind) == target)
            b = next(s for s in shapes if (s.colour, s.kind) == other)
            dx, dy = a.cx - b.cx, a.cy - b.cy
            relation = ("left of" if dx < 0 else "right of") if abs(dx) >= abs(dy) else ("above" if dy < 0 else "below")
            if not want_true:
                relation = OPPOSITE[relation]
            claim = Claim("relation", *target, relation=relation, other_colour=other[0], other_shape=other[1])
        return claim, scene, tuple(tags)

    def _place(self, rng, plan, sizes, paints, touch_at) -> list[Shape] | None:
        shapes: list[Shape] = []
        for i, ((colour, kind), r, rgb) in enumerate(zip(plan, sizes, paints)):
            anchor = None
            if i == touch_at:
                same = [s for s in shapes if s.colour == colour]
                anchor = same[int(rng.integers(0, len(same)))] if same else shapes[int(rng.integers(0, i))]
            for _ in range(200):
                if anchor is not None:
                    angle = float(rng.uniform(0, 2 * np.pi))
                    distance = anchor.r + r - float(rng.uniform(-1.0, 4.0))  # from a 1 px gap to a 4 px overlap
                    cx, cy = anchor.cx + distance * np.cos(angle), anchor.cy + distance * np.sin(angle)
                else:
                    cx, cy = float(rng.uniform(r + 2, self.width - r - 2)), float(rng.uniform(r + 2, self.height - r - 2))
                if not (r + 1 <= cx <= self.width - r - 1 and r + 1 <= cy <= self.height - r - 1):
                    continue
                # squares' and triangles' corners reach r*sqrt(2) from the centre: keep others well clear
                if all(np.hypot(cx - s.cx, cy - s.cy) >= (s.r + r) * 1.45 + 4 for s in shapes if s is not anchor):
                    shapes.append(Shape(kind, colour, round(cx, 1), round(cy, 1), round(r, 1), rgb))
                    break
            else:
                return None
        return shapes


def generate_items(n: int, *, random_state: int = 0, start: int = 0, **options) -> list[DemoItem]:
    """``n`` seeded demo items (see ``SceneGenerator`` for the options)."""
    return SceneGenerator(random_state=random_state, **options).generate(n, start=start)
