"""LABELSTEP: whole-text parsing, and streaming in any chunking gives the same steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.steps import LOOKAHEAD, StepParser, parse_step_spans, parse_steps

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# Fragments chosen to hit every rule: sentence ends, abbreviations, decimals, URLs, markers,
# blank lines, fences and inline code, plus plain filler.
FRAGMENTS = [
    "Output (a) is better. ", "It says 3.14 here. ", "See e.g. the list. ", "Dr. Smith agrees! ",
    "Is it right? ", "Visit https://example.com/a.b?x=1. ", "Mr. J. R. Tolkien. ", "i.e. not this. ",
    "\n", "\n\n", "\n1. First item. Still item.", "\n2) Second.", "\nStep 3: check it. Again.",
    "\n- bullet. ", "\n* star ", "\n# Heading\n", "```\ncode. Not. Split.\n```\n", "`x. Y` ",
    "word ", "Word", ". ", "...", "\"Quoted.\" ", "(b). ", "  ", "\t", "v1.2.3 ", "approx. five. ",
    "\u2022 dot bullet\n", "**Step 4:** bold. ", "A. ", "ok", "?", "!", "`", "```",
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join) | st.text(
    alphabet=st.sampled_from(list("aA1. \n`!?-*#()S:tep")), max_size=200
)


def stream(text: str, cuts: list[int]) -> list[str]:
    parser = StepParser()
    out: list[str] = []
    last = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(text))):
        out += parser.feed(text[last:cut])
        last = cut
    out += parser.feed(text[last:])
    return out + parser.close()


@settings(max_examples=400, deadline=None)
@given(text=texts, data=st.data())
def test_any_chunking_emits_the_same_steps_as_the_whole_text(text, data):
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=max(len(text), 1)), max_size=30))
    assert stream(text, cuts) == parse_steps(text)


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_char_by_char_streaming_matches_and_loses_no_text(text):
    parser = StepParser()
    steps = [s for ch in text for s in parser.feed(ch)] + parser.close()
    assert steps == parse_steps(text)
    assert re.sub(r"\s", "", "".join(steps)) == re.sub(r"\s", "", text)
    assert all(step == step.strip() and step for step in steps)
    assert [text[s:e] for s, e in parse_step_spans(text)] == steps


def test_sentences_split_but_abbreviations_decimals_and_urls_do_not():
    text = (
        "Output (a) is correct, e.g. it adds 3.5 and 1.25 properly. See https://example.com/x.html?a=1 "
        "for details. Dr. Smith and J. Doe agree! Is (b) wrong? Yes."
    )
    assert parse_steps(text) == [
        "Output (a) is correct, e.g. it adds 3.5 and 1.25 properly.",
        "See https://example.com/x.html?a=1 for details.",
        "Dr. Smith and J. Doe agree!",
        "Is (b) wrong?",
        "Yes.",
    ]


def test_markers_blocks_and_paragraphs():
    text = (
        "Let me compare.\nStep 1: Read (a). It is short.\nStep 2: Read (b).\n\n"
        "1. Accuracy. Both fine.\n2) Style\n- a bullet\n\u2022 another\n\nTherefore, Output (b) is better."
    )
    assert parse_steps(text) == [
        "Let me compare.",
        "Step 1: Read (a). It is short.",
        "Step 2: Read (b).",
        "1. Accuracy. Both fine.",
        "2) Style",
        "- a bullet",
        "\u2022 another",
        "Therefore, Output (b) is better.",
    ]


def test_code_blocks_never_split():
    text = "The code is:\n```python\nx = 1. Y = 2\n\n1. not a step\n```\nIt works. Done."
    steps = parse_steps(text)
    assert steps[0] == "The code is:\n```python\nx = 1. Y = 2\n\n1. not a step\n```\nIt works."
    assert steps[1:] == ["Done."]
    assert parse_steps("Use `a. B` inline. Next.") == ["Use `a. B` inline.", "Next."]


def test_a_step_is_emitted_only_once_complete():
    parser = StepParser()
    assert parser.feed("First sentence. Second sent") == []  # look-ahead not yet arrived
    assert parser.feed("ence is longer than the look-ahead window. Third") == ["First sentence."]
    assert parser.feed(" " * LOOKAHEAD) == ["Second sentence is longer than the look-ahead window."]
    assert parser.close() == ["Third"]
    assert parser.close() == []
    with pytest.raises(ValueError):
        parser.feed("more")


def test_empty_and_whitespace_text_have_no_steps():
    assert parse_steps("") == []
    assert parse_steps(" \n\n\t ") == []


@pytest.mark.shared_data
def test_real_rationales_stream_identically_in_token_sized_chunks():
    path = DATA / "llmbar" / "llama2.jsonl"
    if not path.exists():
        pytest.skip("shared data not available")
    with open(path, encoding="utf-8") as handle:
        reasonings = [json.loads(line)["judge"]["reasoning"] for _, line in zip(range(200), handle)]
    for i, text in enumerate(reasonings):
        cuts = list(range(0, len(text), 3 + i % 5))
        steps = stream(text, cuts)
        assert steps == parse_steps(text)
        assert len(steps) >= 1
