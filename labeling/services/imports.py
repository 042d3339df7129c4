"""Imports: an uploaded file becomes items (with their judge runs and human labels), all or nothing.

With ``on_error="fail"`` a file with any bad row imports nothing and the job lists every error
(line, field, message). With ``on_error="skip"`` the good rows are imported and the bad ones listed.
Either way the rows go in inside one transaction, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import logging
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeling.formats.readers import (
    FORMATS, FormatError, HumanRecord, ImportRow, RowError, detect_format, read_rows,
)
from labeling.models import Batch, HumanLabel, ImportJob, Item, ItemKind, JudgeRun, Project, Tier
from labeling.services.audit import audit_event_record
from labeling.services.bulk import insert_rows
from labeling.services.images import ImageRejected, image_check, image_from_data_uri, image_store
from labeling.states import ItemState

logger = logging.getLogger(__name__)

CHUNK_ROWS = 2000
MAX_LISTED_ERRORS = 10_000
MAX_ZIP_MEMBERS = 2_000_000
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    ItemKind.IMAGE_CAPTION: ("image", "caption"),
    ItemKind.TEXT: ("text",),
    ItemKind.PAIRWISE: ("output_1", "output_2"),
    ItemKind.GENERIC: (),
}
IMAGE_FIELD = "image"


class ImportFailed(Exception):
    """Raised inside the import transaction to roll it back when the file must fail whole."""


# ---------------------------------------------------------------- creating and running jobs


def import_job_create(
    *,
    project: Project,
    uploaded: IO[bytes],
    filename: str,
    user=None,
    fmt: str | None = None,
    on_error: str = "fail",
    enqueue: bool = True,
) -> ImportJob:
    """Store the upload on disk and queue the import (it runs on a worker after commit)."""
    if fmt not in (None, "", *FORMATS):
        raise ValueError(f"unsupported format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if on_error not in (ImportJob.OnError.FAIL, ImportJob.OnError.SKIP):
        raise ValueError("on_error must be 'fail' or 'skip'")
    directory = Path(settings.TRACELAB_IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    safe_name = Path(filename).name or "upload"
    stored = directory / f"{uuid.uuid4().hex}-{safe_name}"
    size = _copy_capped(uploaded, stored)
    with transaction.atomic():
        job = ImportJob.objects.create(project=project, created_by=user, filename=safe_name, stored_path=str(stored),
                                       format=fmt or "", on_error=on_error)
        audit_event_record(project=project, actor=user, verb="import_queued",
                           data={"import": job.pk, "filename": safe_name, "bytes": size})
        if enqueue:
            from labeling.tasks import import_job_run_task

            transaction.on_commit(lambda: import_job_run_task.delay(job.pk))
    return job


def _copy_capped(source: IO[bytes], target: Path) -> int:
    limit = settings.TRACELAB_MAX_IMPORT_BYTES
    size = 0
    with open(target, "wb") as out:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            size += len(chunk)
            if size > limit:
                out.close()
                target.unlink(missing_ok=True)
                raise ValueError(f"the upload is larger than the import limit of {limit:,} bytes")
            out.write(chunk)
    return size


def import_job_run(*, job_id: int, progress: Callable[[int], None] | None = None) -> ImportJob:
    """Run a queued import. Safe to call again after a crash: a finished job is left as it is."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().select_related("project").get(pk=job_id)
        if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
            return job
        job.status = ImportJob.Status.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["status", "started_at"])
    result = _ImportResult()
    fetch_ids: list[int] = []
    try:
        with transaction.atomic():
            batch = Batch.objects.create(project=job.project, name=f"import {job.pk}: {job.filename}",
                                         created_by=job.created_by)
            with _open_upload(job) as (stream, fmt, zip_file):
                job.format = fmt
                rows = read_rows(stream, fmt)
                fetch_ids = _import_rows(job, batch, rows, zip_file, result, progress)
            if result.error_count and job.on_error == ImportJob.OnError.FAIL:
                raise ImportFailed
            if result.imported == 0:
                batch.delete()
                batch = None
            job.batch = batch
            audit_event_record(project=job.project, actor=job.created_by, verb="items_imported",
                               data={"import": job.pk, "imported": result.imported, "failed": result.failed})
    except ImportFailed:
        fetch_ids = []
        result.imported = 0
    except FormatError as exc:
        result.add(exc.error)
        result.imported = 0
        fetch_ids = []
    except Exception as exc:  # an unexpected fault still ends the job with a reason, never "running" forever
        logger.exception("import %s crashed", job.pk)
        result.add(RowError(0, "<file>", f"internal error while importing: {type(exc).__name__}: {exc}"))
        result.imported = 0
        fetch_ids = []
    _finish(job, result)
    if fetch_ids:
        from labeling.tasks import item_fetch_images_task

        item_fetch_images_task.delay(fetch_ids)
    return job


