"""Exports: the whole project streamed in constant memory, in each format.

Items are read in id order through one cursor, a page at a time; each page's judge runs, router
decisions and human labels come in one query each, so the cost per item stays flat with the project's
size. Rows are fetched as plain tuples (no model instances, no per-row ORM converters) and the text goes
out in chunks of about a megabyte.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Iterator
from contextlib import nullcontext
from json.encoder import c_make_encoder
from typing import Any

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from labeling.models import HumanLabel, Item, JudgeRun, Project, RouterDecision, RoutingRun

PAGE = 2000
CHUNK_CHARS = 1 << 20
EXPORT_FORMATS = ("ls-json", "jsonl", "csv")
CONTENT_TYPES = {"ls-json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}
EXTENSIONS = {"ls-json": "json", "jsonl": "jsonl", "csv": "csv"}

_json_decode = json.JSONDecoder().raw_decode  # json.loads less its two whitespace regex scans
_string = json.encoder.encode_basestring  # a str as json.dumps(..., ensure_ascii=False) writes it
_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False)
if c_make_encoder is not None:
    # The C encoder that json.dumps(..., ensure_ascii=False) builds on every call, built once: the same
    # bytes, a third less time per record. Records are fresh trees of JSON values, so no cycle check.
    _encode_chunks = c_make_encoder(None, _JSON.default, json.encoder.encode_basestring, None,
                                    _JSON.key_separator, _JSON.item_separator, False, False, True)

    def _dumps(value: Any) -> str:
        return "".join(_encode_chunks(value, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _dumps = _JSON.encode


def _sql(queryset: QuerySet, names: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    return queryset.values_list(*names).query.sql_with_params()


def _as_dicts(rows: list[tuple], keys: tuple[str, ...], json_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows read with a bare cursor (Django's per-row converters would dominate the export's cost) as
    {key: value} dicts; JSON columns arrive as text and are decoded here."""
    dicts = [dict(zip(keys, row)) for row in rows]
    for key in json_keys:
        for row in dicts:
            text = row[key]
            if isinstance(text, str):
                row[key] = _json_decode(text)[0]
    return dicts


