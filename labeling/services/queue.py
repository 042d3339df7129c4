"""The human review queue: claim (SKIP LOCKED + lease), heartbeat, submit, skip, release, review.

A claim locks the best open task with ``SELECT … FOR UPDATE SKIP LOCKED`` ordered by priority (p̂)
and writes the lease before commit, so two annotators never get the same task and an abandoned
lease returns to the queue when it expires. Submits are idempotent per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from labeling.models import HumanLabel, Item, Project, ReviewTask, RoutingRun, TaskSkip
from labeling.services.audit import audit_event_record
from labeling.services.items import item_escalate, item_label_by_human, item_send_back
from labeling.states import ItemState

LEASE_SECONDS = 300


class QueueError(Exception):
    """A queue action that cannot be done; ``code`` tells the UI which message to show."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Claim:
    task: ReviewTask
    reason: str


def review_task_create(
    *, item: Item, priority: float, reason: str, run: RoutingRun | None = None, escalate: bool = True, actor=None
) -> ReviewTask:
    """Queue an item for human review (moving it to awaiting_review when ``escalate``)."""
    with transaction.atomic():
        if escalate:
            item_escalate(item_id=item.pk, reason=reason, actor=actor)
        return ReviewTask.objects.create(
            project_id=item.project_id, item=item, run=run, priority=priority, reason=reason
        )


def _claimable(project_id: int, user, now) -> list[ReviewTask]:
    """The best open task and the best task whose lease expired, each locked with SKIP LOCKED.

    Two indexed LIMIT 1 scans instead of one query with an OR: the OR makes PostgreSQL read and sort
    every waiting task (about 1 s at a million), each branch alone walks the claim-order index.
    """
    skipped = TaskSkip.objects.filter(task=OuterRef("pk"), user=user)
    base = (
        ReviewTask.objects.filter(project_id=project_id)
        .exclude(Exists(skipped))
        .order_by("-priority", "id")
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("item")
    )
    candidates = [
        base.filter(state=ReviewTask.State.OPEN).first(),
        base.filter(state=ReviewTask.State.LEASED, lease_expires_at__lt=now).first(),
    ]
    return [task for task in candidates if task is not None]


def review_task_claim_next(*, project: Project | int, user, lease_seconds: int = LEASE_SECONDS) -> Claim | None:
    """Give ``user`` their current task, or lease the highest-priority free one. None if the queue is empty."""
    project_id = project if isinstance(project, int) else project.pk
    now = timezone.now()
    held = (
        ReviewTask.objects.filter(project_id=project_id, lease_holder=user, state=ReviewTask.State.LEASED,
                                  lease_expires_at__gte=now)
        .select_related("item")
        .order_by("claimed_at")
        .first()
    )
    if held is not None:
        return Claim(held, "your current task (lease still held)")
    with transaction.atomic():
        candidates = _claimable(project_id, user, now)
        if not candidates:
            return None
        task = min(candidates, key=lambda t: (-t.priority, t.pk))
        expired = task.state == ReviewTask.State.LEASED
        task.state = ReviewTask.State.LEASED
        task.lease_holder = user
        task.claimed_at = now
        task.lease_expires_at = now + timedelta(seconds=lease_seconds)
        task.save(update_fields=["state", "lease_holder", "claimed_at", "lease_expires_at"])
    reason = f"highest predicted disagreement p̂={task.priority:.3f}"
    if task.reason:
        reason += f"; {task.reason}"
    if expired:
        reason += "; a previous lease expired"
    return Claim(task, reason)


def _held_task(task_id: int, user, *, for_update: bool = True) -> ReviewTask:
    qs = ReviewTask.objects.select_for_update() if for_update else ReviewTask.objects
    task = qs.select_related("item", "project").filter(pk=task_id).first()
    if task is None:
        raise QueueError("not_found", "this task does not exist")
    if task.state == ReviewTask.State.DONE:
        raise QueueError("done", "this task was already completed")
    if task.state != ReviewTask.State.LEASED or task.lease_holder_id != user.pk:
        raise QueueError("taken", "this task is not leased to you (it was released or taken by someone else)")
    if task.lease_expires_at < timezone.now():
        raise QueueError("lease_expired", "your lease on this task expired; claim the next item")
    return task


def review_task_heartbeat(*, task_id: int, user, lease_seconds: int = LEASE_SECONDS) -> ReviewTask:
    with transaction.atomic():
        task = _held_task(task_id, user)
        task.lease_expires_at = timezone.now() + timedelta(seconds=lease_seconds)
        task.save(update_fields=["lease_expires_at"])
        return task


