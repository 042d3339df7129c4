"""Trace log v1: read, validate and write the one interchange format for logged judge runs.

See docs/trace_log.md. A reader reports every bad line with its line number, field and reason and
never half-loads a file silently: either the caller asked to skip bad lines (and gets them listed in
``TraceLog.errors``) or ``TraceLogError`` is raised with all of them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

KNOWN_KEYS = ("id", "input", "labels", "judge", "human_label", "slice", "group")


@dataclass(frozen=True)
class TraceProblem:
    """One problem in a trace log: where it is and what is wrong."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


class TraceLogError(ValueError):
    """A trace log could not be read; ``problems`` lists every bad line."""

    def __init__(self, source: str, problems: list[TraceProblem]):
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {source}: {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) in trace log {source}:\n{shown}{more}")


@dataclass
class TraceRecord:
    """One logged judge run on one item."""

    id: str
    input: dict[str, Any]
    judge_label: str | None = None
    judge_reasoning: str = ""
    judge_model: str | None = None
    judge_output_tokens: int | None = None
    judge_extra: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None
    human_label: str | None = None
    slice: str | None = None
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    has_judge: bool = True

    @property
    def group_key(self) -> str:
        """The key that keeps records on one side of every split (the id when there is no group)."""
        return self.group if self.group is not None else self.id

    @property
    def judge_correct(self) -> bool | None:
        """Whether the judge agreed with the human; a null judge label is an error; None if unknown."""
        if self.human_label is None:
            return None
        return self.judge_label is not None and self.judge_label == self.human_label

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.labels is not None:
            out["labels"] = self.labels
        if self.has_judge:
            judge: dict[str, Any] = {
                "model": self.judge_model,
                "label": self.judge_label,
                "reasoning": self.judge_reasoning,
                "output_tokens": self.judge_output_tokens,
            }
            judge.update(self.judge_extra)
            out["judge"] = judge
        out["human_label"] = self.human_label
        out["slice"] = self.slice
        out["group"] = self.group
        out.update(self.extra)
        return out


@dataclass
class TraceLog:
    """The records of one trace log, plus the lines skipped (only when the caller asked to skip)."""

    records: list[TraceRecord]
    errors: list[TraceProblem] = field(default_factory=list)
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> TraceRecord:
        return self.records[index]

    @property
    def label_set(self) -> list[str]:
        """Declared labels (first record that declares them) or every label seen, in first-seen order."""
        for record in self.records:
            if record.labels:
                return list(record.labels)
        seen: dict[str, None] = {}
        for record in self.records:
            for label in (record.human_label, record.judge_label):
                if label is not None:
                    seen.setdefault(label, None)
        return list(seen)


def _optional_str(obj: dict[str, Any], key: str, field_name: str, line: int, problems: list[TraceProblem]):
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(TraceProblem(line, field_name, f"must be a string or null, got {type(value).__name__}"))
        return None
    return value


def parse_record(obj: Any, line: int) -> tuple[TraceRecord | None, list[TraceProblem]]:
    """Validate one decoded JSON value as a trace log v1 record."""
    problems: list[TraceProblem] = []
    if not isinstance(obj, dict):
        return None, [TraceProblem(line, "<record>", f"must be a JSON object, got {type(obj).__name__}")]
    record_id = obj.get("id")
    if record_id is None:
        problems.append(TraceProblem(line, "id", "is required"))
    elif not isinstance(record_id, str) or not record_id:
        problems.append(TraceProblem(line, "id", "must be a non-empty string"))
    item_input = obj.get("input")
    if item_input is None:
        problems.append(TraceProblem(line, "input", "is required"))
    elif not isinstance(item_input, dict):
        problems.append(TraceProblem(line, "input", f"must be an object of named fields, got {type(item_input).__name__}"))
    labels = obj.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            problems.append(TraceProblem(line, "labels", "must be a list of non-empty strings"))
            labels = None
        elif len(set(labels)) != len(labels):
            problems.append(TraceProblem(line, "labels", "must not repeat a label"))
    judge = obj.get("judge")
    has_judge = judge is not None
    judge_label = judge_reasoning = judge_model = None
    output_tokens = None
    judge_extra: dict[str, Any] = {}
    if judge is not None and not isinstance(judge, dict):
        problems.append(TraceProblem(line, "judge", f"must be an object, got {type(judge).__name__}"))
        judge = None
    if isinstance(judge, dict):
        judge_label = _optional_str(judge, "label", "judge.label", line, problems)
        judge_model = _optional_str(judge, "model", "judge.model", line, problems)
        judge_reasoning = judge.get("reasoning", "")
        if judge_reasoning is None:
            judge_reasoning = ""
        if not isinstance(judge_reasoning, str):
            problems.append(TraceProblem(line, "judge.reasoning", "must be a string"))
            judge_reasoning = ""
        output_tokens = judge.get("output_tokens")
        if output_tokens is not None and (
            isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 0
        ):
            problems.append(TraceProblem(line, "judge.output_tokens", "must be a non-negative integer or null"))
            output_tokens = None
        judge_extra = {k: v for k, v in judge.items() if k not in {"label", "model", "reasoning", "output_tokens"}}
    human_label = _optional_str(obj, "human_label", "human_label", line, problems)
    slice_name = _optional_str(obj, "slice", "slice", line, problems)
    group = obj.get("group")
    if group is not None and not isinstance(group, (str, int)):
        problems.append(TraceProblem(line, "group", "must be a string or null"))
        group = None
    if labels:
        for key, value in (("judge.label", judge_label), ("human_label", human_label)):
            if value is not None and value not in labels:
                problems.append(TraceProblem(line, key, f"unknown label {value!r}; expected one of {labels}"))
    if problems:
        return None, problems
    record = TraceRecord(
        id=record_id,
        input=item_input,
        judge_label=judge_label,
        judge_reasoning=judge_reasoning or "",
        judge_model=judge_model,
        judge_output_tokens=output_tokens,
        judge_extra=judge_extra,
        labels=labels,
        human_label=human_label,
        slice=slice_name,
        group=None if group is None else str(group),
        extra={k: v for k, v in obj.items() if k not in KNOWN_KEYS},
        has_judge=has_judge,
    )
    return record, []


