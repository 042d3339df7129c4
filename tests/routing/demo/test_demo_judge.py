import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from routing.demo import DemoJudge, DemoJudgeServer, generate_items
from routing.demo.accuracy import accuracy_report, judge_items, to_trace_records
from routing.demo.scenes import PALETTE, Scene, Shape
from routing.judges import JudgeRequestError, OpenAIJudge, parse_label
from routing.replay_server import Fault, ReplayServer

REPO = Path(__file__).resolve().parents[3]


def _scene(*shapes):
    return Scene(160, 120, tuple(Shape(kind, colour, x, y, r, PALETTE[colour]) for kind, colour, x, y, r in shapes)).render()


def test_reads_a_clean_scene_correctly_for_every_caption_type():
    image = _scene(("circle", "red", 30, 60, 12), ("square", "blue", 120, 60, 12), ("triangle", "green", 80, 25, 12))
    judge = DemoJudge()
    expected = {
        "There is one red circle.": "yes", "There are two red circles.": "no",
        "There is a green triangle.": "yes", "There is a green square.": "no",
        "There is no blue square.": "no", "There is no blue circle.": "yes",
        "The red circle is left of the blue square.": "yes", "The red circle is right of the blue square.": "no",
        "The green triangle is above the blue square.": "yes", "The green triangle is below the red circle.": "no",
    }
    for caption, label in expected.items():
        reply = judge.reason(image, caption)
        assert parse_label(reply, ["yes", "no"]) == label, (caption, reply)
        assert reply.startswith("1. ") and "\n2. " in reply and reply.endswith(f"Label: {label}")


def test_its_mistakes_come_from_the_pixels():
    judge = DemoJudge()
    # two red circles that touch become one region: the judge undercounts and says so
    touching = _scene(("circle", "red", 60, 60, 12), ("circle", "red", 83, 60, 12))
    reply = judge.reason(touching, "There are two red circles.")
    assert reply.endswith("Label: no") and "may be two touching shapes" in reply
    # a shape a few pixels wide is dismissed as noise
    tiny = _scene(("circle", "blue", 40, 40, 12), ("circle", "green", 120, 90, 1.5))
    reply = judge.reason(tiny, "There is a green circle.")
    assert reply.endswith("Label: no") and "speck" in reply
    # paint past the midpoint between red and orange reads as orange
    mixed = tuple(round(0.4 * a + 0.6 * b) for a, b in zip(PALETTE["red"], PALETTE["orange"]))
    close = Scene(160, 120, (Shape("square", "red", 80, 60, 14, mixed),)).render()
    reply = judge.reason(close, "There is a red square.")
    assert reply.endswith("Label: no") and "between orange and red" in reply


def test_accuracy_is_high_on_clean_items_and_lower_on_subtle_ones():
    report = accuracy_report(judge_items(generate_items(150, random_state=11)))
    assert 0.75 <= report["all"]["accuracy"] <= 0.95
    assert report["clean"]["accuracy"] >= 0.97
    assert report["hard"]["accuracy"] < report["clean"]["accuracy"] - 0.08


def test_end_to_end_through_the_sdk_with_streaming():
    items = generate_items(8, random_state=5)
    with DemoJudgeServer(tokens_per_second=0) as server:
        judge = OpenAIJudge(base_url=server.base_url, model="tracelab-demo-judge", timeout=10)
        for item in items:
            with judge.stream(item.to_input(), labels=["yes", "no"], kind="image_caption") as stream:
                text = "".join(stream)
            result = stream.result
            assert text == DemoJudge().reason(item.image, item.caption)
            assert result.label in ("yes", "no") and result.output_tokens_source == "usage"
        with pytest.raises(JudgeRequestError, match="needs exactly one data: URL image"):
            judge.complete({"text": "There is a red circle."}, labels=["yes", "no"])
        assert [m["id"] for m in httpx.get(f"{server.base_url}/models").json()["data"]] == ["tracelab-demo-judge"]


def test_demo_server_takes_faults_like_the_replay_server():
    item = generate_items(1, random_state=2)[0]
    with DemoJudgeServer(tokens_per_second=0, faults={"*": [Fault("rate_limit", retry_after=0.05)]}) as server:
        judge = OpenAIJudge(base_url=server.base_url, model="tracelab-demo-judge")
        assert judge.complete(item.to_input(), labels=["yes", "no"]).attempts == 2


def test_demo_traces_replay_through_the_replay_server(tmp_path):
    judged = judge_items(generate_items(5, random_state=4))
    records = to_trace_records(judged)
    with ReplayServer(records, tokens_per_second=0) as server:
        judge = OpenAIJudge(base_url=server.base_url, model="tracelab-demo-judge")
        for record in records:
            # found by content (the image data URL and the caption), without an id
            result = judge.complete(record.input, labels=record.labels)
            assert result.text == record.judge_reasoning and result.label == record.judge_label


def test_command_line_reports_accuracy():
    done = subprocess.run([sys.executable, "-m", "routing.demo", "accuracy", "--n", "40", "--seed", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["items"] == 40 and 0 < report["accuracy"]["all"]["accuracy"] <= 1
