"""Reads: everything views and the API list or show goes through here."""

from __future__ import annotations

import functools
import operator

from django.db.models import Q, QuerySet

from labeling.models import Budget, ImportJob, Item, JudgeRun, Project, ReviewTask


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


# ---------------------------------------------------------------- totals (labeling.models.Tally)


def _tallies(*, project_id: int, run_ids: list[int] | None = None, keys: tuple[str, ...] = ()) -> dict:
    """{(batch id, run id, key): [n, amount]}: the project's running totals (one indexed read of a few hundred
    rows however many items the project has), only ``run_ids`` and keys starting with ``keys`` if given."""
    from django.db.models import Sum

    from labeling.models import Tally

    rows = Tally.objects.filter(project_id=project_id)
    if run_ids is not None:
        rows = rows.filter(run_id__in=run_ids)
    if keys:
        rows = rows.filter(functools.reduce(operator.or_, (Q(key__startswith=k) for k in keys)))
    totals = rows.values_list("batch_id", "run_id", "key").annotate(n=Sum("n"), amount=Sum("amount")).order_by()
    return {(batch, run, key): [n, amount] for batch, run, key, n, amount in totals}


def _by_key(tallies: dict, prefix: str, *, run_id: int | None = None) -> dict[str, int]:
    """{what follows ``prefix`` in the key: n}, summed over batches (and runs unless ``run_id``); zeros left out."""
    out: dict[str, int] = {}
    for (_batch, run, key), (n, _amount) in tallies.items():
        if key.startswith(prefix) and (run_id is None or run == run_id):
            out[key[len(prefix):]] = out.get(key[len(prefix):], 0) + n
    return {name: n for name, n in out.items() if n}


def _total(tallies: dict, key: str, *, run_id: int | None = None) -> tuple[int, float]:
    """(n, amount) of one key, summed over batches (and runs unless ``run_id``)."""
    n, amount = 0, 0.0
    for (_batch, run, k), (dn, da) in tallies.items():
        if k == key and (run_id is None or run == run_id):
            n, amount = n + dn, amount + da
    return n, amount


def project_counts(*, project: Project) -> dict[str, dict[str, int]]:
    """Items by state and by the tier of their final label, and review tasks waiting (open or leased)."""
    tallies = _tallies(project_id=project.pk, keys=("state:", "source:", "task:"))
    tasks = _by_key(tallies, "task:")
    return {"by_state": _by_key(tallies, "state:"), "by_source": _by_key(tallies, "source:"),
            "review_waiting": tasks.get(ReviewTask.State.OPEN, 0) + tasks.get(ReviewTask.State.LEASED, 0)}


def budget_list(*, project: Project) -> QuerySet[Budget]:
    return Budget.objects.filter(project=project).order_by("id")


def run_progress(*, run) -> dict:
    """A run's progress and accounting, from its running totals (no per-item loading)."""
    return _run_progress(run, _tallies(project_id=run.project_id, run_ids=[run.pk]))


