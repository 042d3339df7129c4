"""The caption grammar of the demo: claims about shapes, rendered as sentences and parsed back.

    There is a red circle.                    (exists)
    There is one red circle. / There are three red circles.   (count)
    There is no red circle.                   (absent)
    The red circle is left of the blue square.  (relation: left of, right of, above, below)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

COLOUR_NAMES = ("red", "orange", "yellow", "green", "blue", "purple")
SHAPE_NAMES = ("circle", "square", "triangle")
RELATIONS = ("left of", "right of", "above", "below")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

ClaimType = Literal["exists", "count", "absent", "relation"]


@dataclass(frozen=True)
class Claim:
    """What a caption asserts."""

    type: ClaimType
    colour: str
    shape: str
    count: int | None = None
    relation: str | None = None
    other_colour: str | None = None
    other_shape: str | None = None

    def sentence(self) -> str:
        """The caption for this claim."""
        thing = f"{self.colour} {self.shape}"
        if self.type == "exists":
            return f"There is a {thing}."
        if self.type == "absent":
            return f"There is no {thing}."
        if self.type == "count":
            if self.count == 1:
                return f"There is one {thing}."
            return f"There are {NUMBER_WORDS[self.count]} {thing}s."
        return f"The {thing} is {self.relation} the {self.other_colour} {self.other_shape}."


_COLOUR = "|".join(COLOUR_NAMES)
_SHAPE = "|".join(SHAPE_NAMES)
_NUMBER = "|".join(NUMBER_WORDS[1:]) + r"|\d+"
_PATTERNS = [
    ("absent", re.compile(rf"there (?:is|are) no (?P<c>{_COLOUR}) (?P<s>{_SHAPE})s?")),
    ("exists", re.compile(rf"there is an? (?P<c>{_COLOUR}) (?P<s>{_SHAPE})")),
    ("count", re.compile(rf"there (?:is|are) (?P<n>{_NUMBER}) (?P<c>{_COLOUR}) (?P<s>{_SHAPE})s?")),
    ("relation", re.compile(
        rf"the (?P<c>{_COLOUR}) (?P<s>{_SHAPE}) is (?:to the )?(?P<r>left of|right of|above|below) "
        rf"the (?P<c2>{_COLOUR}) (?P<s2>{_SHAPE})"
    )),
]


def parse_caption(text: str) -> Claim | None:
    """The claim of a caption in the demo grammar, or None if it is not one."""
    sentence = " ".join(text.lower().replace("colour", "color").split()).rstrip(". ")
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(sentence)
        if match is None:
            continue
        if kind == "count":
            word = match["n"]
            count = int(word) if word.isdigit() else NUMBER_WORDS.index(word)
            return Claim("count", match["c"], match["s"], count=count)
        if kind == "relation":
            return Claim("relation", match["c"], match["s"], relation=match["r"],
                         other_colour=match["c2"], other_shape=match["s2"])
        return Claim(kind, match["c"], match["s"])
    return None
