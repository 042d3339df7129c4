"""HTML views: thin. Each checks the project role (404 for strangers, 403 for a too-low role), then calls
one service or reads through selectors. Chart geometry for the dashboard's inline SVG is at the end."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling import selectors
from labeling.forms import (
    BudgetCapForm, ImportForm, PriceForm, ProjectCreateForm, ProjectSettingsForm, RollbackForm, RunStartForm,
)
from labeling.models import Budget, HumanLabel, ImportJob, Item, ModelArtifact, Project, Role, RoutingRun
from labeling.roles import RANK, ProjectHidden, RoleTooLow, project_with_role, role_of
from labeling.services import artifacts, exports, imports, ledger, projects, queue, runs

QUEUE_MESSAGES = {
    "taken": "That item was released or taken by someone else, so your label was not saved.",
    "lease_expired": "Your lease on that item expired and it went back to the queue; your label was not saved.",
    "done": "That item was already labelled.",
    "bad_label": "That label is not one of this project's labels.",
    "not_found": "That task no longer exists.",
}


def _project_for(request, pk: int, minimum: str) -> tuple[Project, str]:
    try:
        return project_with_role(request.user, pk, minimum)
    except ProjectHidden:
        raise Http404("No such project.") from None
    except RoleTooLow as exc:
        message = f"This page needs the {exc.minimum} role in this project; you are {exc.role}."
        raise PermissionDenied(message) from None


def project_view(minimum: str):
    """Log-in required; resolves ``pk`` to the project (404/403) and passes ``project`` and ``role``."""
    def decorate(view):
        @login_required
        @wraps(view)
        def wrapped(request, pk: int, *args, **kwargs):
            project, role = _project_for(request, pk, minimum)
            return view(request, project, role, *args, **kwargs)
        return wrapped
    return decorate


def _is_fragment(request) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


@login_required
def home(request):
    projects_ = selectors.project_list_for(user=request.user)
    rows = [(project, role_of(request.user, project)) for project in projects_]
    return render(request, "labeling/home.html", {"rows": rows, "can_create": request.user.is_staff})


@login_required
def project_create(request):
    if not request.user.is_staff:
        raise PermissionDenied("Only staff users can create projects.")
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = projects.project_create(created_by=request.user, **form.cleaned_data)
        except projects.ProjectError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Project “{project.name}” created. Import items next.")
            return redirect("imports", project.pk)
    return render(request, "labeling/project_form.html", {"form": form})


# ---------------------------------------------------------------- annotators


@project_view(Role.ANNOTATOR)
def project_overview(request, project, role):
    """The queue page: how many items wait, my labels today, my median time per item."""
    waiting, capped = selectors.review_waiting_bounded(project=project)
    context = {"project": project, "role": role, "waiting": waiting, "waiting_capped": capped,
               "is_admin": RANK[role] >= RANK[Role.ADMIN], "is_reviewer": RANK[role] >= RANK[Role.REVIEWER],
               **selectors.annotator_stats(user=request.user, project=project)}
    return render(request, "labeling/queue.html", context)


def _task_response(request, project, *, claim=None, task=None, notice: str = "", notice_kind: str = "info"):
    """The review area for ``task`` (or the next claim); a fragment for fetch(), else the whole page."""
    if task is None and claim is None:
        claim = queue.review_task_claim_next(project=project, user=request.user)
    if claim is not None:
        task = claim.task
    waiting, capped = selectors.review_waiting_bounded(project=project)
    role = role_of(request.user, project)
    context = {"project": project, "role": role, "notice": notice,
               # blind review keeps annotators from anchoring on the judge; reviewers still see it (as the API)
               "blind": project.blind_review and role == Role.ANNOTATOR,
               "notice_kind": notice_kind, "waiting": waiting, "waiting_capped": capped,
               "claim_reason": claim.reason if claim else "", "label_keys": _label_keys(project.labels)}
    if task is not None:
        judge_run = claim.judge_run if claim is not None else selectors.judge_run_latest(item_id=task.item_id)
        context.update(selectors.review_task_view(task=task, judge_run=judge_run))
    template = "labeling/_task.html" if _is_fragment(request) else "labeling/review.html"
    return render(request, template, context)


def _label_keys(labels: list[str]) -> list[tuple[str, str]]:
    """(label, its key): 1–9 by order; y / n as well for yes/no projects."""
    keys = []
    for index, label in enumerate(labels):
        key = str(index + 1) if index < 9 else ""
        if {x.lower() for x in labels} == {"yes", "no"}:
            key += label.lower()[0]
        keys.append((label, key))
    return keys


@project_view(Role.ANNOTATOR)
@require_GET
def review(request, project, role):
    return _task_response(request, project)


def _after_action(request, project, notice: str, notice_kind: str = "info"):
    if _is_fragment(request):
        return _task_response(request, project, notice=notice, notice_kind=notice_kind)
    if notice:
        (messages.error if notice_kind == "error" else messages.info)(request, notice)
    return redirect("review", project.pk)


@project_view(Role.ANNOTATOR)
@require_POST
def review_label(request, project, role, task_id: int):
    label = request.POST.get("label", "")
    try:  # the role is checked again in the task's own project, not only in the one the URL names
        queue.review_task_submit(task_id=task_id, user=request.user, label=label, minimum_role=Role.ANNOTATOR)
    except (ProjectHidden, RoleTooLow):
        raise Http404("no such task") from None
    except queue.QueueError as exc:
        return _after_action(request, project, QUEUE_MESSAGES.get(exc.code, str(exc)), "error")
    return _after_action(request, project, f"Saved “{label}”.")


@project_view(Role.ANNOTATOR)
@require_POST
def review_skip(request, project, role, task_id: int):
    try:
        queue.review_task_skip(task_id=task_id, user=request.user)
    except queue.QueueError as exc:
        return _after_action(request, project, QUEUE_MESSAGES.get(exc.code, str(exc)), "error")
    return _after_action(request, project, "Skipped; the item stays in the queue for others.")


@project_view(Role.ANNOTATOR)
@require_POST
def review_undo(request, project, role):
    task = queue.review_task_undo(user=request.user, project=project)
    if task is None:
        return _after_action(request, project, "Nothing to undo: no label of yours is still waiting for a reviewer.",
                             "error")
    if _is_fragment(request):
        return _task_response(request, project, task=task, notice="Your last label was withdrawn; label it again.")
    messages.info(request, "Your last label was withdrawn; label it again.")
    return redirect("review", project.pk)


@project_view(Role.ANNOTATOR)
@require_POST
def review_heartbeat(request, project, role, task_id: int):
    try:
        task = queue.review_task_heartbeat(task_id=task_id, user=request.user)
    except queue.QueueError as exc:
        return JsonResponse({"ok": False, "code": exc.code, "message": QUEUE_MESSAGES.get(exc.code, str(exc))},
                            status=409)
    return JsonResponse({"ok": True, "lease_expires_at": task.lease_expires_at.isoformat()})


# ---------------------------------------------------------------- reviewers


@project_view(Role.REVIEWER)
def review_sample(request, project, role):
    sample = selectors.review_sample(project=project, reviewer=request.user)
    return render(request, "labeling/review_sample.html", {"project": project, "role": role, "sample": sample})


@project_view(Role.REVIEWER)
@require_POST
def review_verdict(request, project, role, label_id: int):
    human_label = get_object_or_404(HumanLabel.objects.select_related("item"), pk=label_id, item__project=project)
    if human_label.annotator_id == request.user.pk and RANK[role] < RANK[Role.ADMIN]:
        raise PermissionDenied("Reviewers cannot review their own labels.")
    accept = request.POST.get("verdict") == "accept"
    try:
        queue.human_label_review(human_label_id=human_label.pk, reviewer=request.user, accept=accept)
    except queue.QueueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Label on {human_label.item.external_id} "
                                  f"{'accepted' if accept else 'rejected; the item is back in the queue'}.")
    return redirect("review-sample", project.pk)


# ---------------------------------------------------------------- admins


@project_view(Role.ADMIN)
def project_settings(request, project, role):
    form = ProjectSettingsForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        changes = {name: value for name, value in form.cleaned_data.items() if value != getattr(project, name)}
        try:
            projects.project_update(project=project, actor=request.user, **changes)
        except projects.ProjectError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Settings saved." if changes else "Nothing changed.")
            return redirect("project-settings", project.pk)
    return render(request, "labeling/project_form.html", {"project": project, "role": role, "form": form})


@project_view(Role.ADMIN)
def dashboard(request, project, role):
    prices = PriceForm(request.GET or None)
    price_in, price_out = prices.prices()
    models_ = selectors.active_artifacts(project=project)
    router_metrics = models_["router"].metrics if models_["router"] else {}
    manifest = models_["surrogate"].metrics.get("manifest", {}) if models_["surrogate"] else {}
    counts = selectors.project_counts(project=project)
    histogram = selectors.stopping_step_histogram(project=project)
    context = {
        "project": project, "role": role, "runs": selectors.run_list(project=project),
        "budgets": selectors.budget_list(project=project), "cap_form": BudgetCapForm(), "price_form": prices,
        "cost": selectors.cost_summary(project=project, price_in=price_in, price_out=price_out),
        "counts": counts, "tier_total": sum(counts["by_source"].values()) or 1,
        "models": models_, "router_metrics": router_metrics, "manifest": manifest,
        "selection_rows": _selection_rows(router_metrics.get("selection_table") or []),
        "accuracy_chart": _accuracy_chart(router_metrics, project.default_budget_rate),
        "frontier_chart": _frontier_chart(manifest.get("frontier") or []),
        "histogram": histogram, "histogram_chart": _histogram_chart(histogram),
    }
    return render(request, "labeling/dashboard.html", context)


@project_view(Role.ADMIN)
@require_GET
def dashboard_runs(request, project, role):
    return render(request, "labeling/_runs.html", {"project": project, "runs": selectors.run_list(project=project)})


@project_view(Role.ADMIN)
def run_start(request, project, role):
    form = RunStartForm(request.POST or None, batches=selectors.batch_list(project=project))
    if request.method == "POST" and form.is_valid():
        batch = project.batches.filter(pk=form.cleaned_data["batch"]).first() if form.cleaned_data["batch"] else None
        try:
            run = runs.routing_run_create(project=project, batch=batch, actor=request.user, **form.service_kwargs())
        except (runs.RunError, ledger.BudgetError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Run {run.pk} started.")
            return redirect("dashboard", project.pk)
    return render(request, "labeling/run_form.html", {"project": project, "role": role, "form": form})


@project_view(Role.ADMIN)
@require_POST
def run_action(request, project, role, run_id: int, action: str):
    run = get_object_or_404(RoutingRun, pk=run_id, project=project)
    service = {"pause": runs.run_pause, "resume": runs.run_resume, "cancel": runs.run_cancel}.get(action)
    if service is None:
        raise Http404("No such action.")
    try:
        service(run=run, actor=request.user)
    except runs.RunError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk}: {action} done.")
    return redirect("dashboard", project.pk)


@project_view(Role.ADMIN)
@require_POST
def budget_cap(request, project, role, budget_id: int):
    budget = get_object_or_404(Budget, pk=budget_id, project=project)
    form = BudgetCapForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Budget “{budget.name}”: {form.errors['cap'][0]}")
        return redirect("dashboard", project.pk)
    try:
        ledger.budget_set_cap(budget=budget, cap=form.cleaned_data["cap"], actor=request.user)
    except ledger.BudgetError as exc:
        messages.error(request, f"Budget “{budget.name}”: {exc}")
    else:
        messages.success(request, f"Budget “{budget.name}” now capped at {form.cleaned_data['cap']}.")
    return redirect("dashboard", project.pk)


@project_view(Role.ADMIN)
def model_list(request, project, role):
    return render(request, "labeling/models.html", {
        "project": project, "role": role, "artifacts": selectors.artifact_list(project=project),
        "kinds": ModelArtifact.Kind.choices,
    })


@project_view(Role.ADMIN)
@require_POST
def model_train(request, project, role):
    from labeling.tasks import models_train_task

    try:
        models_train_task.delay(project.pk, request.user.pk)
    except ValueError as exc:
        messages.error(request, f"Training failed: {exc}")
    else:
        messages.success(request, "Training queued (it runs on a worker; refresh to see the new versions).")
    return redirect("models", project.pk)


@project_view(Role.ADMIN)
@require_POST
def model_activate(request, project, role, artifact_id: int):
    artifact = get_object_or_404(ModelArtifact, pk=artifact_id, project=project)
    artifacts.artifact_activate(artifact=artifact, actor=request.user)
    messages.success(request, f"{artifact.get_kind_display()} v{artifact.version} is now active.")
    return redirect("models", project.pk)


@project_view(Role.ADMIN)
@require_POST
def model_rollback(request, project, role):
    form = RollbackForm(request.POST)
    if not form.is_valid():
        raise Http404("No such model kind.")
    artifact = artifacts.artifact_rollback(project=project, kind=form.cleaned_data["kind"], actor=request.user)
    if artifact is None:
        messages.error(request, "There is no earlier version to roll back to.")
    else:
        messages.success(request, f"Rolled back: {artifact.get_kind_display()} v{artifact.version} is active.")
    return redirect("models", project.pk)


@project_view(Role.ADMIN)
def import_list(request, project, role):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = imports.import_job_create(project=project, uploaded=upload, filename=upload.name,
                                            user=request.user, fmt=form.cleaned_data["format"] or None,
                                            on_error=form.cleaned_data["on_error"])
        except ValueError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("import-detail", project.pk, job.pk)
    return render(request, "labeling/imports.html", {
        "project": project, "role": role, "form": form, "jobs": selectors.import_job_list(project=project),
        "export_formats": exports.EXPORT_FORMATS,
    })


@project_view(Role.ADMIN)
def import_detail(request, project, role, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    return render(request, "labeling/import_detail.html", {"project": project, "role": role, "job": job})


@project_view(Role.ADMIN)
@require_GET
def export(request, project, role, fmt: str):
    if fmt not in exports.EXPORT_FORMATS:
        raise Http404("No such export format.")
    response = StreamingHttpResponse(exports.export_stream(project=project, fmt=fmt),
                                     content_type=exports.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="project-{project.pk}.{exports.EXTENSIONS[fmt]}"'
    return response


@login_required
def item_image(request, pk: int):
    item = get_object_or_404(Item, pk=pk)
    _project_for(request, item.project_id, Role.ANNOTATOR)
    if not item.image:
        raise Http404("This item has no stored image.")
    return FileResponse(item.image.open("rb"))


# ---------------------------------------------------------------- chart geometry (inline SVG)

W, H, PAD = 480, 280, 40


def _x(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return round(PAD + (v - lo) / ((hi - lo) or 1) * (W - 2 * PAD), 1)


def _y(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return round(H - PAD - (v - lo) / ((hi - lo) or 1) * (H - 2 * PAD), 1)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [round(lo + (hi - lo) * k / (n - 1), 3) for k in range(n)]


def _selection_rows(table: list[dict], limit: int = 15) -> list[dict]:
    """The selected design first, then the best feasible ones by (loss, effort)."""
    ranked = sorted(table, key=lambda r: (not r.get("selected"), not r.get("feasible", True),
                                          r.get("loss", 1.0), r.get("effort", 1.0)))
    return ranked[:limit]


def _accuracy_chart(metrics: dict, rho: float) -> dict | None:
    """Accuracy (1 − loss, humans taken as right) vs escalation rate on the router's dev split: every
    candidate design, the selected one, and the random / oracle escalation baselines; ρ band shaded."""
    table = metrics.get("selection_table") or []
    error = metrics.get("judge_error_rate_dev")
    if not table or error is None:
        return None
    lo = max(0.0, min([1 - error] + [1 - r["loss"] for r in table]) - 0.02)
    seen, points, selected = set(), [], None
    for row in table:
        key = (round(row["escalation_rate"], 3), round(row["loss"], 3))
        point = {"x": _x(row["escalation_rate"]), "y": _y(1 - row["loss"], lo), "esc": row["escalation_rate"],
                 "acc": 1 - row["loss"]}
        if row.get("selected"):
            selected = point
        if key not in seen:
            seen.add(key)
            points.append(point)
    steps = [k / 20 for k in range(21)]
    random_line = " ".join(f"{_x(e)},{_y(1 - error * (1 - e), lo)}" for e in steps)
    oracle_line = " ".join(f"{_x(e)},{_y(1 - max(0.0, error - e), lo)}" for e in sorted({*steps, min(error, 1.0)}))
    return {"w": W, "h": H, "pad": PAD, "points": points, "selected": selected, "random": random_line,
            "oracle": oracle_line, "band_x": _x(0), "band_w": round(_x(rho) - _x(0), 1), "rho": rho,
            "x_ticks": [(t, _x(t)) for t in _ticks(0, 1)], "y_ticks": [(t, _y(t, lo)) for t in _ticks(lo, 1)],
            "x0": PAD, "x1": W - PAD, "y0": H - PAD, "y1": PAD, "error": error}


def _frontier_chart(frontier: list[dict]) -> dict | None:
    """Coverage vs target TA of the surrogate gate per target, with the certified lower bound."""
    rows = [r for r in frontier if r.get("target") is not None]
    if not rows:
        return None
    targets = [r["target"] for r in rows]
    lo, hi = max(0.0, min(targets) - 0.02), min(1.0, max(targets) + 0.02)
    points = [{"x": _x(r.get("coverage") or 0.0), "y": _y(r["target"], lo, hi), "certified": r.get("certified"),
               "target": r["target"], "coverage": r.get("coverage") or 0.0,
               "bound_y": _y(r["lower_bound"], lo, hi) if r.get("lower_bound") is not None
               and lo <= r["lower_bound"] <= hi else None} for r in rows]
    return {"w": W, "h": H, "points": points, "x_ticks": [(t, _x(t)) for t in _ticks(0, 1)],
            "y_ticks": [(t, _y(t, lo, hi)) for t in _ticks(lo, hi)], "x0": PAD, "x1": W - PAD,
            "y0": H - PAD, "y1": PAD}


def _histogram_chart(histogram: list[tuple[int, int]]) -> dict | None:
    if not histogram:
        return None
    top = max(n for _, n in histogram)
    last = max(step for step, _ in histogram)
    width = (W - 2 * PAD) / (last + 1)
    bars = [{"step": step, "n": n, "x": round(PAD + step * width + 1, 1), "w": round(max(width - 2, 1), 1),
             "y": _y(n, 0, top), "h": round(_y(0, 0, top) - _y(n, 0, top), 1)} for step, n in histogram]
    return {"w": W, "h": H, "bars": bars, "x0": PAD, "x1": W - PAD, "y0": H - PAD, "y1": PAD, "top": top,
            "label_y": H - PAD + 14}
