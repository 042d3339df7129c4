"""Versioned model artifacts: store, activate, roll back, load (cached per process; artifacts never change)."""

from __future__ import annotations

import threading
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max

from labeling.models import ModelArtifact, Project
from labeling.services.audit import audit_event_record
from routing.routers.io import dump_model_bytes, load_model_bytes

_cache: dict[int, Any] = {}
_cache_lock = threading.Lock()


@transaction.atomic
def artifact_store(*, project: Project, kind: str, model: Any, metrics: dict[str, Any], activate: bool = False,
                   actor=None) -> ModelArtifact:
    Project.objects.select_for_update().get(pk=project.pk)  # serialise version numbers per project
    version = (ModelArtifact.objects.filter(project=project, kind=kind).aggregate(v=Max("version"))["v"] or 0) + 1
    artifact = ModelArtifact(project=project, kind=kind, version=version, metrics=metrics, created_by=actor)
    artifact.file.save(f"p{project.pk}-{kind}-v{version}.joblib", ContentFile(dump_model_bytes(model)), save=False)
    artifact.save()
    audit_event_record(project=project, actor=actor, verb="model_stored", data={"kind": kind, "version": version})
    if activate:
        artifact_activate(artifact=artifact, actor=actor)
    return artifact


@transaction.atomic
def artifact_activate(*, artifact: ModelArtifact, actor=None) -> ModelArtifact:
    ModelArtifact.objects.filter(project=artifact.project_id, kind=artifact.kind, is_active=True).update(is_active=False)
    ModelArtifact.objects.filter(pk=artifact.pk).update(is_active=True)
    artifact.is_active = True
    audit_event_record(project=artifact.project_id, actor=actor, verb="model_activated",
                       data={"kind": artifact.kind, "version": artifact.version})
    return artifact


@transaction.atomic
def artifact_rollback(*, project: Project, kind: str, actor=None) -> ModelArtifact | None:
    """Activate the version before the active one (None when there is none)."""
    active = ModelArtifact.objects.filter(project=project, kind=kind, is_active=True).first()
    if active is None:
        return None
    previous = (ModelArtifact.objects.filter(project=project, kind=kind, version__lt=active.version)
                .order_by("-version").first())
    if previous is None:
        return None
    return artifact_activate(artifact=previous, actor=actor)


def artifact_active(*, project: Project | int, kind: str) -> ModelArtifact | None:
    project_id = project if isinstance(project, int) else project.pk
    return ModelArtifact.objects.filter(project_id=project_id, kind=kind, is_active=True).first()


def artifact_load(artifact: ModelArtifact | int) -> Any:
    """The artifact's model (an artifact or its id; the row is only read on this process's first load)."""
    pk = artifact if isinstance(artifact, int) else artifact.pk
    with _cache_lock:
        if pk in _cache:
            return _cache[pk]
    if isinstance(artifact, int):
        artifact = ModelArtifact.objects.get(pk=pk)
    with artifact.file.open("rb") as handle:
        model = load_model_bytes(handle.read())
    with _cache_lock:
        _cache[artifact.pk] = model
    return model
