"""Reads: everything views and the API list or show goes through here."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from labeling.models import Budget, HumanLabel, ImportJob, Item, Project, ReviewTask


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
        stopped_output=Sum("output_tokens", filter=Q(status=JudgeRun.Status.STOPPED_EARLY)),
        completed=Count("id", filter=Q(status=JudgeRun.Status.COMPLETED)),
        completed_output=Sum("output_tokens", filter=Q(status=JudgeRun.Status.COMPLETED)),
    )
    # A stopped stream's full length is never seen: estimate it by the run's mean completed length.
    mean_full = (tokens["completed_output"] or 0) / tokens["completed"] if tokens["completed"] else 0.0
    saved = max(0.0, mean_full * tokens["stopped"] - (tokens["stopped_output"] or 0))
    lead_time = HumanLabel.objects.filter(task__run=run).aggregate(s=Sum("lead_time_seconds"))["s"] or 0.0
    budget = run.budget
    return {
        "id": run.pk, "kind": run.kind, "state": run.state, "items": total, "finished": finished,
        "progress": (finished / total) if total else 1.0, "run_items": states,
        "by_tier": {"surrogate": tiers.get("surrogate", 0), "judge": tiers.get("judge", 0), "human": escalated},
        "budget": None if budget is None else {"cap": budget.cap, "spent": budget.spent, "remaining": budget.remaining},
        "judge_output_tokens": tokens["output"] or 0, "judge_input_tokens": tokens["input"] or 0,
        "judge_latency_ms": tokens["latency_ms"] or 0, "stopped_early": tokens["stopped"],
        "judge_output_tokens_saved_estimate": round(saved), "human_lead_time_seconds": round(lead_time, 1),
        "router_calls": RouterDecision.objects.filter(judge_run__run=run, step__gt=0).count(),
        "failed": states.get(RunItem.State.FAILED, 0),
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
    }


# ---------------------------------------------------------------- browser UI reads (review, queue, dashboard)

REVIEW_COUNT_CAP = 1000


def review_waiting_bounded(*, project: Project | int, cap: int = REVIEW_COUNT_CAP) -> tuple[int, bool]:
    """(open or leased review tasks, whether the count hit ``cap``): a LIMITed count on the claim index,
    so the review page stays cheap however long the queue is."""
    project_id = project if isinstance(project, int) else project.pk
    # order_by() drops the model's default ordering, which would sort every waiting task before the LIMIT.
    n = (ReviewTask.objects.filter(project_id=project_id, state__in=[ReviewTask.State.OPEN, ReviewTask.State.LEASED])
         .order_by().values("id")[:cap].count())
    return n, n >= cap


def annotator_stats(*, user, project: Project | int, recent: int = 200) -> dict:
    """My labels today in this project and my median lead time over my last ``recent`` labels."""
    import statistics

    from django.utils import timezone

    from labeling.models import HumanLabel

    project_id = project if isinstance(project, int) else project.pk
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = HumanLabel.objects.filter(annotator=user, item__project_id=project_id, source=HumanLabel.Source.REVIEW)
    today = mine.filter(created_at__gte=start).count()
    times = [t for t in mine.order_by("-id").values_list("lead_time_seconds", flat=True)[:recent] if t is not None]
    return {"labels_today": today, "median_seconds": statistics.median(times) if times else None,
            "median_over": len(times)}


def review_task_view(*, task: ReviewTask) -> dict:
    """What the review page shows for a task: the item, and the judge's reasoning up to the step it was
    stopped at, numbered, with the escalating router decision (step and score)."""
    from labeling.models import JudgeRun, RouterDecision

    item = task.item
    judge_run = JudgeRun.objects.filter(item_id=item.pk).order_by("-id").first()
    steps: list[dict] = []
    escalation = None
    if judge_run is not None:
        decisions = list(RouterDecision.objects.filter(judge_run=judge_run).order_by("step"))
        escalation = next((d for d in reversed(decisions)
                           if d.action == RouterDecision.Action.ESCALATE and d.granted), None)
        shown = judge_run.steps or []
        if judge_run.stopped_at_step is not None:
            shown = shown[:judge_run.stopped_at_step]
        scores = {d.step: d.score for d in decisions}
        steps = [{"n": k, "text": text, "score": scores.get(k),
                  "escalated": escalation is not None and escalation.step == k}
                 for k, text in enumerate(shown, start=1)]
    text_fields = [(name, value) for name, value in (item.fields or {}).items()
                   if name != "image" and isinstance(value, (str, int, float))]
    return {"task": task, "item": item, "judge_run": judge_run, "steps": steps, "escalation": escalation,
            "text_fields": text_fields, "has_image": bool(item.image)}


def review_sample(*, project: Project, reviewer, limit: int = 50) -> QuerySet:
    """Human labels waiting for a reviewer's verdict, oldest first (not the reviewer's own, unless admin)."""
    from labeling.models import HumanLabel, Role
    from labeling.roles import has_role

    labels = HumanLabel.objects.filter(item__project=project, source=HumanLabel.Source.REVIEW,
                                       review_status=HumanLabel.ReviewStatus.PENDING)
    if not has_role(reviewer, project, Role.ADMIN):
        labels = labels.exclude(annotator=reviewer)
    return labels.select_related("item", "annotator").order_by("id")[:limit]


def run_list(*, project: Project, limit: int = 20) -> list[dict]:
    runs = project.runs.select_related("budget").order_by("-id")[:limit]
    return [run_progress(run=run) for run in runs]


def cost_summary(*, project: Project, price_in: float, price_out: float) -> dict:
    """Judge tokens, an estimate of the tokens early stopping saved, money at the given prices
    (per million tokens), and human minutes."""
    from django.db.models import Avg, Sum

    from labeling.models import HumanLabel, JudgeRun

    completed, stopped = Q(status=JudgeRun.Status.COMPLETED), Q(status=JudgeRun.Status.STOPPED_EARLY)
    totals = JudgeRun.objects.filter(item__project=project).aggregate(  # one pass over the project's judge runs
        out=Sum("output_tokens"), inp=Sum("input_tokens"), full_avg=Avg("output_tokens", filter=completed),
        stopped_n=Count("id", filter=stopped), stopped_out=Sum("output_tokens", filter=stopped),
    )
    full = totals["full_avg"]
    # Saved = what a full reply would have cost (the mean completed reply) minus what the stopped ones used.
    saved = max(0, int(round(full * totals["stopped_n"] - (totals["stopped_out"] or 0)))) if full else 0
    human_seconds = HumanLabel.objects.filter(item__project=project).aggregate(s=Sum("lead_time_seconds"))["s"] or 0
    out, inp = totals["out"] or 0, totals["inp"] or 0
    return {
        "output_tokens": out, "input_tokens": inp, "tokens_saved": saved, "stopped_early": totals["stopped_n"],
        "money": (inp * price_in + out * price_out) / 1e6, "money_saved": saved * price_out / 1e6,
        "human_minutes": human_seconds / 60.0, "price_in": price_in, "price_out": price_out,
    }


def stopping_step_histogram(*, project: Project) -> list[tuple[int, int]]:
    """(step, judge runs stopped there) for runs the router stopped early."""
    from labeling.models import JudgeRun

    rows = (JudgeRun.objects.filter(item__project=project, status=JudgeRun.Status.STOPPED_EARLY,
                                    stopped_at_step__isnull=False)
            .values_list("stopped_at_step").annotate(n=Count("id")).order_by("stopped_at_step"))
    return [(int(step), int(n)) for step, n in rows]


def active_artifacts(*, project: Project) -> dict:
    from labeling.models import ModelArtifact

    active = {a.kind: a for a in ModelArtifact.objects.filter(project=project, is_active=True)}
    latest_surrogate = (ModelArtifact.objects.filter(project=project, kind=ModelArtifact.Kind.SURROGATE)
                        .order_by("-version").first())
    return {"scorer": active.get("scorer"), "router": active.get("router"),
            "surrogate": active.get("surrogate") or latest_surrogate}


def artifact_list(*, project: Project) -> QuerySet:
    from labeling.models import ModelArtifact

    return ModelArtifact.objects.filter(project=project).order_by("kind", "-version")


def import_job_list(*, project: Project, limit: int = 20) -> QuerySet[ImportJob]:
    return ImportJob.objects.filter(project=project).order_by("-id")[:limit]


def batch_list(*, project: Project) -> QuerySet:
    from labeling.models import Batch

    return Batch.objects.filter(project=project).annotate(
        pending=Count("items", filter=Q(items__state="pending"))).order_by("-id")
