"""Project-scoped access for API views: 404 for strangers (no existence leak), 403 for a low role."""

from __future__ import annotations

from django.db.models import Model, QuerySet
from rest_framework.exceptions import NotFound, PermissionDenied

from labeling.models import Project
from labeling.roles import ProjectHidden, RoleTooLow, project_with_role, row_with_role


def project_for(request, project_id: int, minimum: str) -> Project:
    try:
        return project_with_role(request.user, project_id, minimum)[0]
    except ProjectHidden:
        raise NotFound("No such project.") from None
    except RoleTooLow as exc:
        raise PermissionDenied(f"This needs the {exc.minimum} role in this project; you are {exc.role}.") from None


def row_for(request, queryset: QuerySet, pk: int, minimum: str, *, noun: str) -> Model:
    """A row of a project (a task, an item …) with the caller's role checked, in one query."""
    try:
        return row_with_role(request.user, queryset, pk, minimum)[0]
    except ProjectHidden:
        raise NotFound(f"No such {noun}.") from None
    except RoleTooLow as exc:
        raise PermissionDenied(f"This needs the {exc.minimum} role in this project; you are {exc.role}.") from None
