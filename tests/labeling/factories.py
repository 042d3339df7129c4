"""Small builders for tests: users with roles, projects, items, uploads."""

from __future__ import annotations

import io
import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from labeling.models import Item, Project
from labeling.services.imports import import_job_create, import_job_run
from labeling.services.projects import membership_set, project_create, user_ensure


def make_user(username: str, *, staff: bool = False, superuser: bool = False):
    user = user_ensure(username=username, password="pw-" + username, is_superuser=superuser)
    if staff and not superuser:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def make_project(*, name: str = "p", labels=("yes", "no"), kind: str = "text", members: dict | None = None,
                 **settings: Any) -> Project:
    project = project_create(name=name, question="Does it fit?", labels=list(labels), item_kind=kind, **settings)
    for user, role in (members or {}).items():
        membership_set(project=project, user=user, role=role)
    return project


def make_items(project: Project, n: int, *, prefix: str = "i", state: str = "pending") -> list[Item]:
    field = {"text": "text", "image_caption": "caption"}.get(project.item_kind, "text")
    return Item.objects.bulk_create(
        [Item(project=project, external_id=f"{prefix}{k}", fields={field: f"item {k}"}, state=state) for k in range(n)]
    )


def jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def png_bytes(size=(8, 8), color=(200, 30, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def upload(content: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


def run_import(project: Project, content: bytes, name: str, *, fmt: str | None = None, on_error: str = "fail"):
    job = import_job_create(project=project, uploaded=io.BytesIO(content), filename=name, fmt=fmt,
                            on_error=on_error, enqueue=False)
    return import_job_run(job_id=job.pk)
