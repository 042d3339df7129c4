"""Project-scoped access for API views: 404 for strangers (no existence leak), 403 for a low role."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework.exceptions import NotFound, PermissionDenied

from labeling.models import Project
from labeling.roles import RANK, role_of


def project_for(request, project_id: int, minimum: str) -> Project:
    project = get_object_or_404(Project, pk=project_id)
    role = role_of(request.user, project)
    if role is None:
        raise NotFound("No such project.")
    if RANK[role] < RANK[minimum]:
        raise PermissionDenied(f"This needs the {minimum} role in this project; you are {role}.")
    return project
