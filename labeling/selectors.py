"""Reads: everything views and the API list or show goes through here."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from labeling.models import Budget, ImportJob, Item, Project, ReviewTask


def project_list_for(*, user) -> QuerySet[Project]:
    projects = Project.objects.all()
    if not user.is_superuser:
        projects = projects.filter(memberships__user=user)
    return projects.order_by("id")


def item_list(*, project: Project, state: str | None = None, source: str | None = None,
              label: str | None = None, batch: int | None = None) -> QuerySet[Item]:
    items = Item.objects.filter(project=project)
    if state:
        items = items.filter(state=state)
    if source:
        items = items.filter(final_source=source)
    if label:
        items = items.filter(final_label=label)
    if batch:
        items = items.filter(batch_id=batch)
    return items.order_by("id")


def import_job_visible(*, user, job_id: int) -> ImportJob | None:
    from labeling.roles import has_role
    from labeling.models import Role

    job = ImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not has_role(user, job.project, Role.ADMIN):
        return None
    return job


def project_counts(*, project: Project) -> dict[str, dict[str, int]]:
    by_state = dict(Item.objects.filter(project=project).values_list("state").annotate(n=Count("id")).order_by())
    by_source = dict(
        Item.objects.filter(project=project, final_source__isnull=False)
        .values_list("final_source").annotate(n=Count("id")).order_by()
    )
    waiting = ReviewTask.objects.filter(project=project).filter(
        Q(state=ReviewTask.State.OPEN) | Q(state=ReviewTask.State.LEASED)
    ).count()
    return {"by_state": by_state, "by_source": by_source, "review_waiting": waiting}


def budget_list(*, project: Project) -> QuerySet[Budget]:
    return Budget.objects.filter(project=project).order_by("id")


def run_progress(*, run) -> dict:
    """A run's progress and accounting, from aggregate queries (no per-item loading)."""
    from django.db.models import Sum

    from labeling.models import JudgeRun, RouterDecision, RunItem

    states = dict(RunItem.objects.filter(run=run).values_list("state").annotate(n=Count("id")).order_by())
    total = sum(states.values())
    finished = states.get(RunItem.State.DONE, 0) + states.get(RunItem.State.FAILED, 0)
    tiers = dict(
        Item.objects.filter(run_items__run=run, final_source__isnull=False)
        .values_list("final_source").annotate(n=Count("id")).order_by()
    )
    escalated = ReviewTask.objects.filter(run=run).values("item").distinct().count()
    tokens = JudgeRun.objects.filter(run=run).aggregate(
        output=Sum("output_tokens"), input=Sum("input_tokens"), latency_ms=Sum("latency_ms"),
        stopped=Count("id", filter=Q(status=JudgeRun.Status.STOPPED_EARLY)),
    )
    budget = run.budget
    return {
        "id": run.pk, "kind": run.kind, "state": run.state, "items": total, "finished": finished,
        "progress": (finished / total) if total else 1.0, "run_items": states,
        "by_tier": {"surrogate": tiers.get("surrogate", 0), "judge": tiers.get("judge", 0), "human": escalated},
        "budget": None if budget is None else {"cap": budget.cap, "spent": budget.spent, "remaining": budget.remaining},
        "judge_output_tokens": tokens["output"] or 0, "judge_input_tokens": tokens["input"] or 0,
        "judge_latency_ms": tokens["latency_ms"] or 0, "stopped_early": tokens["stopped"],
        "router_calls": RouterDecision.objects.filter(judge_run__run=run, step__gt=0).count(),
        "failed": states.get(RunItem.State.FAILED, 0),
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
    }
