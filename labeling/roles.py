"""Who may do what in a project. Roles rank: annotator < reviewer < admin; superusers can do everything."""

from __future__ import annotations

from labeling.models import Membership, Project, Role

RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.ADMIN: 3}


def role_of(user, project: Project | int) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return Role.ADMIN
    project_id = project if isinstance(project, int) else project.pk
    cache = getattr(user, "_tracelab_roles", None)
    if cache is None:
        cache = user._tracelab_roles = {}
    if project_id not in cache:
        cache[project_id] = (
            Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()
        )
    return cache[project_id]


def has_role(user, project: Project | int, minimum: str) -> bool:
    role = role_of(user, project)
    return role is not None and RANK[role] >= RANK[minimum]
