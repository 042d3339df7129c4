"""The demo judge: reads an image–caption item from the pixels only and reasons in numbered steps.

A stand-in for a vision-language model so the demo runs offline: it segments the image
(``routing.demo.vision``), parses the caption with the demo grammar, checks the claim against what it
found and ends with ``Label: yes|no``. It never sees the generator's truth, so its mistakes are its
own: merged touching shapes, missed tiny shapes, confused close colours, shifted centroids.
"""

from __future__ import annotations

from routing.demo.captions import NUMBER_WORDS, Claim, parse_caption
from routing.demo.vision import Region, decode_image, find_regions

MODEL_NAME = "tracelab-demo-judge"


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def _plural(n: int, word: str) -> str:
    return f"{_number(n)} {word}{'' if n == 1 else 's'}"


class DemoJudge:
    """Labels demo items from pixels. ``min_area``: regions smaller than this are treated as noise."""

    def __init__(self, *, min_area: int = 20, background_threshold: float = 60.0):
        self.min_area = min_area
        self.background_threshold = background_threshold

    def reason(self, image: bytes, caption: str) -> str:
        """The full reply: numbered reasoning steps, then ``Label: yes`` or ``Label: no``."""
        steps: list[str] = []
        pixels = decode_image(image)
        height, width = pixels.shape[:2]
        regions, specks = find_regions(pixels, min_area=self.min_area, background_threshold=self.background_threshold)
        steps.append(f"The image is {width}x{height} pixels on a plain light background.")
        found = f"I find {_plural(len(regions), 'coloured region')}."
        if specks:
            found += f" I ignore {_plural(specks, 'speck')} smaller than {self.min_area} pixels as noise."
        steps.append(found)
        for number, region in enumerate(regions, start=1):
            steps.append(self._describe(number, region))
        claim = parse_caption(caption)
        if claim is None:
            steps.append(f'I cannot read the caption "{caption.strip()}" as a claim about shapes, so I cannot confirm it.')
            return self._reply(steps, "no")
        steps.append(f"The caption claims: {claim.sentence()}")
        verdict = self._check(claim, regions, steps)
        steps.append("So the caption is accurate." if verdict else "So the caption is not accurate.")
        return self._reply(steps, "yes" if verdict else "no")

    @staticmethod
    def _reply(steps: list[str], label: str) -> str:
        return "\n".join(f"{k}. {step}" for k, step in enumerate(steps, start=1)) + f"\nLabel: {label}"

    @staticmethod
    def _describe(number: int, region: Region) -> str:
        article = "an" if region.colour[0] in "aeiou" else "a"
        text = (f"Region {number} is {article} {region.colour} {region.shape}: {region.area} pixels filling "
                f"{region.fill:.2f} of its {region.width}x{region.height} box, centred at ({region.cx:.0f}, {region.cy:.0f}).")
        if region.elongated:
            text += " It is unusually elongated; it may be two touching shapes."
        if region.colour_ambiguity > 0.6:
            text += f" Its colour {region.rgb} lies between {region.colour} and {region.runner_up}; it is closer to {region.colour}."
        return text

    @staticmethod
    def _check(claim: Claim, regions: list[Region], steps: list[str]) -> bool:
        def matching(colour: str, shape: str) -> list[int]:
            return [i for i, r in enumerate(regions, start=1) if (r.colour, r.shape) == (colour, shape)]

        found = matching(claim.colour, claim.shape)
        thing = f"{claim.colour} {claim.shape}"
        where = f" (region{'s' if len(found) > 1 else ''} {', '.join(map(str, found))})" if found else ""
        if claim.type in ("exists", "absent", "count"):
            steps.append(f"I count {_plural(len(found), thing)}{where}.")
            if claim.type == "exists":
                return len(found) >= 1
            if claim.type == "absent":
                return not found
            if len(found) != claim.count:
                steps.append(f"{_number(len(found)).capitalize()} is not {_number(claim.count)}.")
            return len(found) == claim.count
        other = matching(claim.other_colour, claim.other_shape)
        other_thing = f"{claim.other_colour} {claim.other_shape}"
        if not found or not other:
            missing = thing if not found else other_thing
            steps.append(f"I see no {missing}, so the relation cannot hold.")
            return False
        a, b = (max((regions[i - 1] for i in ids), key=lambda r: r.area) for ids in (found, other))
        if len(found) > 1 or len(other) > 1:
            steps.append("One of the objects appears more than once; I use the largest region of each.")
        if claim.relation in ("left of", "right of"):
            steps.append(f"The {thing} is at x={a.cx:.0f} and the {other_thing} at x={b.cx:.0f}.")
            holds = a.cx < b.cx if claim.relation == "left of" else a.cx > b.cx
        else:
            steps.append(f"The {thing} is at y={a.cy:.0f} and the {other_thing} at y={b.cy:.0f} (y grows downwards).")
            holds = a.cy < b.cy if claim.relation == "above" else a.cy > b.cy
        steps.append(f"So the {thing} is {'' if holds else 'not '}{claim.relation} the {other_thing}.")
        return holds
