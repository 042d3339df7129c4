"""Who may do what in a project. Roles rank: annotator < reviewer < admin; superusers can do everything.

``row_with_role`` is the one access check of the API and the HTML views: it reads a row (a project, or a
task, item … of one) together with the caller's role in its project in one query. A stranger gets
``ProjectHidden`` (shown as 404, so that nobody learns which projects exist), a member below the needed
role ``RoleTooLow`` (403).
"""

from __future__ import annotations

from django.db.models import Model, OuterRef, QuerySet, Subquery

from labeling.models import Membership, Project, Role

RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.ADMIN: 3}


class ProjectHidden(Exception):
    """No such row, or the user has no role in its project: answer as if it did not exist."""


class RoleTooLow(Exception):
    def __init__(self, *, minimum: str, role: str):
        super().__init__(f"needs the {minimum} role; the user is {role}")
        self.minimum = minimum
        self.role = role


def _remember(user, project_id: int, role: str | None) -> None:
    """Cache the role on the user object for this request (role_of reads it)."""
    cache = getattr(user, "_tracelab_roles", None)
    if cache is None:
        cache = user._tracelab_roles = {}
    cache[project_id] = role


def role_of(user, project: Project | int) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return Role.ADMIN
    project_id = project if isinstance(project, int) else project.pk
    cache = getattr(user, "_tracelab_roles", None)
    if cache is None or project_id not in cache:
        _remember(user, project_id,
                  Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first())
    return user._tracelab_roles[project_id]


def has_role(user, project: Project | int, minimum: str) -> bool:
    role = role_of(user, project)
    return role is not None and RANK[role] >= RANK[minimum]


def row_with_role(user, queryset: QuerySet, pk: int, minimum: str, *, project_field: str = "project_id"
                  ) -> tuple[Model, str]:
    """Row ``pk`` of ``queryset`` and the user's role in its project (``project_field`` names the project's
    id on the row: ``"pk"`` for a Project), in one query; raises ProjectHidden or RoleTooLow."""
    if not getattr(user, "is_authenticated", False):
        raise ProjectHidden()
    member_role = Subquery(Membership.objects.filter(project_id=OuterRef(project_field), user_id=user.pk)
                           .values("role")[:1])
    row = queryset.annotate(member_role=member_role).filter(pk=pk).first()
    if row is None:
        raise ProjectHidden()
    role = Role.ADMIN if user.is_superuser else row.member_role
    if role is None:
        raise ProjectHidden()
    _remember(user, getattr(row, project_field), role)
    if RANK[role] < RANK[minimum]:
        raise RoleTooLow(minimum=minimum, role=role)
    return row, role


def project_with_role(user, project_id: int, minimum: str) -> tuple[Project, str]:
    """The project and the user's role in it, in one query; raises ProjectHidden or RoleTooLow."""
    return row_with_role(user, Project.objects.all(), project_id, minimum, project_field="pk")