def _finish(job: ImportJob, result: "_ImportResult") -> None:
    job.rows_total = result.total
    job.rows_imported = result.imported
    job.rows_failed = result.failed
    job.errors = result.listed
    job.error_count = result.error_count
    job.finished_at = timezone.now()
    failed = result.imported == 0 and (result.error_count > 0 or result.total == 0)
    if result.total == 0 and not result.error_count:
        result.add(RowError(0, "<file>", "the file holds no items"))
        job.errors, job.error_count = result.listed, result.error_count
    job.status = ImportJob.Status.FAILED if failed else ImportJob.Status.SUCCEEDED
    job.save(update_fields=["format", "batch", "rows_total", "rows_imported", "rows_failed", "errors", "error_count",
                            "finished_at", "status"])
    Path(job.stored_path).unlink(missing_ok=True)


class _ImportResult:
    def __init__(self) -> None:
        self.total = 0
        self.imported = 0
        self.failed = 0
        self.error_count = 0
        self.listed: list[dict[str, Any]] = []

    def add(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append(error.as_dict())
        elif len(self.listed) == MAX_LISTED_ERRORS:
            self.listed.append({"line": 0, "field": "<file>",
                                "message": f"more errors follow; only the first {MAX_LISTED_ERRORS:,} are listed"})


@contextmanager
def _open_upload(job: ImportJob) -> Iterator[tuple[IO[bytes], str, zipfile.ZipFile | None]]:
    path = Path(job.stored_path)
    with open(path, "rb") as handle:
        head = handle.read(4096)
        handle.seek(0)
        if head.startswith(b"PK\x03\x04") or job.filename.lower().endswith(".zip"):
            zip_file = _open_zip(handle)
            member = _data_member(zip_file)
            fmt = job.format or detect_format(member.filename, zip_file.open(member).read(4096))
            with zip_file.open(member) as stream:
                yield stream, fmt, zip_file
            return
        fmt = job.format or detect_format(job.filename, head)
        yield handle, fmt, None


def _open_zip(handle: IO[bytes]) -> zipfile.ZipFile:
    try:
        zip_file = zipfile.ZipFile(handle)
    except zipfile.BadZipFile as exc:
        raise FormatError(f"the zip file is damaged: {exc}") from None
    members = zip_file.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise FormatError(f"the zip holds {len(members):,} files (limit {MAX_ZIP_MEMBERS:,})")
    for member in members:
        if member.filename.startswith("/") or ".." in Path(member.filename).parts:
            raise FormatError(f"unsafe path in zip: {member.filename!r}")
    return zip_file


def _data_member(zip_file: zipfile.ZipFile) -> zipfile.ZipInfo:
    candidates = [m for m in zip_file.infolist()
                  if not m.is_dir() and m.filename.lower().endswith(DATA_SUFFIXES) and "/" not in m.filename.rstrip("/")]
    if len(candidates) != 1:
        names = [m.filename for m in candidates]
        raise FormatError(
            "a zip import must hold exactly one data file (.jsonl, .json or .csv) at its top level, "
            f"found {len(candidates)}{': ' + ', '.join(names[:5]) if names else ''}"
        )
    limit = settings.TRACELAB_MAX_IMPORT_BYTES
    if candidates[0].file_size > limit:
        raise FormatError(f"the data file in the zip is larger than {limit:,} bytes")
    return candidates[0]


# ---------------------------------------------------------------- validating and inserting rows


class _RowContext:
    """What validating one row needs: the project, the ids seen so far, images in the zip."""

    def __init__(self, job: ImportJob, zip_file: zipfile.ZipFile | None):
        self.project = job.project
        self.job = job
        self.labels = set(job.project.labels)
        self.required = REQUIRED_FIELDS.get(job.project.item_kind, ())
        self.seen_ids: dict[str, int] = {}
        self.zip_file = zip_file
        self.zip_names = set(zip_file.namelist()) if zip_file else set()
        self.project_has_items = Item.objects.filter(project=job.project).exists()


def _import_rows(job, batch, rows: Iterable[ImportRow | RowError], zip_file, result, progress) -> list[int]:
    context = _RowContext(job, zip_file)
    chunk: list[tuple[ImportRow, dict[str, Any]]] = []
    fetch_ids: list[int] = []
    for row in rows:
        result.total += 1
        if isinstance(row, RowError):
            result.failed += 1
            result.add(row)
            continue
        errors, prepared = _validate(row, context)
        if errors:
            result.failed += 1
            for error in errors:
                result.add(error)
            continue
        if result.error_count and job.on_error == ImportJob.OnError.FAIL:
            continue  # the file will fail whole: keep validating, stop inserting
        chunk.append((row, prepared))
        if len(chunk) >= CHUNK_ROWS:
            fetch_ids += _insert_chunk(chunk, batch, context, result)
            chunk = []
            if progress:
                progress(result.total)
    if chunk and not (result.error_count and job.on_error == ImportJob.OnError.FAIL):
        fetch_ids += _insert_chunk(chunk, batch, context, result)
    if progress:
        progress(result.total)
    return fetch_ids


def _validate(row: ImportRow, ctx: _RowContext) -> tuple[list[RowError], dict[str, Any]]:
    errors: list[RowError] = []
    line = row.line
    fields = dict(row.fields)
    if row.flat and not row.humans and ctx.required:
        # Label Studio's flat exports put the choice in a column named after its control (e.g. "fit").
        label_columns = [k for k, v in fields.items() if k not in ctx.required and isinstance(v, str) and v in ctx.labels]
        if len(label_columns) == 1:
            row.humans.append(HumanRecord(label=fields.pop(label_columns[0]), annotator=row.flat_annotator,
                                          lead_time=row.flat_lead_time))
    external_id = row.external_id if row.external_id is not None else f"import{ctx.job.pk}-line{line}"
    if len(external_id) > 255:
        errors.append(RowError(line, "external_id", "is longer than 255 characters"))
    elif external_id in ctx.seen_ids:
        errors.append(RowError(line, "external_id",
                               f"duplicate external id {external_id!r} (first on line {ctx.seen_ids[external_id]})"))
    if not fields and not ctx.required:
        errors.append(RowError(line, "fields", "the item has no fields"))
    for name in ctx.required:
        value = fields.get(name)
        if value is None:
            errors.append(RowError(line, name, f"is required for {ctx.project.item_kind} items"))
        elif isinstance(value, str) and not value.strip():
            errors.append(RowError(line, name, "must not be empty"))
    for name, value in fields.items():
        if not isinstance(name, str) or not name:
            errors.append(RowError(line, "fields", "field names must be non-empty strings"))
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            errors.append(RowError(line, name, f"must be a string or a number, got {_json_type(value)}"))
    for index, judge in enumerate(row.judges):
        if judge.label is not None and judge.label not in ctx.labels:
            errors.append(RowError(line, "judge.label" if index == 0 else f"predictions[{index}]",
                                   f"unknown label {judge.label!r}; expected one of {ctx.project.labels}"))
        if judge.output_tokens is not None and (not isinstance(judge.output_tokens, int) or judge.output_tokens < 0):
            errors.append(RowError(line, "judge.output_tokens", "must be a non-negative integer"))
    for human in row.humans:
        if human.label not in ctx.labels:
            errors.append(RowError(line, human.source_field,
                                   f"unknown label {human.label!r}; expected one of {ctx.project.labels}"))
    if row.final_label is not None:
        if row.final_label not in ctx.labels:
            errors.append(RowError(line, "final_label",
                                   f"unknown label {row.final_label!r}; expected one of {ctx.project.labels}"))
        if row.final_source not in Tier.values:
            errors.append(RowError(line, "final_source", f"must be one of {Tier.values}, got {row.final_source!r}"))
    prepared: dict[str, Any] = {"external_id": external_id, "fields": fields}
    image_value = fields.get(IMAGE_FIELD)
    if not errors and isinstance(image_value, str) and image_value.strip():
        try:
            prepared.update(_resolve_image(image_value.strip(), ctx))
        except ImageRejected as exc:
            errors.append(RowError(line, IMAGE_FIELD, str(exc)))
    elif ctx.project.item_kind == ItemKind.IMAGE_CAPTION and image_value is not None and not isinstance(image_value, str):
        errors.append(RowError(line, IMAGE_FIELD, "must be a zip path, an http(s) URL or a data: URI"))
    if not errors:
        ctx.seen_ids[external_id] = line
    return errors, prepared


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _resolve_image(value: str, ctx: _RowContext) -> dict[str, Any]:
    if value.startswith("data:"):
        checked = image_from_data_uri(value)
        name = image_store(project_id=ctx.project.pk, image=checked)
        return {"image": name, "image_ref": f"upload:{Path(name).name}"}
    if value.lower().startswith(("http://", "https://")):
        return {"fetch": True}
    if ctx.zip_file is None:
        raise ImageRejected(f"image {value!r} is a file path: upload a zip holding the data file and the images")
    if value not in ctx.zip_names:
        raise ImageRejected(f"image {value!r} is not in the zip")
    member = ctx.zip_file.getinfo(value)
    if member.file_size > settings.TRACELAB_MAX_IMAGE_BYTES:
        raise ImageRejected(f"image is too large: {member.file_size:,} bytes (limit {settings.TRACELAB_MAX_IMAGE_BYTES:,})")
    with ctx.zip_file.open(member) as handle:
        content = handle.read(settings.TRACELAB_MAX_IMAGE_BYTES + 1)
    return {"image": image_store(project_id=ctx.project.pk, image=image_check(content))}


def _insert_chunk(chunk, batch: Batch, ctx: _RowContext, result: _ImportResult) -> list[int]:
    if ctx.project_has_items:
        ids = [prepared["external_id"] for _, prepared in chunk]
        existing = set(Item.objects.filter(project=ctx.project, external_id__in=ids).values_list("external_id", flat=True))
        if existing:
            kept = []
            for row, prepared in chunk:
                if prepared["external_id"] in existing:
                    result.failed += 1
                    result.add(RowError(row.line, "external_id",
                                        f"external id {prepared['external_id']!r} already exists in this project"))
                else:
                    kept.append((row, prepared))
            chunk = kept
            if ctx.job.on_error == ImportJob.OnError.FAIL:
                return []
    now = timezone.now()
    item_rows = []
    for row, prepared in chunk:
        state, final_label, final_source = _initial_state(row)
        fields = prepared["fields"]
        if "image_ref" in prepared:
            fields = {**fields, IMAGE_FIELD: prepared["image_ref"]}
        item_rows.append({
            "project_id": ctx.project.pk, "batch_id": batch.pk, "external_id": prepared["external_id"],
            "fields": fields, "meta": row.meta, "image": prepared.get("image") or "", "image_error": "",
            "state": state, "final_label": final_label, "final_source": final_source, "disagreement_score": None,
            "failure_reason": "", "created_at": now, "updated_at": now,
        })
    item_ids = insert_rows(Item, item_rows)
    judge_rows, human_rows, fetch_ids = [], [], []
    for (row, prepared), item_id in zip(chunk, item_ids):
        if prepared.get("fetch"):
            fetch_ids.append(item_id)
        for judge in row.judges:
            judge_rows.append({
                "item_id": item_id, "run_id": None, "model": judge.model, "prompt_version": "",
                "status": JudgeRun.Status.IMPORTED, "raw_reasoning": judge.reasoning, "steps": [],
                "label": judge.label, "score": judge.score, "input_tokens": None,
                "output_tokens": judge.output_tokens, "output_tokens_estimated": False, "latency_ms": None,
                "stopped_at_step": judge.stopped_at_step, "stop_reason": "", "error": "", "extra": judge.extra,
                "started_at": now, "finished_at": now,
            })
        for human in row.humans:
            human_rows.append({
                "item_id": item_id, "task_id": None, "annotator_id": None, "annotator_name": human.annotator,
                "label": human.label, "lead_time_seconds": human.lead_time, "source": HumanLabel.Source.IMPORTED,
                "review_status": HumanLabel.ReviewStatus.ACCEPTED, "reviewed_by_id": None, "created_at": now,
            })
    insert_rows(JudgeRun, judge_rows)
    insert_rows(HumanLabel, human_rows)
    result.imported += len(item_ids)
    return fetch_ids


def _initial_state(row: ImportRow) -> tuple[str, str | None, str | None]:
    if row.final_label is not None:
        state = ItemState.HUMAN_LABELED if row.final_source == Tier.HUMAN else ItemState.AUTO_LABELED
        return state, row.final_label, row.final_source
    if row.humans:
        return ItemState.HUMAN_LABELED, row.humans[-1].label, Tier.HUMAN
    return ItemState.PENDING, None, None


def import_file(
    *, project: Project, path: str | Path, user=None, fmt: str | None = None, on_error: str = "fail",
    progress: Callable[[int], None] | None = None,
) -> ImportJob:
    """Import a file from disk synchronously (the CLI): the same job and service as the API."""
    with open(path, "rb") as handle:
        job = import_job_create(project=project, uploaded=handle, filename=Path(path).name, user=user, fmt=fmt,
                                on_error=on_error, enqueue=False)
    return import_job_run(job_id=job.pk, progress=progress)

