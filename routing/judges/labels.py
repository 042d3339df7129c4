"""Find the judge's label in its reply, or report that there is none (never guess)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_LABEL_LINE = re.compile(
    r"^[\s>*#_`-]*(?:final\s+)?(?:label|answer|verdict|decision)[\s*_`]*[:=：][\s*_`]*(?P<value>.*?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_EDGE = re.compile(r"^[\s\"'`*_<\[(.,;:!]+|[\s\"'`*_>\]).,;:!]+$")
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_label(text: str) -> str:
    """Lower case, markdown/quotes/brackets/punctuation stripped at the ends, ``_ -`` and spaces unified."""
    return _SEPARATORS.sub(" ", _EDGE.sub("", text)).strip().lower()


def _match(candidate: str, labels: Sequence[str]) -> str | None:
    value = normalize_label(candidate)
    if not value:
        return None
    by_norm = {normalize_label(label): label for label in labels}
    if value in by_norm:
        return by_norm[value]
    # "yes, the caption fits" / "no (the count is wrong)": a label as the leading phrase
    leading = [norm for norm in by_norm if re.match(rf"{re.escape(norm)}(?!\w)(?!\s*(?:/|\||or\b))", value)]
    if not leading:
        return None
    longest = max(leading, key=len)
    if all(longest.startswith(other) for other in leading):
        return by_norm[longest]
    return None


def is_label_line(text: str) -> bool:
    """Whether ``text`` (e.g. one parsed step) is only a ``Label: ...`` verdict line, not reasoning.

    The replay server appends such a line to logged reasoning, so a live stream has one more step
    than the offline trace; the pipeline can skip routing on it.
    """
    stripped = text.strip()
    return bool(stripped) and "\n" not in stripped and _LABEL_LINE.fullmatch(stripped) is not None


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label the reply ends with, or None when it has no valid, unambiguous label.

    Reads the last ``Label: <label>`` line (also ``Answer:``/``Verdict:``/``Final label:``, markdown
    allowed); a reply that is nothing but a label also counts. Case, quotes, brackets and trailing
    punctuation are ignored; ``_``, ``-`` and spaces are interchangeable. A placeholder such as
    ``Label: <label>`` or an ambiguous value such as ``yes/no`` gives None.
    """
    if not labels:
        raise ValueError("parse_label needs a non-empty label set")
    lines = list(_LABEL_LINE.finditer(text))
    if lines:
        return _match(lines[-1].group("value"), labels)
    stripped = text.strip()
    if "\n" not in stripped and len(stripped) <= max(len(label) for label in labels) + 4:
        return _match(stripped, labels)
    return None
