"""Project-scoped access for API views: 404 for strangers (no existence leak), 403 for a low role."""

from __future__ import annotations

from django.db.models import Model, QuerySet
from rest_framework.exceptions import APIException, NotFound, PermissionDenied

from labeling.models import Project
from labeling.roles import ProjectHidden, RoleTooLow, project_with_role, row_with_role


def refusal(exc: ProjectHidden | RoleTooLow, *, noun: str) -> APIException:
    """What the client is told when a role check refuses it: 404 for a stranger, 403 for a low role."""
    if isinstance(exc, RoleTooLow):
        return PermissionDenied(f"This needs the {exc.minimum} role in this project; you are {exc.role}.")
    return NotFound(f"No such {noun}.")


def project_for(request, project_id: int, minimum: str) -> Project:
    try:
        return project_with_role(request.user, project_id, minimum)[0]
    except (ProjectHidden, RoleTooLow) as exc:
        raise refusal(exc, noun="project") from None


def row_for(request, queryset: QuerySet, pk: int, minimum: str, *, noun: str) -> Model:
    """A row of a project (a task, an item …) with the caller's role checked, in one query."""
    try:
        return row_with_role(request.user, queryset, pk, minimum)[0]
    except (ProjectHidden, RoleTooLow) as exc:
        raise refusal(exc, noun=noun) from None
