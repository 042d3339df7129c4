"""Projects, memberships and batches."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from labeling.models import Batch, Membership, Project, Role
from labeling.services.audit import audit_event_record


class ProjectError(ValueError):
    pass


def _check_labels(labels: Any) -> list[str]:
    if not isinstance(labels, list) or len(labels) < 2:
        raise ProjectError("a project needs a list of at least two labels")
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise ProjectError("labels must be non-empty strings")
    cleaned = [label.strip() for label in labels]
    if len(set(cleaned)) != len(cleaned):
        raise ProjectError("labels must not repeat")
    return cleaned


@transaction.atomic
def project_create(*, name: str, question: str, labels: list[str], created_by=None, **settings: Any) -> Project:
    project = Project.objects.create(name=name, question=question, labels=_check_labels(labels),
                                     created_by=created_by, **settings)
    if created_by is not None and not created_by.is_superuser:
        Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    audit_event_record(project=project, actor=created_by, verb="project_created", data={"name": name})
    return project


@transaction.atomic
def project_update(*, project: Project, actor=None, **changes: Any) -> Project:
    if "labels" in changes:
        changes["labels"] = _check_labels(changes["labels"])
        removed = set(project.labels) - set(changes["labels"])
        if removed and project.items.filter(final_label__in=removed).exists():
            raise ProjectError(f"labels {sorted(removed)} are in use by labelled items and cannot be removed")
    for name, value in changes.items():
        setattr(project, name, value)
    project.save()
    audit_event_record(project=project, actor=actor, verb="project_updated", data={"fields": sorted(changes)})
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project with everything in it (runs first: they protect their budgets and models), then its
    running totals (keyed by the project's id, not a foreign key: the deletes above still add to them)."""
    from labeling.models import RoutingRun, Tally

    project_id = project.pk
    RoutingRun.objects.filter(project=project).delete()
    project.delete()
    Tally.objects.filter(project_id=project_id).delete()


@transaction.atomic
def membership_set(*, project: Project, user, role: str, actor=None) -> Membership:
    if role not in Role.values:
        raise ProjectError(f"unknown role {role!r}; expected one of {Role.values}")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    audit_event_record(project=project, actor=actor, verb="role_set", data={"user": user.pk, "role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user, actor=None) -> None:
    Membership.objects.filter(project=project, user=user).delete()
    audit_event_record(project=project, actor=actor, verb="role_removed", data={"user": user.pk})


def user_ensure(*, username: str, password: str, is_superuser: bool = False):
    """Create or reset a user (demo and tests)."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_superuser = user.is_staff = is_superuser
    user.save()
    return user


def batch_create(*, project: Project, name: str, created_by=None) -> Batch:
    return Batch.objects.create(project=project, name=name, created_by=created_by)
