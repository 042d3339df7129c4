"""Imports: every format, every kind of bad input, all-or-nothing, and export → import round trips."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from PIL import Image

from labeling.models import HumanLabel, ImportJob, Item, JudgeRun
from labeling.services.exports import export_stream
from tests.conftest import shared_data
from tests.labeling.factories import jsonl, make_project, png_bytes, run_import

pytestmark = pytest.mark.django_db


def errors_of(job: ImportJob) -> list[tuple[int, str, str]]:
    return [(e["line"], e["field"], e["message"]) for e in job.errors]


# ---------------------------------------------------------------- formats that must be accepted


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["export-JSON.json", "export-JSON_MIN.json", "export-CSV.csv"])
def test_genuine_label_studio_exports_import_with_their_human_labels(name):
    project = make_project(kind="image_caption")
    job = run_import(project, shared_data("label-studio", name).read_bytes(), name)
    assert job.status == "succeeded", job.errors
    items = {i.external_id: i for i in Item.objects.filter(project=project)}
    assert set(items) == {"item-1", "item-2", "item-3"}
    assert items["item-1"].fields["caption"] == "two red circles left of a blue square"
    assert [items[k].final_label for k in ("item-1", "item-2", "item-3")] == ["no", "no", "yes"]
    assert all(i.final_source == "human" and i.state == "human_labeled" for i in items.values())
    assert "fit" not in items["item-1"].fields  # the choice column is a label, not an item field
    lead = HumanLabel.objects.get(item=items["item-2"]).lead_time_seconds
    assert lead == pytest.approx(7.9)


def test_label_studio_tasks_with_predictions_become_judge_runs():
    project = make_project(kind="image_caption")
    tasks = [{"data": {"image": png_data_uri(), "caption": "a red square", "external_id": "t1"},
              "predictions": [{"model_version": "gpt-4o-mini/prompt-v3", "score": 0.82,
                               "result": [{"from_name": "fit", "to_name": "caption", "type": "choices",
                                           "value": {"choices": ["yes"]}}]}]}]
    job = run_import(project, json.dumps(tasks, indent=1).encode(), "tasks.json")
    assert job.status == "succeeded", job.errors
    item = Item.objects.get(project=project)
    run = JudgeRun.objects.get(item=item)
    assert (run.label, run.score, run.model, run.status) == ("yes", 0.82, "gpt-4o-mini/prompt-v3", "imported")
    assert item.state == "pending" and item.image.name.endswith(".png")


@pytest.mark.shared_data
def test_trace_log_v1_imports_as_labelled_history():
    project = make_project(kind="pairwise", labels=("output_1", "output_2"))
    job = run_import(project, shared_data("llmbar", "gpt-4.jsonl").read_bytes(), "gpt-4.jsonl")
    assert job.status == "succeeded", job.errors[:3]
    assert job.rows_imported == Item.objects.filter(project=project).count() == 1468
    assert JudgeRun.objects.filter(item__project=project).count() == 1468
    item = Item.objects.get(project=project, external_id="casestudy-base-10-0-gpt-4-noswap")
    assert item.meta["group"] and item.meta["slice"]
    assert item.judge_runs.get().raw_reasoning.startswith("Output (a) correctly adds")


def test_plain_jsonl_and_csv_items_import_pending():
    project = make_project(kind="text")
    job = run_import(project, jsonl([{"external_id": "a", "text": "hello"}, {"id": 7, "text": "bye"}]), "x.jsonl")
    assert job.status == "succeeded", job.errors
    job = run_import(project, b"external_id,text\nc,\"quoted, text\"\n", "x.csv")
    assert job.status == "succeeded", job.errors
    assert sorted(Item.objects.filter(project=project).values_list("external_id", "state")) == [
        ("7", "pending"), ("a", "pending"), ("c", "pending")]
    assert Item.objects.get(external_id="c").fields == {"text": "quoted, text"}


def test_format_is_detected_from_content_when_the_name_says_nothing():
    project = make_project(kind="text")
    assert run_import(project, jsonl([{"text": "a"}]), "upload").status == "succeeded"
    assert run_import(project, b'[{"data": {"text": "b"}}]', "upload").status == "succeeded"
    assert run_import(project, b"text\nc\n", "upload").status == "succeeded"
    assert Item.objects.filter(project=project).count() == 3


def test_zip_with_images_imports_and_stores_each_image_once():
    project = make_project(kind="image_caption")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("items.jsonl", jsonl([{"external_id": f"z{k}", "image": "img/a.png", "caption": "red"}
                                          for k in range(3)]))
        zf.writestr("img/a.png", png_bytes())
    job = run_import(project, archive.getvalue(), "batch.zip")
    assert job.status == "succeeded", job.errors
    names = set(Item.objects.filter(project=project).values_list("image", flat=True))
    assert len(names) == 1 and next(iter(names)).endswith(".png")


# ---------------------------------------------------------------- bad input: precise errors, nothing half-imported


def png_data_uri(content: bytes | None = None) -> str:
    return "data:image/png;base64," + base64.b64encode(content or png_bytes()).decode()


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([{"external_id": "a", "text": "x", "label": "maybe"}], (1, "label", "unknown label 'maybe'")),
        ([{"external_id": "a"}], (1, "text", "is required for text items")),
        ([{"external_id": "a", "text": ["x"]}], (1, "text", "must be a string or a number, got a list")),
        ([{"external_id": "a", "text": "  "}], (1, "text", "must not be empty")),
        ([{"external_id": "a", "text": "x"}, {"external_id": "a", "text": "y"}],
         (2, "external_id", "duplicate external id 'a' (first on line 2)")),
        (["just a string"], (1, "<record>", "must be a JSON object")),
        ([{"id": "t", "input": {"text": "x"}, "judge": {"label": 3}}], (1, "judge.label", "must be a string or null")),
        # JSON's \u0000: PostgreSQL stores no NUL in text or JSON; the place is named, the error is storable
        ([{"external_id": "a", "text": "x\x00y"}], (1, "text", "contains a NUL character")),
        ([{"id": "t", "input": {"text": "x"}, "judge": {"label": "yes", "reasoning": "1. \x00"}}],
         (1, "judge.reasoning", "contains a NUL character")),
        ([{"external_id": "a", "text": "x", "col\x00": "v"}], (1, "col\\u0000", "contains a NUL character")),
    ],
)
def test_bad_rows_fail_the_whole_file_with_line_field_and_reason(rows, expected):
    project = make_project(kind="text")
    good = {"external_id": "good", "text": "fine"}
    job = run_import(project, jsonl([good, *rows]), "bad.jsonl")
    assert job.status == "failed"
    line, field, message = expected
    assert any(e == (line + 1, field, e[2]) and message in e[2] for e in errors_of(job)), errors_of(job)
    assert Item.objects.filter(project=project).count() == 0  # never a partial import


def test_on_error_skip_imports_the_good_rows_and_lists_the_rest():
    project = make_project(kind="text")
    content = jsonl([{"external_id": "a", "text": "ok"}, {"external_id": "b"}]) + b"{truncated\n" + jsonl(
        [{"external_id": "c", "text": "ok"}])
    job = run_import(project, content, "mixed.jsonl", on_error="skip")
    assert job.status == "succeeded"
    assert (job.rows_total, job.rows_imported, job.rows_failed) == (4, 2, 2)
    assert [(e[0], e[1]) for e in errors_of(job)] == [(2, "text"), (3, "<line>")]
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["a", "c"]


def test_external_ids_already_in_the_project_are_refused():
    project = make_project(kind="text")
    run_import(project, jsonl([{"external_id": "a", "text": "x"}]), "one.jsonl")
    job = run_import(project, jsonl([{"external_id": "b", "text": "x"}, {"external_id": "a", "text": "y"}]), "two.jsonl")
    assert job.status == "failed"
    assert errors_of(job) == [(2, "external_id", "external id 'a' already exists in this project")]
    assert Item.objects.filter(project=project).count() == 1


def test_non_utf8_truncated_and_unsupported_files_get_precise_messages():
    project = make_project(kind="text")
    job = run_import(project, b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "latin1.jsonl")
    assert errors_of(job) == [(2, "<line>", "is not valid UTF-8 (byte 13 of the line)")]
    job = run_import(project, b'[{"data": {"text": "a"}},\n {"data": {"text": "b"', "cut.json")
    assert job.status == "failed" and "truncated JSON" in job.errors[0]["message"] and job.errors[0]["line"] == 2
    job = run_import(project, b"\x00\x01\x02binary", "blob.bin")
    assert job.status == "failed" and "unsupported format" in job.errors[0]["message"]
    job = run_import(project, b"text,text\na,b\n", "dup.csv")
    assert errors_of(job) == [(1, "<file>", "the CSV header repeats column(s) ['text']")]
    job = run_import(project, b"text,other\na\n", "short.csv")
    assert errors_of(job) == [(2, "<line>", "has 1 columns; the header has 2")]
    job = run_import(project, b"", "empty.jsonl")
    assert job.status == "failed" and job.errors[0]["message"] == "the file holds no items"
    assert Item.objects.count() == 0


def test_images_that_are_not_images_or_too_large_are_rejected(settings):
    settings.TRACELAB_MAX_IMAGE_PIXELS = 10_000
    project = make_project(kind="image_caption")
    fake = "data:image/png;base64," + base64.b64encode(b"<svg onload=alert(1)>").decode()
    truncated = png_data_uri(png_bytes(size=(64, 64))[:60])
    huge = png_data_uri(png_bytes(size=(200, 200)))
    gif_polyglot = png_data_uri(b"GIF89a" + b"\x00" * 20 + b"<?php echo 1; ?>")
    rows = [{"external_id": k, "image": v, "caption": "c"}
            for k, v in [("fake", fake), ("cut", truncated), ("huge", huge), ("poly", gif_polyglot),
                         ("path", "a.png"), ("b64", "data:image/png;base64,@@@")]]
    job = run_import(project, jsonl(rows), "imgs.jsonl")
    messages = {e["line"]: e["message"] for e in job.errors}
    assert messages[1] == "not an image (the content is not a recognised image format)"
    assert "damaged or truncated" in messages[2] or "not an image" in messages[2]
    assert messages[3].startswith("image has too many pixels: 200×200 = 40,000 (limit 10,000)")
    assert "damaged or truncated" in messages[4] or "not an image" in messages[4]
    assert "upload a zip" in messages[5]
    assert messages[6] == "the data URI is not valid base64"
    assert all(e["field"] == "image" for e in job.errors)
    assert Item.objects.count() == 0


def test_decompression_bomb_is_rejected_before_decoding(settings):
    settings.TRACELAB_MAX_IMAGE_PIXELS = 1_000_000
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")  # 400 Mpx, a few KB compressed
    assert len(buffer.getvalue()) < 200_000
    project = make_project(kind="image_caption")
    job = run_import(project, jsonl([{"external_id": "bomb", "image": png_data_uri(buffer.getvalue()),
                                      "caption": "c"}]), "bomb.jsonl")
    assert job.status == "failed"
    assert "too many pixels" in job.errors[0]["message"] or "decompression bomb" in job.errors[0]["message"]


def test_image_bytes_over_the_cap_are_refused(settings):
    settings.TRACELAB_MAX_IMAGE_BYTES = 100
    project = make_project(kind="image_caption")
    job = run_import(project, jsonl([{"external_id": "big", "image": png_data_uri(png_bytes(size=(64, 64))),
                                      "caption": "c"}]), "big.jsonl")
    assert job.errors[0]["field"] == "image" and "too large" in job.errors[0]["message"]


def test_zip_bombs_paths_and_missing_members_are_refused():
    project = make_project(kind="image_caption")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.jsonl", b"{}")
    job = run_import(project, archive.getvalue(), "evil.zip")
    assert job.status == "failed" and "unsafe path" in job.errors[0]["message"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("items.jsonl", jsonl([{"external_id": "x", "image": "missing.png", "caption": "c"}]))
    job = run_import(project, archive.getvalue(), "missing.zip")
    assert errors_of(job) == [(1, "image", "image 'missing.png' is not in the zip")]
    job = run_import(project, b"PK\x03\x04 not really a zip", "broken.zip")
    assert job.status == "failed" and "damaged" in job.errors[0]["message"]


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["jsonl", "ls-json", "csv"])
def test_export_then_import_into_a_new_project_reproduces_items_and_labels(fmt):
    source = make_project(kind="image_caption")
    rows = [
        {"external_id": "h", "image": png_data_uri(), "caption": "a red square", "label": "yes"},
        {"external_id": "p", "image": png_data_uri(png_bytes(color=(0, 0, 255))), "caption": "a blue circle"},
    ]
    assert run_import(source, jsonl(rows), "src.jsonl").status == "succeeded"
    JudgeRun.objects.create(item=Item.objects.get(project=source, external_id="p"), model="m", label="no",
                            raw_reasoning="1. It is a square.\n2. So no.", status="completed", stopped_at_step=2)
    exported = "".join(export_stream(project=source, fmt=fmt)).encode()
    target = make_project(name="copy", kind="image_caption")
    job = run_import(target, exported, f"export.{ {'ls-json': 'json'}.get(fmt, fmt) }")
    assert job.status == "succeeded", job.errors

    def snapshot(project):
        out = {}
        for item in Item.objects.filter(project=project):
            judge = item.judge_runs.last()
            out[item.external_id] = (
                item.fields["caption"], item.state, item.final_label, item.final_source,
                sorted(item.human_labels.values_list("label", flat=True)),
                (judge.label, judge.raw_reasoning) if judge else None,
                Image.open(item.image).getpixel((0, 0)),
            )
        return out

    assert snapshot(target) == snapshot(source)