def _run_progress(run, tallies: dict) -> dict:
    from labeling.models import RunItem

    def total(key: str) -> tuple[int, float]:
        return _total(tallies, key, run_id=run.pk)

    states = _by_key(tallies, "runitem:", run_id=run.pk)
    items = sum(states.values())
    finished = states.get(RunItem.State.DONE, 0) + states.get(RunItem.State.FAILED, 0)
    # Labels this run gave (audit log); every review task it opened is one escalated item.
    tiers = _by_key(tallies, "tier:", run_id=run.pk)
    escalated = sum(_by_key(tallies, "task:", run_id=run.pk).values())
    stopped, stopped_output = total(f"judge:{JudgeRun.Status.STOPPED_EARLY}")
    completed, completed_output = total(f"judge:{JudgeRun.Status.COMPLETED}")
    output = sum(int(round(amount)) for (_b, r, key), (_n, amount) in tallies.items()
                 if r == run.pk and key.startswith("judge:"))
    # A stopped stream's full length is never seen: estimate it by the run's mean completed length.
    mean_full = completed_output / completed if completed else 0.0
    saved = max(0.0, mean_full * stopped - stopped_output)
    budget = run.budget
    return {
        "id": run.pk, "kind": run.kind, "state": run.state, "items": items, "finished": finished,
        "progress": (finished / items) if items else 1.0, "run_items": states,
        "by_tier": {"surrogate": tiers.get("surrogate", 0), "judge": tiers.get("judge", 0), "human": escalated},
        "budget": None if budget is None else {"cap": budget.cap, "spent": budget.spent, "remaining": budget.remaining},
        "judge_output_tokens": output, "judge_input_tokens": int(round(total("judge_input")[1])),
        "judge_latency_ms": int(round(total("judge_latency_ms")[1])), "stopped_early": stopped,
        "judge_output_tokens_saved_estimate": round(saved),
        "human_lead_time_seconds": round(total("human_seconds")[1], 1),
        "router_calls": total("router_call")[0], "failed": states.get(RunItem.State.FAILED, 0),
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


def judge_run_latest(*, item_id: int):
    """The item's latest judge run: the AI's answer shown beside a review task."""
    return JudgeRun.objects.filter(item_id=item_id).order_by("-id").first()


def review_task_view(*, task: ReviewTask, judge_run: JudgeRun | None) -> dict:
    """What the review page shows for a task: the item, and the judge's reasoning (``judge_run``: the
    item's latest, which a claim reads with its task) up to the step it was stopped at, numbered, with the
    escalating router decision (step and score)."""
    from labeling.models import RouterDecision

    item = task.item
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
    runs = list(project.runs.select_related("budget").order_by("-id")[:limit])
    tallies = _tallies(project_id=project.pk, run_ids=[run.pk for run in runs]) if runs else {}
    return [_run_progress(run, tallies) for run in runs]


def cost_summary(*, project: Project, price_in: float, price_out: float) -> dict:
    """Judge tokens, an estimate of the tokens early stopping saved, money at the given prices
    (per million tokens), and human minutes."""

    tallies = _tallies(project_id=project.pk, keys=("judge", "human_seconds"))
    out = sum(int(round(amount)) for (_b, _r, key), (_n, amount) in tallies.items() if key.startswith("judge:"))
    inp = int(round(_total(tallies, "judge_input")[1]))
    completed_output = _total(tallies, f"judge:{JudgeRun.Status.COMPLETED}")[1]
    completed_known = _total(tallies, f"judge_output_known:{JudgeRun.Status.COMPLETED}")[0]
    stopped_n, stopped_out = _total(tallies, f"judge:{JudgeRun.Status.STOPPED_EARLY}")
    full = completed_output / completed_known if completed_known else None  # mean completed reply
    # Saved = what a full reply would have cost (the mean completed reply) minus what the stopped ones used.
    saved = max(0, int(round(full * stopped_n - stopped_out))) if full else 0
    human_seconds = _total(tallies, "human_seconds")[1]
    return {
        "output_tokens": out, "input_tokens": inp, "tokens_saved": saved, "stopped_early": stopped_n,
        "money": (inp * price_in + out * price_out) / 1e6, "money_saved": saved * price_out / 1e6,
        "human_minutes": human_seconds / 60.0, "price_in": price_in, "price_out": price_out,
    }


def stopping_step_histogram(*, project: Project) -> list[tuple[int, int]]:
    """(step, judge runs stopped there) for runs the router stopped early."""
    steps = _by_key(_tallies(project_id=project.pk, keys=("stop_step:",)), "stop_step:")
    return sorted((int(step), n) for step, n in steps.items())


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


def batch_list(*, project: Project, limit: int = 1000) -> list:
    """The project's newest ``limit`` batches, newest first, each with ``pending``: its items waiting to be
    routed (from the running totals)."""
    from labeling.models import Batch

    batches = list(Batch.objects.filter(project=project).order_by("-id")[:limit])
    pending = {batch: n for (batch, _run, _key), (n, _amount) in
               _tallies(project_id=project.pk, run_ids=[0], keys=("state:pending",)).items()}
    for batch in batches:
        batch.pending = pending.get(batch.pk, 0)
    return batches
