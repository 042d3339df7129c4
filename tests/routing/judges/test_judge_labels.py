import pytest

from routing.judges import estimate_tokens, is_label_line, parse_label, split_tokens

YES_NO = ["yes", "no"]
PAIR = ["output_1", "output_2"]


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("1. The caption says two circles.\n2. I see two.\nLabel: yes", YES_NO, "yes"),
        ("Label: **No.**", YES_NO, "no"),
        ("**Label:** yes", YES_NO, "yes"),
        ("label : NO", YES_NO, "no"),
        ("Final answer: Output_1", PAIR, "output_1"),
        ("Label: output 2", PAIR, "output_2"),
        ("Verdict: `output-1`", PAIR, "output_1"),
        ('Label: "yes", the caption fits', YES_NO, "yes"),
        ("Label: yes\n...\nLabel: no", YES_NO, "no"),  # the last label line wins
        ("yes", YES_NO, "yes"),  # a bare label is a valid reply
        ("Label: card", ["card", "card arrival"], "card"),
        ("Label: card arrival", ["card", "card arrival"], "card arrival"),
    ],
)
def test_parse_label_finds_the_final_label(text, labels, expected):
    assert parse_label(text, labels) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Label: <label>",  # the template placeholder, copied
        "Label: yes/no",
        "Label: yes or no",
        "Label: maybe",
        "Label:",
        "The answer is yes.",  # no label line: never guessed from the body
        "1. There are two circles.\n2. So the caption is right.",
        "",
    ],
)
def test_parse_label_refuses_to_guess(text):
    assert parse_label(text, YES_NO) is None


def test_parse_label_needs_a_label_set():
    with pytest.raises(ValueError):
        parse_label("Label: yes", [])


def test_token_pieces_rebuild_the_text_and_count_prose_plausibly():
    text = "1. The red circle is left of the blue square.\n2. Internationalization_costs 12345 tokens!\n"
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert estimate_tokens(text) == len(pieces)
    prose = "The quick brown fox jumps over the lazy dog. " * 20
    assert 3.5 <= len(prose) / estimate_tokens(prose) <= 5.0  # GPT tokenizers: ~4.5 chars/token here


def test_a_prefix_cut_at_a_piece_boundary_counts_the_pieces_sent():
    text = "Output (a) correctly adds the ones digits, carrying the one."
    pieces = split_tokens(text)
    for k in range(len(pieces) + 1):
        assert estimate_tokens("".join(pieces[:k])) == k


def test_label_lines_are_told_apart_from_reasoning_steps():
    assert is_label_line("Label: output_1") and is_label_line("  **Label:** yes\n")
    assert not is_label_line("3. The label of the first output is wrong.")
    assert not is_label_line("2. So the caption is accurate.\nLabel: yes")
