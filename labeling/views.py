"""HTML views: thin; each checks the project role, then reads through selectors."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import FileResponse, Http404, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, render

from labeling import selectors
from labeling.models import Item, Project, Role
from labeling.roles import RANK, role_of


def _project_or_404(request, pk: int, minimum: str) -> tuple[Project, str]:
    project = get_object_or_404(Project, pk=pk)
    role = role_of(request.user, project)
    if role is None:
        raise Http404("No such project.")
    if RANK[role] < RANK[minimum]:
        raise PermissionError(role)
    return project, role


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


@login_required
def home(request):
    projects = selectors.project_list_for(user=request.user)
    rows = [(project, role_of(request.user, project)) for project in projects]
    return render(request, "labeling/home.html", {"rows": rows})


@login_required
def project_overview(request, pk: int):
    try:
        project, role = _project_or_404(request, pk, Role.ANNOTATOR)
    except PermissionError:
        return HttpResponseForbidden("You do not have access to this page.")
    context = {"project": project, "role": role, "is_admin": RANK[role] >= RANK[Role.ADMIN]}
    context.update(selectors.project_counts(project=project))
    if context["is_admin"]:
        context["budgets"] = selectors.budget_list(project=project)
    return render(request, "labeling/project.html", context)


@login_required
def item_image(request, pk: int):
    item = get_object_or_404(Item, pk=pk)
    try:
        _project_or_404(request, item.project_id, Role.ANNOTATOR)
    except PermissionError:
        return HttpResponseForbidden("You do not have access to this image.")
    if not item.image:
        raise Http404("This item has no stored image.")
    return FileResponse(item.image.open("rb"))
