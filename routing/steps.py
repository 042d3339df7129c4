"""LABELSTEP: split a judge's reasoning into steps, in one pass or incrementally over a stream.

A step is a numbered item, a "Step k:" block, a bullet or a heading line (up to the next such
marker or blank line), otherwise one sentence of a paragraph. Abbreviations ("e.g.", "Dr."),
initials, decimals, URLs, inline code and fenced code blocks never end a step.

The parser reads the text once, left to right. Every decision at a position ``p`` depends only
on the text before ``p`` and a fixed look-ahead window ``text[p:p + LOOKAHEAD]``; a position is
decided only once its whole window has arrived (or the stream is closed). Hence feeding the text
in chunks of any size emits exactly the steps ``parse_steps`` finds on the whole text, and a step
is emitted only once it is complete.
"""

from __future__ import annotations

import re

__all__ = ["LOOKAHEAD", "StepParser", "parse_steps", "parse_step_spans"]

#: Characters after a candidate boundary that must be known before deciding it.
LOOKAHEAD = 32

# Tokens that end with a period without ending a sentence (compared lower-case, without the dot).
ABBREVIATIONS = frozenset(
    "e.g i.e eg ie cf vs viz al approx ca mr mrs ms dr prof sr jr st mt no nos fig figs eq eqs "
    "sec ch vol pp p ed eds inc ltd co corp dept est min max avg resp approx incl esp".split()
)

# A line that opens a new step: numbered item, "Step k:" block, bullet, heading, "(a)" item.
_MARKER = re.compile(
    r"[ \t]{0,8}(?:"
    r"\**(?:step|stage)[ \t]{0,2}\d{1,3}\**[ \t]{0,2}[:.)\-]"
    r"|\d{1,3}[.)](?=\s)"
    r"|[-*\u2022+](?=\s)"
    r"|#{1,6}(?=\s)"
    r"|\(?[a-zA-Z]\)(?=\s)"
    r")",
    re.IGNORECASE,
)
_BLANK_LINE = re.compile(r"[ \t]*\n")
# Sentence end: terminal punctuation, closing quotes/brackets/emphasis, whitespace, then a
# character that can start a sentence (checked separately for upper case).
_SENTENCE_END = re.compile(r"[.!?]*[\"'\u201d\u2019)\]*_]*(\s+)(\S)")
_SENTENCE_START = set("0123456789\"'\u201c\u2018([*#")
_SPECIAL = re.compile(r"[\n.!?`]")
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]?$")


def _is_abbreviation(token: str) -> bool:
    token = token.lstrip("(\"'[\u201c\u2018")
    if not token:
        return False
    if len(token) == 1 and token.isalpha():
        return True  # an initial ("J. Smith") or a list letter
    if _DOTTED.match(token):
        return True  # "e.g", "U.S", "a.m"
    return token.lower() in ABBREVIATIONS


class StepParser:
    """Incremental step parser: ``feed`` chunks as they stream, ``close`` at the end.

    ``feed(chunk)`` returns the steps completed by that chunk; ``close()`` returns the rest.
    ``spans`` lists the (start, end) character offsets of every emitted step in the text fed.
    """

    def __init__(self) -> None:
        self._text = ""
        self._pos = 0  # next position to examine
        self._step_start = 0
        self._started = False  # whether the virtual line start before offset 0 was examined
        self._in_fence = False
        self._in_inline = False
        self._in_block = False  # current step opened with a marker: sentences do not split it
        self._closed = False
        self.spans: list[tuple[int, int]] = []

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return self._text

    def feed(self, chunk: str) -> list[str]:
        """Add streamed text; return the steps it completed (possibly none)."""
        if self._closed:
            raise ValueError("feed() after close()")
        self._text += chunk
        return self._advance(final=False)

    def close(self) -> list[str]:
        """End of stream: return every remaining step (the last one included)."""
        if self._closed:
            return []
        steps = self._advance(final=True)
        self._emit(len(self._text), steps)
        self._closed = True
        return steps

    # -- scanning ---------------------------------------------------------------------------

    def _ready(self, p: int, final: bool) -> bool:
        return final or p + LOOKAHEAD <= len(self._text)

    def _advance(self, final: bool) -> list[str]:
        steps: list[str] = []
        text = self._text
        if not self._started:
            if not self._ready(0, final):
                return steps
            self._started = True
            self._in_block = bool(_MARKER.match(text, 0, LOOKAHEAD))
        while True:
            match = _SPECIAL.search(text, self._pos)
            if match is None:
                self._pos = len(text)
                return steps
            p = match.start()
            if not self._ready(p, final):
                self._pos = p
                return steps
            self._pos = self._examine(p, text[p], steps)

    def _examine(self, p: int, char: str, steps: list[str]) -> int:
        """Decide position ``p``; return the next position to examine."""
        text = self._text
        window_end = p + LOOKAHEAD
        if char == "`":
            line_begin = text.rfind("\n", 0, p) + 1
            if text.startswith("```", p) and not text[line_begin:p].strip(" \t"):
                self._in_fence = not self._in_fence
                return p + 3
            if not self._in_fence:
                self._in_inline = not self._in_inline
            return p + 1
        if self._in_fence:
            return p + 1
        if char == "\n":
            self._in_inline = False
            if _BLANK_LINE.match(text, p + 1, window_end):
                self._emit(p, steps)
                self._in_block = False
            elif _MARKER.match(text, p + 1, window_end):
                self._emit(p, steps)
                self._in_block = True
            return p + 1
        # '.', '!' or '?'
        if self._in_inline or self._in_block:
            return p + 1
        end = _SENTENCE_END.match(text, p, window_end)
        if end is None:
            return p + 1
        following = end.group(2)
        if not (following.isupper() or following in _SENTENCE_START):
            return p + 1
        if char == ".":
            token_start = max(text.rfind(" ", self._step_start, p), text.rfind("\n", self._step_start, p)) + 1
            if _is_abbreviation(text[max(token_start, self._step_start):p]):
                return p + 1
        self._emit(end.start(1), steps)
        self._in_block = False
        return end.start(1)

    def _emit(self, end: int, steps: list[str]) -> None:
        raw = self._text[self._step_start:end]
        stripped = raw.strip()
        if stripped:
            start = self._step_start + (len(raw) - len(raw.lstrip()))
            self.spans.append((start, start + len(stripped)))
            steps.append(stripped)
        self._step_start = end


def parse_steps(text: str) -> list[str]:
    """Split a whole reasoning text into steps (identical to streaming it through ``StepParser``)."""
    parser = StepParser()
    return parser.feed(text) + parser.close()


def parse_step_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each step of ``text``; ``text[s:e]`` is the step."""
    parser = StepParser()
    parser.feed(text)
    parser.close()
    return list(parser.spans)
