"""Exports: the whole project streamed in constant memory, in each format.

Items are read in keyset pages; each page's judge runs, router decisions and human labels come in one
query each, so the cost per item stays flat with the project's size.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import mimetypes
from collections.abc import Iterator
from typing import Any

from django.core.files.storage import default_storage
from django.db import connection

from labeling.models import HumanLabel, Item, JudgeRun, Project, RouterDecision, RoutingRun

PAGE = 2000
EXPORT_FORMATS = ("ls-json", "jsonl", "csv")
CONTENT_TYPES = {"ls-json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}
EXTENSIONS = {"ls-json": "json", "jsonl": "jsonl", "csv": "csv"}


def _pages(project: Project) -> Iterator[list[dict[str, Any]]]:
    last_id = 0
    while True:
        items = list(
            Item.objects.filter(project=project, id__gt=last_id).order_by("id").values(
                "id", "external_id", "fields", "meta", "image", "state", "final_label", "final_source",
                "disagreement_score",
            )[:PAGE]
        )
        if not items:
            return
        last_id = items[-1]["id"]
        _attach_related(items)
        yield items


def _attach_related(items: list[dict[str, Any]]) -> None:
    by_id = {item["id"]: item for item in items}
    for item in items:
        item["judge"] = None
        item["humans"] = []
    # Id ranges instead of IN lists: the page is a contiguous id range, and a range scan on the
    # foreign-key index is far cheaper to plan and send than 2,000 bound parameters.
    first, last = items[0]["id"], items[-1]["id"]
    runs = JudgeRun.objects.filter(item_id__gte=first, item_id__lte=last).order_by("item_id", "id").values(
        "id", "item_id", "run_id", "model", "prompt_version", "status", "raw_reasoning", "label", "score",
        "output_tokens", "stopped_at_step", "stop_reason", "extra",
    )
    for run in runs:
        if run["item_id"] in by_id:
            by_id[run["item_id"]]["judge"] = run  # the latest run wins
    judge_runs = {item["judge"]["id"]: item["judge"] for item in items if item["judge"]}
    for run in judge_runs.values():
        run["decisions"] = []
    if judge_runs:
        decisions = RouterDecision.objects.filter(judge_run_id__gte=min(judge_runs), judge_run_id__lte=max(judge_runs))
        for decision in decisions.order_by("judge_run_id", "step").values("judge_run_id", "step", "score", "action"):
            run = judge_runs.get(decision.pop("judge_run_id"))
            if run is not None:
                run["decisions"].append(decision)
    run_ids = {run["run_id"] for run in judge_runs.values() if run["run_id"]}
    versions = _model_versions(run_ids)
    for run in judge_runs.values():
        run["model_versions"] = versions.get(run["run_id"], {})
    for human in HumanLabel.objects.filter(item_id__gte=first, item_id__lte=last).order_by("item_id", "id").values(
        "item_id", "label", "annotator__username", "annotator_name", "lead_time_seconds", "source", "review_status"
    ):
        if human["review_status"] == HumanLabel.ReviewStatus.REJECTED or human["item_id"] not in by_id:
            continue
        by_id[human["item_id"]]["humans"].append({
            "label": human["label"],
            "annotator": human["annotator__username"] or human["annotator_name"] or "",
            "lead_time": human["lead_time_seconds"],
        })


def _model_versions(run_ids: set[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for run in RoutingRun.objects.filter(id__in=run_ids).values(
        "id", "scorer__version", "router__version", "surrogate__version"
    ):
        out[run["id"]] = {k: run[f"{k}__version"] for k in ("scorer", "router", "surrogate") if run[f"{k}__version"]}
    return out


def _fields_with_image(item: dict[str, Any]) -> dict[str, Any]:
    fields = dict(item["fields"])
    ref = fields.get("image")
    if item["image"] and not (isinstance(ref, str) and ref.lower().startswith(("http://", "https://"))):
        with default_storage.open(item["image"], "rb") as handle:
            payload = base64.b64encode(handle.read()).decode("ascii")
        mime = mimetypes.guess_type(item["image"])[0] or "image/png"
        fields["image"] = f"data:{mime};base64,{payload}"
    return fields


def _final(item: dict[str, Any]) -> dict[str, Any] | None:
    if item["final_label"] is None:
        return None
    return {"label": item["final_label"], "source": item["final_source"]}


def trace_record(item: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """One item as a trace log v1 record, with routing facts as extra top-level keys."""
    judge = item["judge"]
    record: dict[str, Any] = {"id": item["external_id"], "input": _fields_with_image(item), "labels": labels}
    if judge:
        record["judge"] = {
            "model": judge["model"], "label": judge["label"], "reasoning": judge["raw_reasoning"],
            "output_tokens": judge["output_tokens"], **(judge["extra"] or {}),
            "status": judge["status"], "stopped_at_step": judge["stopped_at_step"], "stop_reason": judge["stop_reason"],
            "prompt_version": judge["prompt_version"], "score": judge["score"],
            "router_scores": judge["decisions"], "model_versions": judge["model_versions"],
        }
    humans = item["humans"]
    record["human_label"] = humans[-1]["label"] if humans else None
    meta = item["meta"] or {}
    record["slice"] = meta.get("slice")
    record["group"] = meta.get("group")
    record.update(meta.get("extra") or {})
    record["final"] = _final(item)
    record["state"] = item["state"]
    record["disagreement_score"] = item["disagreement_score"]
    record["human_labels"] = humans
    return record


def ls_task(item: dict[str, Any], text_field: str) -> dict[str, Any]:
    """One item as a Label Studio task (importable into Label Studio)."""
    data = {**_fields_with_image(item), "external_id": item["external_id"]}
    judge = item["judge"]
    meta = dict(item["meta"] or {})
    meta["tracelab_final"] = _final(item)
    meta["tracelab_state"] = item["state"]
    task: dict[str, Any] = {"data": data, "meta": meta, "predictions": [], "annotations": []}

    def result(label: str) -> list[dict[str, Any]]:
        return [{"from_name": "label", "to_name": text_field, "type": "choices", "value": {"choices": [label]}}]

    if judge and judge["label"] is not None:
        versions = judge["model_versions"]
        task["predictions"].append({
            "model_version": judge["model"] + (f"/router-v{versions['router']}" if versions.get("router") else ""),
            "score": judge["score"] if judge["score"] is not None else 1.0 - (item["disagreement_score"] or 0.0),
            "result": result(judge["label"]),
        })
    if judge:
        meta["tracelab_judge"] = {
            "model": judge["model"], "label": judge["label"], "reasoning": judge["raw_reasoning"], "output_tokens": judge["output_tokens"],
            "stopped_at_step": judge["stopped_at_step"], "status": judge["status"],
            "router_scores": judge["decisions"], "model_versions": judge["model_versions"],
        }
    for human in item["humans"]:
        task["annotations"].append({"result": result(human["label"]), "completed_by": human["annotator"],
                                    "lead_time": human["lead_time"], "was_cancelled": False, "ground_truth": False})
    return task


def _field_names(project: Project) -> list[str]:
    table = Item._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"SELECT DISTINCT jsonb_object_keys(fields) FROM {table} WHERE project_id = %s"
    else:
        sql = f"SELECT DISTINCT j.key FROM {table}, json_each({table}.fields) AS j WHERE project_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk])
        names = sorted(row[0] for row in cursor.fetchall())
    return names


CSV_COLUMNS = ["state", "final_label", "final_source", "judge_label", "judge_model", "judge_reasoning",
               "judge_output_tokens", "stopped_at_step", "router_scores", "human_label", "human_annotator",
               "human_lead_time", "slice", "group", "model_versions"]


def export_stream(*, project: Project, fmt: str) -> Iterator[str]:
    """Yield the export in text chunks (one per page of items)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    labels = list(project.labels)
    if fmt == "jsonl":
        for page in _pages(project):
            yield "".join(json.dumps(trace_record(item, labels), ensure_ascii=False) + "\n" for item in page)
    elif fmt == "ls-json":
        text_field = {"image_caption": "caption", "text": "text", "pairwise": "instruction"}.get(project.item_kind, "text")
        yield "["
        first = True
        for page in _pages(project):
            parts = []
            for item in page:
                parts.append(("\n" if first else ",\n") + json.dumps(ls_task(item, text_field), ensure_ascii=False))
                first = False
            yield "".join(parts)
        yield "\n]\n"
    else:
        yield from _csv_stream(project)


def _csv_stream(project: Project) -> Iterator[str]:
    field_names = _field_names(project)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["external_id", *field_names, *CSV_COLUMNS])
    for page in _pages(project):
        for item in page:
            fields = _fields_with_image(item)
            judge = item["judge"] or {}
            human = item["humans"][-1] if item["humans"] else {}
            meta = item["meta"] or {}
            writer.writerow([
                item["external_id"], *(_cell(fields.get(name)) for name in field_names),
                item["state"], item["final_label"] or "", item["final_source"] or "", judge.get("label") or "",
                judge.get("model") or "", judge.get("raw_reasoning") or "", _cell(judge.get("output_tokens")),
                _cell(judge.get("stopped_at_step")),
                json.dumps(judge.get("decisions") or []) if judge else "",
                human.get("label", ""), human.get("annotator", ""), _cell(human.get("lead_time")),
                _cell(meta.get("slice")), _cell(meta.get("group")),
                json.dumps(judge.get("model_versions") or {}) if judge else "",
            ])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
