import base64
import io

import pytest
from PIL import Image

from routing.judges import JudgeInputError, build_messages, infer_kind


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_caption_item_sends_the_image_as_a_data_url_part(tmp_path):
    path = tmp_path / "scene.png"
    path.write_bytes(_png())
    for image in (_png(), str(path), "scene.png"):
        messages = build_messages({"image": image, "caption": "A red square."}, labels=["yes", "no"], image_root=tmp_path)
        system, user = messages
        assert "Label: <label>" in system["content"] and "numbered steps" in system["content"]
        parts = user["content"]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert len(urls) == 1 and urls[0].startswith("data:image/png;base64,")
        assert base64.b64decode(urls[0].split(",", 1)[1]) == _png()
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        assert "Caption: A red square." in text and "accurately describe the image" in text


def test_http_image_urls_pass_through_untouched():
    messages = build_messages({"image": "https://example.org/a.jpg", "caption": "x"}, labels=["yes", "no"])
    assert messages[1]["content"][2]["image_url"]["url"] == "https://example.org/a.jpg"


def test_text_items_are_plain_text_with_their_fields_and_the_label_set():
    item = {"instruction": "Add 2+2.", "output_1": "4", "output_2": "5"}
    assert infer_kind(item) == "pairwise"
    user = build_messages(item, labels=["output_1", "output_2"])[1]["content"]
    assert isinstance(user, str)
    assert user.index("Add 2+2.") < user.index("[output_1]") < user.index("[output_2]")
    assert "Possible labels: output_1, output_2" in user
    assert infer_kind({"text": "where is my card?"}) == "text_classification"


def test_project_instructions_replace_the_default_question():
    user = build_messages({"text": "hi"}, labels=["a", "b"], instructions="Is this a greeting?")[1]["content"]
    assert user.startswith("Is this a greeting?")


@pytest.mark.parametrize(
    ("item", "kwargs"),
    [
        ({"image": b"not an image", "caption": "x"}, {}),
        ({"image": "/nonexistent/x.png", "caption": "x"}, {}),
        ({"text": "x"}, {"kind": "poem"}),
        ({"caption": "x"}, {"kind": "image_caption"}),
        ({}, {}),
    ],
)
def test_unsendable_items_fail_clearly(item, kwargs):
    with pytest.raises(JudgeInputError):
        build_messages(item, labels=["yes", "no"], **kwargs)
