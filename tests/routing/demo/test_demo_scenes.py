import io

import numpy as np
from PIL import Image

from routing.demo import SceneGenerator, generate_items, parse_caption
from routing.demo.captions import Claim
from routing.demo.scenes import PALETTE, Scene, Shape, claim_holds


def test_items_are_deterministic_per_seed_and_index():
    first = generate_items(12, random_state=7)
    again = generate_items(12, random_state=7)
    assert [(i.id, i.caption, i.label, i.image) for i in first] == [(i.id, i.caption, i.label, i.image) for i in again]
    assert SceneGenerator(random_state=7).item(9).image == first[9].image  # independent of how many are made
    other = generate_items(12, random_state=8)
    assert [i.image for i in other] != [i.image for i in first]


def test_captions_parse_back_and_labels_follow_the_scene():
    items = generate_items(120, random_state=0)
    assert {i.label for i in items} == {"yes", "no"}
    assert {i.slice for i in items} == {"count", "exists", "absent", "relation"}
    assert {"touching", "tiny", "close_colour"} <= {tag for i in items for tag in i.tags}
    share_yes = np.mean([i.label == "yes" for i in items])
    assert 0.35 < share_yes < 0.65
    for item in items:
        assert parse_caption(item.caption) == item.claim
        assert item.label == ("yes" if claim_holds(item.claim, item.scene) else "no")


def test_images_are_pngs_of_the_scene():
    item = generate_items(1, random_state=3)[0]
    image = Image.open(io.BytesIO(item.image))
    assert image.format == "PNG" and image.size == (160, 120)
    assert item.to_input()["image"].startswith("data:image/png;base64,")
    pixels = np.asarray(image.convert("RGB"))
    for shape in item.scene.shapes:
        if shape.r >= 4 and shape.rgb in {tuple(v) for v in PALETTE.values()}:
            assert (pixels == shape.rgb).all(axis=2).any()


def test_claim_truth_for_each_caption_type():
    scene = Scene(160, 120, (
        Shape("circle", "red", 30, 60, 10, PALETTE["red"]),
        Shape("circle", "red", 130, 60, 10, PALETTE["red"]),
        Shape("square", "blue", 80, 20, 10, PALETTE["blue"]),
    ))
    assert claim_holds(Claim("count", "red", "circle", count=2), scene)
    assert not claim_holds(Claim("count", "red", "circle", count=3), scene)
    assert claim_holds(Claim("absent", "blue", "circle"), scene)
    assert claim_holds(Claim("exists", "blue", "square"), scene)
    # "the red circle" is not unique: a relation about it is not true
    assert not claim_holds(Claim("relation", "red", "circle", relation="left of", other_colour="blue", other_shape="square"), scene)


def test_parse_caption_grammar():
    assert parse_caption("There are 3 red circles") == Claim("count", "red", "circle", count=3)
    assert parse_caption("the Blue square is to the left of the red triangle.") == Claim(
        "relation", "blue", "square", relation="left of", other_colour="red", other_shape="triangle")
    assert parse_caption("There is an orange triangle.") == Claim("exists", "orange", "triangle")
    assert parse_caption("A cat on a mat.") is None