def _fetch(queryset: QuerySet, names: tuple[str, ...], json_names: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(*_sql(queryset, names))
        return _as_dicts(cursor.fetchall(), names, json_names)


ITEM_COLUMNS = ("id", "external_id", "fields", "meta", "image", "state", "final_label", "final_source",
                "disagreement_score")
ITEM_KEYS = ("id", "external_id", "fields_json", "meta_json", "image", "state", "final_label", "final_source",
             "disagreement_score")
# Whether a jsonb value holds a number anywhere: PostgreSQL prints jsonb with the same separators, key
# order and string escapes as json.dumps(ensure_ascii=False), but may spell a number otherwise (1e-07
# comes back as 0.0000001). Its own text is copied into the export only where this is false.
_HAS_NUMBER_SQL = "{} @? '$.** ? (@.type() == \"number\")'"


def _pages(project: Project) -> Iterator[list[dict[str, Any]]]:
    """The project's items in id order, PAGE at a time, each with its judge run and human labels.

    One query read through a server-side cursor: its plan is the ordered scan of the (project, id) index
    whatever the statistics say. Keyset pages (``id > last ORDER BY id LIMIT n``) are planned as a scan of
    the rest of the project plus a sort while a fresh import has no statistics yet: quadratic in its size.
    PostgreSQL keeps such a cursor only inside a transaction; SQLite steps the query as it is read and
    needs none (there a transaction would take the database's write lock for the whole export).

    On PostgreSQL each item keeps the JSON text of its fields and meta (``fields_json``, ``meta_json``)
    where the JSON writers can copy it (no numbers), else None; ``_fields`` decodes the fields where they
    are needed. SQLite's text is whatever wrote it (ASCII escapes, other separators): never copied.
    """
    queryset = Item.objects.filter(project=project).order_by("id")
    columns, keys = ITEM_COLUMNS, ITEM_KEYS
    postgres = connection.vendor == "postgresql"
    if postgres:
        table = connection.ops.quote_name(Item._meta.db_table)
        flags = {f"{name}_has_number": RawSQL(_HAS_NUMBER_SQL.format(f'{table}."{name}"'), ())
                 for name in ("fields", "meta")}
        queryset = queryset.annotate(**flags)
        columns, keys = columns + tuple(flags), keys + tuple(flags)
    sql, params = _sql(queryset, columns)
    with transaction.atomic() if postgres else nullcontext(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(PAGE):
            items = _as_dicts(rows, keys)
            for item in items:
                item["meta"] = _json_decode(item["meta_json"])[0]
                if not postgres or item["fields_has_number"]:
                    item["fields"] = _json_decode(item["fields_json"])[0]
                    item["fields_json"] = None
                if not postgres or item["meta_has_number"]:
                    item["meta_json"] = None
            _attach_related(items)
            yield items


def _attach_related(items: list[dict[str, Any]]) -> None:
    by_id = {}
    for item in items:
        item["judge"] = None
        item["humans"] = ()  # a list once there is a label: most items never allocate one
        by_id[item["id"]] = item
    # Id ranges instead of IN lists: the page is a contiguous id range, and a range scan on the
    # foreign-key index is far cheaper to plan and send than 2,000 bound parameters.
    first, last = items[0]["id"], items[-1]["id"]
    runs = _fetch(
        JudgeRun.objects.filter(item_id__gte=first, item_id__lte=last).order_by("item_id", "id"),
        ("id", "item_id", "run_id", "model", "prompt_version", "status", "raw_reasoning", "label", "score",
         "output_tokens", "stopped_at_step", "stop_reason", "extra"),
        ("extra",),
    )
    for run in runs:
        if run["item_id"] in by_id:
            by_id[run["item_id"]]["judge"] = run  # the latest run wins
    judge_runs = {item["judge"]["id"]: item["judge"] for item in items if item["judge"]}
    for run in judge_runs.values():
        run["decisions"] = []
    if judge_runs:
        decisions = _fetch(
            RouterDecision.objects.filter(judge_run_id__gte=min(judge_runs), judge_run_id__lte=max(judge_runs))
            .order_by("judge_run_id", "step"),
            ("judge_run_id", "step", "score", "action"),
        )
        for decision in decisions:
            run = judge_runs.get(decision.pop("judge_run_id"))
            if run is not None:
                run["decisions"].append(decision)
    run_ids = {run["run_id"] for run in judge_runs.values() if run["run_id"]}
    versions = _model_versions(run_ids)
    for run in judge_runs.values():
        run["model_versions"] = versions.get(run["run_id"], {})
    humans = _fetch(
        HumanLabel.objects.filter(item_id__gte=first, item_id__lte=last).order_by("item_id", "id"),
        ("item_id", "label", "annotator__username", "annotator_name", "lead_time_seconds", "review_status"),
    )
    for human in humans:
        item = by_id.get(human["item_id"])
        if item is None or human["review_status"] == HumanLabel.ReviewStatus.REJECTED:
            continue
        if not item["humans"]:
            item["humans"] = []
        item["humans"].append({
            "label": human["label"],
            "annotator": human["annotator__username"] or human["annotator_name"] or "",
            "lead_time": human["lead_time_seconds"],
        })


def _model_versions(run_ids: set[int]) -> dict[int, dict[str, int]]:
    if not run_ids:
        return {}
    out: dict[int, dict[str, int]] = {}
    for run in RoutingRun.objects.filter(id__in=run_ids).values(
        "id", "scorer__version", "router__version", "surrogate__version"
    ):
        out[run["id"]] = {k: run[f"{k}__version"] for k in ("scorer", "router", "surrogate") if run[f"{k}__version"]}
    return out


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """The item's fields, decoded from their JSON text on first use (the JSON writers mostly copy the text)."""
    fields = item.get("fields")
    if fields is None:
        fields = item["fields"] = _json_decode(item["fields_json"])[0]
    return fields


def _fields_with_image(item: dict[str, Any]) -> dict[str, Any]:
    """The item's fields, with a stored image inlined as a data: URI (the fields themselves are not copied
    when there is none: callers only read them)."""
    fields = _fields(item)
    if not item["image"]:
        return fields
    ref = fields.get("image")
    if isinstance(ref, str) and ref.lower().startswith(("http://", "https://")):
        return fields
    with default_storage.open(item["image"], "rb") as handle:
        payload = base64.b64encode(handle.read()).decode("ascii")
    mime = mimetypes.guess_type(item["image"])[0] or "image/png"
    return {**fields, "image": f"data:{mime};base64,{payload}"}


def _final(item: dict[str, Any]) -> dict[str, Any] | None:
    if item["final_label"] is None:
        return None
    return {"label": item["final_label"], "source": item["final_source"]}


def _trace_judge(judge: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": judge["model"], "label": judge["label"], "reasoning": judge["raw_reasoning"],
        "output_tokens": judge["output_tokens"], **(judge["extra"] or {}),
        "status": judge["status"], "stopped_at_step": judge["stopped_at_step"], "stop_reason": judge["stop_reason"],
        "prompt_version": judge["prompt_version"], "score": judge["score"],
        "router_scores": judge["decisions"], "model_versions": judge["model_versions"],
    }


def trace_record(item: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """One item as a trace log v1 record, with routing facts as extra top-level keys."""
    judge = item["judge"]
    record: dict[str, Any] = {"id": item["external_id"], "input": _fields_with_image(item), "labels": labels}
    if judge:
        record["judge"] = _trace_judge(judge)
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


def _trace_line(item: dict[str, Any], labels: list[str], labels_json: str) -> str:
    """``_dumps(trace_record(item, labels))``, written from its parts: the item's fields go in as the
    JSON text PostgreSQL sent where that is the same text, and no record dict is built. Items with a
    stored image or extra top-level keys (which may take the place of the fixed ones) take the long way."""
    meta = item["meta"] or {}
    if item["image"] or meta.get("extra"):
        return _dumps(trace_record(item, labels))
    judge = item["judge"]
    humans = item["humans"]
    return "".join((
        '{"id": ', _string(item["external_id"]), ', "input": ', _object_json(item, "fields"), ', "labels": ', labels_json,
        ', "judge": ' + _dumps(_trace_judge(judge)) if judge else "",
        ', "human_label": ', _string(humans[-1]["label"]) if humans else "null",
        ', "slice": ', _json_value(meta.get("slice")), ', "group": ', _json_value(meta.get("group")),
        ', "final": ', _final_json(item), ', "state": ', _string(item["state"]),
        ', "disagreement_score": ', _json_value(item["disagreement_score"]),
        ', "human_labels": ', _dumps(humans) if humans else "[]", "}",
    ))


def _ls_result(label: str, text_field: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": text_field, "type": "choices", "value": {"choices": [label]}}]


def _ls_predictions(item: dict[str, Any], text_field: str) -> list[dict[str, Any]]:
    judge = item["judge"]
    if not judge or judge["label"] is None:
        return []
    versions = judge["model_versions"]
    return [{
        "model_version": judge["model"] + (f"/router-v{versions['router']}" if versions.get("router") else ""),
        "score": judge["score"] if judge["score"] is not None else 1.0 - (item["disagreement_score"] or 0.0),
        "result": _ls_result(judge["label"], text_field),
    }]


def _ls_judge(judge: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": judge["model"], "label": judge["label"], "reasoning": judge["raw_reasoning"],
        "output_tokens": judge["output_tokens"], "stopped_at_step": judge["stopped_at_step"], "status": judge["status"],
        "router_scores": judge["decisions"], "model_versions": judge["model_versions"],
    }


def _ls_annotations(item: dict[str, Any], text_field: str) -> list[dict[str, Any]]:
    return [{"result": _ls_result(human["label"], text_field), "completed_by": human["annotator"],
             "lead_time": human["lead_time"], "was_cancelled": False, "ground_truth": False}
            for human in item["humans"]]


def ls_task(item: dict[str, Any], text_field: str) -> dict[str, Any]:
    """One item as a Label Studio task (importable into Label Studio)."""
    data = {**_fields_with_image(item), "external_id": item["external_id"]}
    judge = item["judge"]
    meta = dict(item["meta"] or {})
    meta["tracelab_final"] = _final(item)
    meta["tracelab_state"] = item["state"]
    if judge:
        meta["tracelab_judge"] = _ls_judge(judge)
    return {"data": data, "meta": meta, "predictions": _ls_predictions(item, text_field),
            "annotations": _ls_annotations(item, text_field)}


_LS_META_KEYS = frozenset({"tracelab_final", "tracelab_state", "tracelab_judge"})


def _ls_line(item: dict[str, Any], text_field: str) -> str:
    """``_dumps(ls_task(item, text_field))``, written from its parts like ``_trace_line``: the fields and
    meta objects are their JSON text with the export's keys appended. Items where one of those keys is
    already there (it would keep its place, not go last) or with a stored image take the long way."""
    meta = item["meta"]
    fields_json = _object_json(item, "fields")
    if (item["image"] or not fields_json.startswith("{") or '"external_id": ' in fields_json
            or not isinstance(meta, dict) or not _LS_META_KEYS.isdisjoint(meta)):
        return _dumps(ls_task(item, text_field))
    judge = item["judge"]
    return "".join((
        '{"data": ', _extend_object(fields_json, '"external_id": ' + _string(item["external_id"])),
        ', "meta": ', _extend_object(
            _object_json(item, "meta"),
            '"tracelab_final": ' + _final_json(item) + ', "tracelab_state": ' + _string(item["state"])
            + (', "tracelab_judge": ' + _dumps(_ls_judge(judge)) if judge else ""),
        ),
        ', "predictions": ', _dumps(_ls_predictions(item, text_field)) if judge else "[]",
        ', "annotations": ', _dumps(_ls_annotations(item, text_field)) if item["humans"] else "[]", "}",
    ))


def _object_json(item: dict[str, Any], name: str) -> str:
    """The item's ``name`` (fields or meta) as ``_dumps`` writes it: PostgreSQL's text where it is the same."""
    text = item[f"{name}_json"]
    if text is not None:
        return text
    return _dumps(_fields(item) if name == "fields" else item["meta"])


def _json_value(value: Any) -> str:
    """``_dumps(value)``, with a shortcut for the null and text values most cells hold."""
    if value is None:
        return "null"
    return _string(value) if type(value) is str else _dumps(value)


def _extend_object(object_json: str, members: str) -> str:
    return "{" + members + "}" if object_json == "{}" else object_json[:-1] + ", " + members + "}"


def _final_json(item: dict[str, Any]) -> str:
    if item["final_label"] is None:
        return "null"
    return '{"label": ' + _string(item["final_label"]) + ', "source": ' + _dumps(item["final_source"]) + "}"


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
    """Yield the export in text chunks of about CHUNK_CHARS characters."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "jsonl":
        yield from _jsonl_stream(project)
    elif fmt == "ls-json":
        yield from _ls_json_stream(project)
    else:
        yield from _csv_stream(project)


def _chunks(lines: Iterator[str]) -> Iterator[list[str]]:
    """The lines in runs of about CHUNK_CHARS characters (checked per line: a page of inlined images can be
    large), so a response is written in ~1 MB pieces whatever the items' sizes."""
    parts: list[str] = []
    size = 0
    for line in lines:
        parts.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield parts
            parts, size = [], 0
    if parts:
        yield parts


def _jsonl_stream(project: Project) -> Iterator[str]:
    labels = list(project.labels)
    labels_json = _dumps(labels)
    lines = (_trace_line(item, labels, labels_json) for page in _pages(project) for item in page)
    for parts in _chunks(lines):
        yield "\n".join(parts) + "\n"


def _ls_json_stream(project: Project) -> Iterator[str]:
    text_field = {"image_caption": "caption", "text": "text", "pairwise": "instruction"}.get(project.item_kind, "text")
    opening = "[\n"
    for parts in _chunks(_ls_line(item, text_field) for page in _pages(project) for item in page):
        yield opening + ",\n".join(parts)
        opening = ",\n"
    yield "[\n]\n" if opening == "[\n" else "\n]\n"


def _csv_stream(project: Project) -> Iterator[str]:
    field_names = _field_names(project)
    yield ",".join(_csv_cell(name) for name in ["external_id", *field_names, *CSV_COLUMNS]) + "\r\n"
    for parts in _chunks(_csv_line(item, field_names) for page in _pages(project) for item in page):
        yield "".join(parts)


def _csv_cell(text: str) -> str:
    """A cell exactly as csv.writer writes it (minimal quoting). csv.writer itself looks for the line
    terminator with a function call per character of every cell: that was most of the export's time."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


_NO_JUDGE = ("", "", "", "", "", "")  # judge label, model, reasoning, output tokens, stopped at, router scores
_NO_HUMAN = ("", "", "")  # label, annotator, lead time


def _csv_line(item: dict[str, Any], field_names: list[str]) -> str:
    """One item's CSV row with its line end. Numbers need no quoting; every text cell is quoted as needed."""
    fields = _fields_with_image(item)
    judge = item["judge"]
    humans = item["humans"]
    meta = item["meta"] or {}
    cells = [_csv_cell(item["external_id"])]
    for name in field_names:
        value = fields.get(name)
        cells.append(_csv_cell(value if type(value) is str else _cell(value)))
    cells += (_csv_cell(item["state"]), _csv_cell(item["final_label"] or ""), _csv_cell(item["final_source"] or ""))
    if judge:
        cells += (_csv_cell(judge["label"] or ""), _csv_cell(judge["model"] or ""),
                  _csv_cell(judge["raw_reasoning"] or ""), _cell(judge["output_tokens"]), _cell(judge["stopped_at_step"]),
                  _csv_cell(json.dumps(judge["decisions"] or [])))
    else:
        cells += _NO_JUDGE
    if humans:
        human = humans[-1]
        cells += (_csv_cell(human["label"]), _csv_cell(human["annotator"]), _cell(human["lead_time"]))
    else:
        cells += _NO_HUMAN
    cells += (_csv_cell(_cell(meta.get("slice"))), _csv_cell(_cell(meta.get("group"))),
              _csv_cell(json.dumps(judge["model_versions"] or {})) if judge else "")
    return ",".join(cells) + "\r\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
