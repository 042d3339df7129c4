"""Readers: turn an uploaded file (Label Studio JSON, JSON Lines, CSV) into normalized rows.

Readers only parse; they know nothing of projects or the database. Each yields ``ImportRow`` or
``RowError`` values with the line number (1-based, in the file) and the field at fault, so that the
import service can list every problem precisely.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from routing.tracelog import KNOWN_KEYS as TRACE_KEYS


@dataclass
class JudgeRecord:
    label: str | None
    reasoning: str = ""
    model: str = ""
    output_tokens: int | None = None
    score: float | None = None
    stopped_at_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HumanRecord:
    label: str
    annotator: str = ""
    lead_time: float | None = None
    source_field: str = "human_label"  # where the label sat in the file, for error messages


@dataclass
class ImportRow:
    line: int
    external_id: str | None
    fields: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    judges: list[JudgeRecord] = field(default_factory=list)
    humans: list[HumanRecord] = field(default_factory=list)
    final_label: str | None = None
    final_source: str | None = None
    flat: bool = False  # from a flat row (CSV, Label Studio JSON_MIN): a label may sit in a field column
    flat_annotator: str = ""
    flat_lead_time: float | None = None


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        # Errors are stored as JSON, which PostgreSQL cannot hold with a NUL in it: show the escape instead.
        return {"line": self.line, "field": self.field.replace("\x00", "\\u0000"),
                "message": self.message.replace("\x00", "\\u0000")}


class FormatError(ValueError):
    """The file as a whole cannot be read (wrong encoding, unsupported format, truncated JSON)."""

    def __init__(self, message: str, *, line: int = 0, field: str = "<file>"):
        super().__init__(message)
        self.error = RowError(line, field, message)


FORMATS = ("ls-json", "jsonl", "csv")
# Keys our own JSONL export adds to trace log records; they are derived again, never imported as data.
OWN_TRACE_KEYS = {"final", "state", "disagreement_score", "human_labels"}
OWN_JUDGE_KEYS = {"status", "stopped_at_step", "stop_reason", "prompt_version", "score", "router_scores",
                  "model_versions"}

# Label Studio's per-annotation columns in its CSV / JSON_MIN exports: never item fields.
LS_FLAT_META = {"annotation_id", "annotator", "created_at", "updated_at", "id", "lead_time", "annotations",
                "predictions", "drafts", "agreement", "total_annotations", "cancelled_annotations",
                "total_predictions", "completed_at", "file_upload", "inner_id"}
# Our own flat columns (CSV export) carrying labels and routing facts rather than item fields.
OWN_FLAT_COLUMNS = {"external_id", "final_label", "final_source", "judge_label", "judge_reasoning", "judge_model",
                    "judge_output_tokens", "stopped_at_step", "human_label", "human_annotator",
                    "human_lead_time", "slice", "group", "label", "state", "router_scores", "model_versions"}


def detect_format(filename: str, head: bytes) -> str:
    """Guess the format from the file name, then from the first bytes."""
    lower = filename.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".json"):
        return "ls-json"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"["):
        return "ls-json"
    if text.startswith(b"{"):
        first_line = text.split(b"\n", 1)[0]
        try:
            json.loads(first_line)
            return "jsonl"
        except ValueError:
            return "ls-json"
    if text and b"\x00" not in text and _is_text(text):
        return "csv"
    raise FormatError(
        f"unsupported format for {filename!r}: expected Label Studio JSON (.json), JSON Lines (.jsonl) or CSV (.csv)"
    )


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut by the 4 KB head is still text
    return all(b >= 32 or b in (9, 10, 13) for b in head[:512])


def _decode_text(raw: bytes) -> str:
    try:
        return codecs.decode(raw, "utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FormatError(f"the file is not valid UTF-8 (byte {exc.start})", line=line) from None


# ---------------------------------------------------------------- JSON Lines (trace log v1 or plain)


def read_jsonl(stream: IO[bytes]) -> Iterator[ImportRow | RowError]:
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RowError(number, "<line>", f"is not valid UTF-8 (byte {exc.start} of the line)")
            continue
        if number == 1:
            text = text.lstrip("\ufeff")
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RowError(number, "<line>", f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        yield _row_from_object(obj, number)


def _nul_at(obj: Any, path: str = "") -> str | None:
    """The path of the first key or string in ``obj`` that holds a NUL (JSON's \\u0000), or None.
    PostgreSQL stores no NUL in text or JSON, so such a record is refused with its place named."""
    if isinstance(obj, str):
        return (path or "<record>") if "\x00" in obj else None
    if isinstance(obj, dict):
        for key, value in obj.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return inner
            found = _nul_at(value, inner)
            if found:
                return found
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found = _nul_at(value, f"{path}[{index}]")
            if found:
                return found
    return None


def _refused_nul(obj: Any, line: int) -> RowError | None:
    where = _nul_at(obj)
    return None if where is None else RowError(line, where, "contains a NUL character (\\u0000), which cannot "
                                                            "be stored")


def _row_from_object(obj: Any, line: int) -> ImportRow | RowError:
    if not isinstance(obj, dict):
        return RowError(line, "<record>", f"must be a JSON object, got {type(obj).__name__}")
    if (refused := _refused_nul(obj, line)) is not None:
        return refused
    if "data" in obj and isinstance(obj.get("data"), dict):
        return _row_from_ls_task(obj, line)
    if "input" in obj:
        return _row_from_trace(obj, line)
    return _row_from_plain(obj, line)


def _row_from_trace(obj: dict[str, Any], line: int) -> ImportRow | RowError:
    from routing.tracelog import parse_record

    record, problems = parse_record(obj, line)
    if problems:
        p = problems[0]
        return RowError(p.line, p.field, p.message)
    meta = {k: v for k, v in (("slice", record.slice), ("group", record.group)) if v is not None}
    extra_keys = {k: v for k, v in record.extra.items() if k not in OWN_TRACE_KEYS}
    if extra_keys:
        meta["extra"] = extra_keys
    judges = []
    if record.has_judge:
        extra = {k: v for k, v in record.judge_extra.items() if k not in OWN_JUDGE_KEYS}
        stopped = record.judge_extra.get("stopped_at_step")
        score = record.judge_extra.get("score")
        judges.append(JudgeRecord(label=record.judge_label, reasoning=record.judge_reasoning,
                                  model=record.judge_model or "", output_tokens=record.judge_output_tokens,
                                  score=score if isinstance(score, (int, float)) else None,
                                  stopped_at_step=stopped if isinstance(stopped, int) else None, extra=extra))
    humans = [HumanRecord(label=record.human_label)] if record.human_label is not None else []
    final_label, final_source = _final_from(obj.get("final"), line)
    return ImportRow(line=line, external_id=record.id, fields=record.input, meta=meta, judges=judges,
                     humans=humans, final_label=final_label, final_source=final_source)


def _final_from(final: Any, line: int) -> tuple[str | None, str | None]:
    if isinstance(final, dict):
        label, source = final.get("label"), final.get("source")
        if isinstance(label, str) and isinstance(source, str):
            return label, source
    return None, None


def _row_from_plain(obj: dict[str, Any], line: int) -> ImportRow | RowError:
    """A plain item object: its fields at top level, an optional external id and label."""
    obj = dict(obj)
    external_id = obj.pop("external_id", None)
    if external_id is None:
        external_id = obj.pop("id", None)
    if external_id is not None and not isinstance(external_id, (str, int)):
        return RowError(line, "external_id", "must be a string or an integer")
    humans = []
    label = obj.pop("label", None)
    if label is not None:
        if not isinstance(label, str):
            return RowError(line, "label", "must be a string")
        humans.append(HumanRecord(label=label, source_field="label"))
    meta = obj.pop("meta", None) or {}
    if not isinstance(meta, dict):
        return RowError(line, "meta", "must be an object")
    return ImportRow(line=line, external_id=None if external_id is None else str(external_id), fields=obj,
                     meta=meta, humans=humans)


# ---------------------------------------------------------------- Label Studio JSON


def read_ls_json(stream: IO[bytes]) -> Iterator[ImportRow | RowError]:
    """A Label Studio task list (full JSON or JSON_MIN), parsed element by element so every
    error names the line where its task starts."""
    text = _decode_text(stream.read())
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text):
        raise FormatError("the file is empty")
    if text[pos] == "{":
        obj, end = _decode_at(decoder, text, pos)
        yield _ls_element(obj, 1 + text.count("\n", 0, pos))
        if _skip_ws(text, end) != len(text):
            raise FormatError("unexpected data after the JSON object", line=1 + text.count("\n", 0, end))
        return
    if text[pos] != "[":
        raise FormatError("a Label Studio JSON file must hold a list of tasks", line=1 + text.count("\n", 0, pos))
    pos = _skip_ws(text, pos + 1)
    line, counted_to = 1, 0
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        obj, pos = _decode_at(decoder, text, pos)
        yield _ls_element(obj, line)
        pos = _skip_ws(text, pos)
        if pos >= len(text):
            raise FormatError("truncated JSON: the task list is not closed with ']'",
                              line=line + text.count("\n", counted_to, pos))
        if text[pos] == "]":
            if _skip_ws(text, pos + 1) != len(text):
                raise FormatError("unexpected data after the task list")
            return
        if text[pos] != ",":
            raise FormatError(f"expected ',' or ']' between tasks, found {text[pos]!r}",
                              line=line + text.count("\n", counted_to, pos))
        pos = _skip_ws(text, pos + 1)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _decode_at(decoder: json.JSONDecoder, text: str, pos: int) -> tuple[Any, int]:
    try:
        return decoder.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        what = "truncated JSON" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise FormatError(f"{what}: {exc.msg} at column {exc.colno}", line=exc.lineno) from None


def _ls_element(obj: Any, line: int) -> ImportRow | RowError:
    if not isinstance(obj, dict):
        return RowError(line, "<task>", f"must be a JSON object, got {type(obj).__name__}")
    if (refused := _refused_nul(obj, line)) is not None:
        return refused
    if isinstance(obj.get("data"), dict):
        return _row_from_ls_task(obj, line)
    return _row_from_flat(obj, line)


def _choices_of(results: Any) -> str | None:
    """The first choice in a Label Studio ``result`` list."""
    if not isinstance(results, list):
        return None
    for result in results:
        if isinstance(result, dict):
            choices = (result.get("value") or {}).get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], str):
                return choices[0]
    return None


def _row_from_ls_task(obj: dict[str, Any], line: int) -> ImportRow | RowError:
    data = dict(obj["data"])
    external_id = data.pop("external_id", None)
    if external_id is not None and not isinstance(external_id, (str, int)):
        return RowError(line, "data.external_id", "must be a string or an integer")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        return RowError(line, "meta", "must be an object")
    meta = dict(meta)
    judges: list[JudgeRecord] = []
    meta.pop("tracelab_state", None)
    own_judge = meta.pop("tracelab_judge", None)
    predictions = obj.get("predictions") or []
    if not isinstance(predictions, list):
        return RowError(line, "predictions", "must be a list")
    for index, prediction in enumerate(predictions):
        if isinstance(prediction, int):
            continue  # Label Studio's full export lists prediction ids only
        if not isinstance(prediction, dict):
            return RowError(line, f"predictions[{index}]", "must be an object")
        score = prediction.get("score")
        if score is not None and not isinstance(score, (int, float)):
            return RowError(line, f"predictions[{index}].score", "must be a number")
        label = _choices_of(prediction.get("result"))
        extra = {k: v for k, v in (prediction.get("meta") or {}).items()} if isinstance(prediction.get("meta"), dict) else {}
        judges.append(JudgeRecord(label=label, model=str(prediction.get("model_version") or ""), score=score,
                                  reasoning=str(extra.pop("reasoning", "") or ""),
                                  output_tokens=extra.pop("output_tokens", None),
                                  stopped_at_step=extra.pop("stopped_at_step", None), extra=extra))
    if isinstance(own_judge, dict):
        # Our own export keeps the judge's full record in meta; it supersedes the prediction summary.
        score = judges[0].score if judges else None
        model = own_judge.get("model") or (judges[0].model if judges else "")
        judges = [JudgeRecord(label=own_judge.get("label"), reasoning=str(own_judge.get("reasoning") or ""),
                              model=str(model), output_tokens=own_judge.get("output_tokens"), score=score,
                              stopped_at_step=_as_int(own_judge.get("stopped_at_step")))]
    humans: list[HumanRecord] = []
    annotations = obj.get("annotations") or []
    if not isinstance(annotations, list):
        return RowError(line, "annotations", "must be a list")
    for index, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            return RowError(line, f"annotations[{index}]", "must be an object")
        if annotation.get("was_cancelled"):
            continue
        label = _choices_of(annotation.get("result"))
        if label is None:
            return RowError(line, f"annotations[{index}].result", "holds no choice")
        lead_time = annotation.get("lead_time")
        if lead_time is not None and not isinstance(lead_time, (int, float)):
            return RowError(line, f"annotations[{index}].lead_time", "must be a number")
        completed_by = annotation.get("completed_by")
        if isinstance(completed_by, dict):
            completed_by = completed_by.get("email") or completed_by.get("id")
        humans.append(HumanRecord(label=label, annotator="" if completed_by is None else str(completed_by),
                                  lead_time=lead_time, source_field=f"annotations[{index}].result"))
    final = meta.pop("tracelab_final", None)
    final_label, final_source = _final_from(final, line)
    return ImportRow(line=line, external_id=None if external_id is None else str(external_id), fields=data,
                     meta=meta, judges=judges, humans=humans, final_label=final_label, final_source=final_source)


def _row_from_flat(obj: dict[str, Any], line: int) -> ImportRow | RowError:
    """Label Studio's JSON_MIN / CSV shape and our own CSV: item fields and label columns side by side."""
    fields: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    human_label = obj.get("human_label") or obj.get("label")
    annotator = obj.get("human_annotator") or obj.get("annotator") or ""
    lead_time = obj.get("human_lead_time", obj.get("lead_time"))
    judges: list[JudgeRecord] = []
    if obj.get("judge_label") not in (None, "") or obj.get("judge_reasoning") not in (None, ""):
        tokens = obj.get("judge_output_tokens")
        stopped = obj.get("stopped_at_step")
        judges.append(JudgeRecord(label=obj.get("judge_label") or None, reasoning=obj.get("judge_reasoning") or "",
                                  model=obj.get("judge_model") or "",
                                  output_tokens=_as_int(tokens), stopped_at_step=_as_int(stopped)))
    for key, value in obj.items():
        if key in LS_FLAT_META or key in OWN_FLAT_COLUMNS:
            continue
        fields[key] = value
    for key in ("slice", "group"):
        if obj.get(key) not in (None, ""):
            meta[key] = obj[key]
    if lead_time in ("", None):
        lead_time = None
    else:
        try:
            lead_time = float(lead_time)
        except (TypeError, ValueError):
            return RowError(line, "lead_time", f"must be a number, got {lead_time!r}")
    label_column = "human_label" if obj.get("human_label") else "label"
    humans = ([HumanRecord(label=str(human_label), annotator=str(annotator), lead_time=lead_time,
                           source_field=label_column)] if human_label else [])
    external_id = obj.get("external_id")
    final_label = obj.get("final_label") or None
    final_source = obj.get("final_source") or None
    return ImportRow(line=line, external_id=None if external_id in (None, "") else str(external_id), fields=fields,
                     meta=meta, judges=judges, humans=humans, final_label=final_label, final_source=final_source,
                     flat=True, flat_annotator=str(annotator), flat_lead_time=lead_time)


def _as_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- CSV


def read_csv(stream: IO[bytes]) -> Iterator[ImportRow | RowError]:
    text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text_stream)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("the file is empty") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"the file is not valid UTF-8 (byte {exc.start} of line 1)", line=1) from None
    except csv.Error as exc:
        raise FormatError(f"invalid CSV header: {exc}", line=1) from None
    header = [h.strip() for h in header]
    if not any(header):
        raise FormatError("the CSV header is empty", line=1)
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise FormatError(f"the CSV header repeats column(s) {duplicated}", line=1)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise FormatError(f"the file is not valid UTF-8 (byte {exc.start})", line=reader.line_num + 1) from None
        except csv.Error as exc:
            yield RowError(reader.line_num, "<line>", f"invalid CSV: {exc}")
            continue
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield RowError(line, "<line>", f"has {len(values)} columns; the header has {len(header)}")
            continue
        yield _row_from_flat(dict(zip(header, values)), line)


READERS = {"ls-json": read_ls_json, "jsonl": read_jsonl, "csv": read_csv}


def read_rows(stream: IO[bytes], fmt: str) -> Iterator[ImportRow | RowError]:
    if fmt not in READERS:
        raise FormatError(f"unsupported format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return READERS[fmt](stream)


__all__ = ["FORMATS", "FormatError", "HumanRecord", "ImportRow", "JudgeRecord", "RowError", "TRACE_KEYS",
           "detect_format", "read_rows"]
