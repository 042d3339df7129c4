"""Exports: the exact text of each format, JSON exactly as json.dumps writes it for awkward values,
constant queries per page, bounded chunks."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import HumanLabel, Item, JudgeRun, ModelArtifact, RouterDecision, RoutingRun
from labeling.services import exports
from labeling.services.exports import export_stream
from tests.labeling.factories import make_project, make_user

pytestmark = pytest.mark.django_db


def export_text(project, fmt: str) -> str:
    return "".join(export_stream(project=project, fmt=fmt))


def routed_project():
    """One item that went through every tier (judge run with router decisions and model versions, human
    labels of which one was rejected, imported extras) and one untouched item."""
    project = make_project(name="routed")
    # Keys written in PostgreSQL's jsonb order (shortest first), which SQLite keeps as written.
    routed = Item.objects.create(
        project=project, external_id="a-1", fields={"n": 3, "text": 'Ünïcode "quoted"\nline', "ratio": 1e-07},
        meta={"extra": {"presentation": "swap"}, "group": "g1", "slice": "s1"}, state="human_labeled",
        final_label="yes", final_source="human", disagreement_score=0.25)
    Item.objects.create(project=project, external_id="b-2", fields={"text": "plain"})
    scorer, router = (ModelArtifact.objects.create(project=project, kind=kind, version=version, file="x")
                      for kind, version in (("scorer", 1), ("router", 2)))
    run = RoutingRun.objects.create(project=project, scorer=scorer, router=router)
    judge = JudgeRun.objects.create(item=routed, run=run, model="gpt-x", prompt_version="v1", status="completed",
                                    raw_reasoning="1. a\n2. b", label="no", output_tokens=12, stopped_at_step=2,
                                    stop_reason="router", extra={"temperature": 0})
    RouterDecision.objects.create(judge_run=judge, step=1, score=0.2, action="continue")
    RouterDecision.objects.create(judge_run=judge, step=2, score=0.9, action="escalate")
    HumanLabel.objects.create(item=routed, annotator=make_user("ann"), label="yes", lead_time_seconds=3.5,
                              review_status="accepted")
    HumanLabel.objects.create(item=routed, annotator=make_user("bob"), label="no", review_status="rejected")
    HumanLabel.objects.create(item=routed, annotator_name="carol", label="yes", source="imported",
                              review_status="accepted")
    return project


EXPECTED_JSONL = (
    '{"id": "a-1", "input": {"n": 3, "text": "Ünïcode \\"quoted\\"\\nline", "ratio": 1e-07}, "labels": ["yes", "no"], '
    '"judge": {"model": "gpt-x", "label": "no", "reasoning": "1. a\\n2. b", "output_tokens": 12, "temperature": 0, '
    '"status": "completed", "stopped_at_step": 2, "stop_reason": "router", "prompt_version": "v1", "score": null, '
    '"router_scores": [{"step": 1, "score": 0.2, "action": "continue"}, {"step": 2, "score": 0.9, "action": "escalate"}], '
    '"model_versions": {"scorer": 1, "router": 2}}, "human_label": "yes", "slice": "s1", "group": "g1", '
    '"presentation": "swap", "final": {"label": "yes", "source": "human"}, "state": "human_labeled", '
    '"disagreement_score": 0.25, "human_labels": [{"label": "yes", "annotator": "ann", "lead_time": 3.5}, '
    '{"label": "yes", "annotator": "carol", "lead_time": null}]}\n'
    '{"id": "b-2", "input": {"text": "plain"}, "labels": ["yes", "no"], "human_label": null, "slice": null, '
    '"group": null, "final": null, "state": "pending", "disagreement_score": null, "human_labels": []}\n'
)
EXPECTED_LS_JSON = (
    '[\n{"data": {"n": 3, "text": "Ünïcode \\"quoted\\"\\nline", "ratio": 1e-07, "external_id": "a-1"}, '
    '"meta": {"extra": {"presentation": "swap"}, "group": "g1", "slice": "s1", '
    '"tracelab_final": {"label": "yes", "source": "human"}, "tracelab_state": "human_labeled", '
    '"tracelab_judge": {"model": "gpt-x", "label": "no", "reasoning": "1. a\\n2. b", "output_tokens": 12, '
    '"stopped_at_step": 2, "status": "completed", "router_scores": [{"step": 1, "score": 0.2, "action": "continue"}, '
    '{"step": 2, "score": 0.9, "action": "escalate"}], "model_versions": {"scorer": 1, "router": 2}}}, '
    '"predictions": [{"model_version": "gpt-x/router-v2", "score": 0.75, "result": [{"from_name": "label", '
    '"to_name": "text", "type": "choices", "value": {"choices": ["no"]}}]}], '
    '"annotations": [{"result": [{"from_name": "label", "to_name": "text", "type": "choices", '
    '"value": {"choices": ["yes"]}}], "completed_by": "ann", "lead_time": 3.5, "was_cancelled": false, '
    '"ground_truth": false}, {"result": [{"from_name": "label", "to_name": "text", "type": "choices", '
    '"value": {"choices": ["yes"]}}], "completed_by": "carol", "lead_time": null, "was_cancelled": false, '
    '"ground_truth": false}]},\n'
    '{"data": {"text": "plain", "external_id": "b-2"}, "meta": {"tracelab_final": null, '
    '"tracelab_state": "pending"}, "predictions": [], "annotations": []}\n]\n'
)
EXPECTED_CSV = (
    "external_id,n,ratio,text,state,final_label,final_source,judge_label,judge_model,judge_reasoning,"
    "judge_output_tokens,stopped_at_step,router_scores,human_label,human_annotator,human_lead_time,slice,group,"
    "model_versions\r\n"
    'a-1,3,1e-07,"Ünïcode ""quoted""\nline",human_labeled,yes,human,no,gpt-x,"1. a\n2. b",12,2,'
    '"[{""step"": 1, ""score"": 0.2, ""action"": ""continue""}, {""step"": 2, ""score"": 0.9, '
    '""action"": ""escalate""}]",yes,carol,,s1,g1,"{""scorer"": 1, ""router"": 2}"\r\n'
    "b-2,,,plain,pending,,,,,,,,,,,,,,\r\n"
)


@pytest.mark.parametrize("fmt, expected", [("jsonl", EXPECTED_JSONL), ("ls-json", EXPECTED_LS_JSON),
                                           ("csv", EXPECTED_CSV)])
def test_each_format_writes_exactly_the_documented_text(fmt, expected):
    assert export_text(routed_project(), fmt) == expected


AWKWARD_STRINGS = ["", " ", 'quote " and \\ backslash', "controls \x01\x1f\x7f \b\f\n\r\t", "é ü 中文 😀 \u2028\ufeff",
                   "looks: 5, like [1, numbers", "</script>&amp;"]
AWKWARD_NUMBERS = [0, -1, 10**20, 1.5, -0.25, 1e-07, 1.5e-07, 1e16, 1.2345678901234567e300, 0.1 + 0.2, 100.0, True, None]


def awkward_project():
    project = make_project(name="awkward")
    fields = [{"text": s, "ké\n\"y": s, "zz": "b"} for s in AWKWARD_STRINGS]
    fields += [{"text": "n", "value": n} for n in AWKWARD_NUMBERS]
    fields += [{}, {"text": "x", "external_id": "inside"}, {"text": "o", "nested": {"z": [1, "x", None], "a": {}}}]
    metas = [{}, {"slice": "s"}, {"slice": 3, "group": 2.5e-08}, {"tracelab_state": "x"}, {"slice": "a: 1", "o": {"é": "\t"}},
             {"group": "g", "extra": {"final": "kept", "id": "other", "custom": [1e-07]}}]
    items = [Item(project=project, external_id=f"e{k}\t\"é\"", fields=f, meta=m, disagreement_score=[None, 1e-07][k % 2])
             for k, (f, m) in enumerate((f, m) for f in fields for m in metas)]
    Item.objects.bulk_create(items)
    for item in Item.objects.filter(project=project)[::3]:
        JudgeRun.objects.create(item=item, model='m"x', label="yes", raw_reasoning="r\u2028é", status="completed",
                                extra={"model": "override", "p": 1e-07})
    return project


def test_each_format_is_exactly_what_json_dumps_and_csv_writer_write_for_awkward_values():
    """PostgreSQL's own JSON text is copied into the export where it is the same text, and CSV rows are
    quoted without the csv module; these values are where either might go wrong (numbers, escapes, key
    order, keys the export adds itself, quotes, separators and line breaks inside cells)."""
    project = awkward_project()
    stored = list(Item.objects.filter(project=project).order_by("id"))

    body = export_text(project, "jsonl")
    lines = body.split("\n")  # not splitlines(): U+2028 in a string is written as it is
    assert lines.pop() == "" and len(lines) == len(stored)
    for line, item in zip(lines, stored):
        record = json.loads(line)
        assert line == json.dumps(record, ensure_ascii=False)
        assert list(record["input"].items()) == list(item.fields.items())
        assert (record["slice"], record["group"]) == (item.meta.get("slice"), item.meta.get("group"))

    body = export_text(project, "ls-json")
    tasks = json.loads(body)
    assert body == "[\n" + ",\n".join(json.dumps(task, ensure_ascii=False) for task in tasks) + "\n]\n"
    for task, item in zip(tasks, stored):
        assert list(task["data"].items()) == list({**item.fields, "external_id": item.external_id}.items())
        meta = {**item.meta, "tracelab_final": None, "tracelab_state": "pending"}
        assert list(task["meta"].items())[:len(meta)] == list(meta.items())

    body = export_text(project, "csv")
    rows = list(csv.reader(io.StringIO(body, newline="")))
    rewritten = io.StringIO()
    csv.writer(rewritten).writerows(rows)
    assert body == rewritten.getvalue()
    header = rows.pop(0)
    assert len(rows) == len(stored)
    for row, item in zip(rows, stored):
        assert row[0] == item.external_id
        cells = dict(zip(header, row))
        assert cells["text"] == item.fields.get("text", "") and cells["ké\n\"y"] == item.fields.get("ké\n\"y", "")


def test_an_export_reads_a_constant_number_of_queries_per_page(monkeypatch):
    project = routed_project()
    Item.objects.bulk_create([Item(project=project, external_id=f"x{k}", fields={"text": "t"}) for k in range(28)])
    monkeypatch.setattr(exports, "PAGE", 10)  # 30 items: three pages

    def queries(fmt: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            export_text(project, fmt)
        return len(captured)

    base = queries("jsonl")
    Item.objects.bulk_create([Item(project=project, external_id=f"y{k}", fields={"text": "t"}) for k in range(10)])
    assert queries("jsonl") - base <= 4  # one more page: judge runs, decisions, model versions, human labels
    assert base <= 4 + 3 * 4


def test_chunks_are_bounded_and_join_to_the_whole_export(monkeypatch):
    project = routed_project()
    Item.objects.bulk_create([Item(project=project, external_id=f"x{k}", fields={"text": "t" * k}) for k in range(300)])
    whole = {fmt: export_text(project, fmt) for fmt in exports.EXPORT_FORMATS}
    monkeypatch.setattr(exports, "CHUNK_CHARS", 2000)
    monkeypatch.setattr(exports, "PAGE", 7)
    longest_record = 3000
    for fmt in exports.EXPORT_FORMATS:
        chunks = list(export_stream(project=project, fmt=fmt))
        assert len(chunks) > 5 and all(0 < len(chunk) < 2000 + longest_record for chunk in chunks)
        assert "".join(chunks) == whole[fmt]
    rows = list(csv.reader(io.StringIO(whole["csv"])))
    assert len(rows) == 1 + 302 and rows[-1][0] == "x299"
