"""Who may do what in a project. Roles rank: annotator < reviewer < admin; superusers can do everything.

``project_with_role`` (a project) and ``row_with_role`` (a task, item … of one) are the access checks of the
API and the HTML views: each reads the row together with the caller's role in its project in one query. A
stranger gets ``ProjectHidden`` (shown as 404, so that nobody learns which projects exist), a member below
the needed role ``RoleTooLow`` (403). A service that reads the row anyway (the review-task submit) reads the
role with it and decides with ``checked_role``.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model, OuterRef, QuerySet, Subquery

from labeling.models import Membership, Project, Role
from labeling.sql import BIGINT_MAX, columns, instances

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


def row_with_role(user, queryset: QuerySet, pk: int, minimum: str) -> tuple[Model, str]:
    """Row ``pk`` of ``queryset`` (of a model with a ``project``) and the user's role in its project, in one
    query; raises ProjectHidden or RoleTooLow."""
    if not getattr(user, "is_authenticated", False):
        raise ProjectHidden()
    member_role = Subquery(Membership.objects.filter(project_id=OuterRef("project_id"), user_id=user.pk)
                           .values("role")[:1])
    row = queryset.annotate(member_role=member_role).filter(pk=pk).first()
    if row is None:
        raise ProjectHidden()
    return row, checked_role(user, row.project_id, row.member_role, minimum)


def project_with_role(user, project_id: int, minimum: str) -> tuple[Project, str]:
    """The project and the user's role in it, in one plain statement (every project-scoped request makes it;
    labeling.sql: the ORM query cost 1.4 ms of CPU); raises ProjectHidden or RoleTooLow."""
    if not getattr(user, "is_authenticated", False) or not 0 < project_id <= BIGINT_MAX:
        raise ProjectHidden()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(Project, 'p')}, m.role FROM {quote(Project._meta.db_table)} p "
                       f"LEFT JOIN {quote(Membership._meta.db_table)} m "
                       "ON m.project_id = p.id AND m.user_id = %s WHERE p.id = %s", [user.pk, project_id])
        row = cursor.fetchone()
    if row is None:
        raise ProjectHidden()
    project, member_role = instances(row, Project)
    return project, checked_role(user, project.pk, member_role, minimum)


def checked_role(user, project_id: int, member_role: str | None, minimum: str) -> str:
    """The user's role in the project (remembered for this request), or ProjectHidden / RoleTooLow, from
    ``member_role``: their Membership.role there, read by the caller with the row it guards."""
    role = Role.ADMIN if user.is_superuser else member_role
    if role is None:
        raise ProjectHidden()
    _remember(user, project_id, role)
    if RANK[role] < RANK[minimum]:
        raise RoleTooLow(minimum=minimum, role=role)
    return role