def review_task_submit(*, task_id: int, user, label: str) -> HumanLabel:
    """Record the human label. Idempotent: submitting the same task again returns the first label."""
    with transaction.atomic():
        existing = HumanLabel.objects.filter(task_id=task_id).first()
        if existing is not None:
            if existing.annotator_id == user.pk:
                return existing
            raise QueueError("done", "this task was already labelled by someone else")
        task = _held_task(task_id, user)
        if label not in task.project.labels:
            raise QueueError("bad_label", f"unknown label {label!r}; expected one of {task.project.labels}")
        now = timezone.now()
        lead_time = (now - task.claimed_at).total_seconds() if task.claimed_at else None
        human_label = HumanLabel.objects.create(
            item=task.item, task=task, annotator=user, label=label, lead_time_seconds=lead_time,
            source=HumanLabel.Source.REVIEW,
        )
        item_label_by_human(item_id=task.item_id, label=label, actor=user,
                            data={"task": task.pk, "lead_time_seconds": lead_time})
        task.state = ReviewTask.State.DONE
        task.completed_at = now
        task.save(update_fields=["state", "completed_at"])
        return human_label


def review_task_skip(*, task_id: int, user) -> None:
    """The annotator passes on this task: it goes back to the queue for everyone else."""
    with transaction.atomic():
        task = _held_task(task_id, user)
        TaskSkip.objects.get_or_create(task=task, user=user)
        _reopen(task)
        audit_event_record(project=task.project_id, item=task.item, actor=user, verb="review_skipped",
                           data={"task": task.pk})


def review_task_release(*, task_id: int, user) -> None:
    with transaction.atomic():
        _reopen(_held_task(task_id, user))


def review_task_undo(*, user, project: Project | int) -> ReviewTask | None:
    """Undo the user's last label in this project, if its item is still waiting for a reviewer:
    the label is withdrawn and the task is leased back to the user."""
    project_id = project if isinstance(project, int) else project.pk
    with transaction.atomic():
        last = (
            HumanLabel.objects.select_for_update()
            .filter(annotator=user, item__project_id=project_id, source=HumanLabel.Source.REVIEW,
                    review_status=HumanLabel.ReviewStatus.PENDING, task__isnull=False)
            .order_by("-id")
            .first()
        )
        if last is None:
            return None
        task = ReviewTask.objects.select_for_update().get(pk=last.task_id)
        if ReviewTask.objects.filter(item_id=task.item_id, state__in=["open", "leased"]).exists():
            return None
        item_send_back(item_id=task.item_id, reason="annotator undid their label", actor=user)
        last.delete()
        now = timezone.now()
        task.state = ReviewTask.State.LEASED
        task.lease_holder = user
        task.claimed_at = now
        task.lease_expires_at = now + timedelta(seconds=LEASE_SECONDS)
        task.completed_at = None
        task.save(update_fields=["state", "lease_holder", "claimed_at", "lease_expires_at", "completed_at"])
        return task


def _reopen(task: ReviewTask) -> None:
    task.state = ReviewTask.State.OPEN
    task.lease_holder = None
    task.lease_expires_at = None
    task.claimed_at = None
    task.save(update_fields=["state", "lease_holder", "lease_expires_at", "claimed_at"])


def human_label_review(*, human_label_id: int, reviewer, accept: bool) -> HumanLabel:
    """A reviewer accepts or rejects a human label; a rejected item goes back to the queue."""
    with transaction.atomic():
        human_label = (
            HumanLabel.objects.select_for_update(of=("self",)).select_related("item", "task").get(pk=human_label_id)
        )
        if human_label.review_status != HumanLabel.ReviewStatus.PENDING:
            raise QueueError("done", f"this label was already {human_label.review_status}")
        human_label.review_status = (
            HumanLabel.ReviewStatus.ACCEPTED if accept else HumanLabel.ReviewStatus.REJECTED
        )
        human_label.reviewed_by = reviewer
        human_label.save(update_fields=["review_status", "reviewed_by"])
        item = human_label.item
        if accept:
            audit_event_record(project=item.project_id, item=item, actor=reviewer, verb="label_accepted",
                               data={"human_label": human_label.pk})
            return human_label
        if item.state == ItemState.HUMAN_LABELED:
            item_send_back(item_id=item.pk, reason=f"reviewer rejected label {human_label.label!r}", actor=reviewer)
        priority = human_label.task.priority if human_label.task else 1.0
        ReviewTask.objects.create(project_id=item.project_id, item=item, priority=priority,
                                  reason=f"sent back by a reviewer (rejected {human_label.label!r})")
        return human_label