def iter_trace_lines(stream: IO[bytes] | IO[str]) -> Iterator[tuple[int, Any, TraceProblem | None]]:
    """Yield (line number, decoded JSON or None, problem or None) for each non-blank line."""
    for number, raw in enumerate(stream, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, TraceProblem(number, "<line>", f"is not valid UTF-8 (byte {exc.start})")
                continue
        text = raw.strip()
        if not text:
            continue
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        try:
            yield number, json.loads(text), None
        except json.JSONDecodeError as exc:
            yield number, None, TraceProblem(number, "<line>", f"invalid JSON: {exc.msg} at column {exc.colno}")


def read_traces(
    source: str | os.PathLike[str] | IO[bytes] | IO[str],
    *,
    on_error: Literal["fail", "skip"] = "fail",
    labels: Iterable[str] | None = None,
) -> TraceLog:
    """Read a trace log v1 file (path or binary/text stream).

    ``on_error="fail"`` raises ``TraceLogError`` listing every problem; ``"skip"`` keeps the good
    records and returns the problems in ``TraceLog.errors``. ``labels`` (when given) is the allowed
    label set and every judge/human label is checked against it.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    allowed = list(labels) if labels is not None else None
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        with open(source, "rb") as handle:
            return _read_stream(handle, name, on_error, allowed)
    return _read_stream(source, getattr(source, "name", "<stream>"), on_error, allowed)


def _read_stream(stream, name: str, on_error: str, allowed: list[str] | None) -> TraceLog:
    records: list[TraceRecord] = []
    problems: list[TraceProblem] = []
    seen_ids: dict[str, int] = {}
    for number, obj, problem in iter_trace_lines(stream):
        if problem is not None:
            problems.append(problem)
            continue
        record, record_problems = parse_record(obj, number)
        if record is not None and allowed is not None:
            for key, value in (("judge.label", record.judge_label), ("human_label", record.human_label)):
                if value is not None and value not in allowed:
                    record_problems.append(TraceProblem(number, key, f"unknown label {value!r}; expected one of {allowed}"))
        if record is not None and record.id in seen_ids:
            record_problems.append(
                TraceProblem(number, "id", f"duplicate id {record.id!r} (first on line {seen_ids[record.id]})")
            )
        if record_problems:
            problems.extend(record_problems)
            continue
        seen_ids[record.id] = number
        records.append(record)
    if problems and on_error == "fail":
        raise TraceLogError(name, problems)
    return TraceLog(records=records, errors=problems, source=name)


def dumps_record(record: TraceRecord | dict[str, Any]) -> str:
    """One record as a single JSON line (no trailing newline)."""
    obj = record.to_dict() if isinstance(record, TraceRecord) else record
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def write_traces(target: str | os.PathLike[str] | IO[str], records: Iterable[TraceRecord | dict[str, Any]]) -> int:
    """Write records as trace log v1 JSON Lines; returns the number written."""
    if isinstance(target, (str, os.PathLike)):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            return write_traces(handle, records)
    count = 0
    for record in records:
        target.write(dumps_record(record))
        target.write("\n")
        count += 1
    return count


def loads_traces(text: str, **kwargs: Any) -> TraceLog:
    """Read a trace log from a string (tests, small payloads)."""
    return read_traces(io.StringIO(text), **kwargs)
