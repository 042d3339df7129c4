"""The human review queue: claim (SKIP LOCKED + lease), heartbeat, submit, skip, release, review.

A claim locks the best open task with ``SELECT … FOR UPDATE SKIP LOCKED`` ordered by priority (p̂)
and writes the lease in the same statement (one short transaction), so two annotators never get the
same task and an abandoned lease returns to the queue when it expires. Submits are idempotent per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from labeling.models import HumanLabel, Item, JudgeRun, Membership, Project, ReviewTask, RoutingRun, TaskSkip
from labeling.roles import ProjectHidden, checked_role
from labeling.services.audit import audit_event_record
from labeling.services.items import item_escalate, item_label_by_human, item_send_back
from labeling.sql import BIGINT_MAX, columns, insert, instances
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
    how: str  # "held" (the user's current task), "open", or "expired" (its last lease ran out)
    judge_run: JudgeRun | None  # the item's latest: the AI's answer shown beside the task

    @property
    def reason(self) -> str:
        return self.reason_shown(blind=False)

    def reason_shown(self, *, blind: bool) -> str:
        """Why the task was handed out; ``blind`` leaves out why the item was escalated (blind review)."""
        if self.how == "held":
            return "your current task (lease still held)"
        reason = f"highest predicted disagreement p̂={self.task.priority:.3f}"
        if self.task.reason and not blind:
            reason += f"; {self.task.reason}"
        if self.how == "expired":
            reason += "; a previous lease expired"
        return reason


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


# The claim in SQL. ``held``: the user's own unexpired lease, if any (then nothing else is scanned). Else the
# best open task and the best task whose lease expired, each taken with its own indexed LIMIT 1 scan of the
# claim-order index (one scan with an OR makes PostgreSQL read and sort every waiting task: about 1 s at a
# million), each row locked with SKIP LOCKED, and the better of the two is ``chosen``. Raw SQL: the ORM
# cannot lock inside a CTE, and on PostgreSQL the whole claim is then one statement (one round trip).
_CLAIM_CTES = """
WITH held AS (
    SELECT t.id FROM {task} t
    WHERE t.project_id = %(project)s AND t.lease_holder_id = %(user)s AND t.state = 'leased'
      AND t.lease_expires_at >= %(now)s
    ORDER BY t.claimed_at LIMIT 1
), open_task AS (
    SELECT t.id, t.priority, 'open' AS how FROM {task} t
    WHERE t.project_id = %(project)s AND t.state = 'open' AND NOT EXISTS (SELECT 1 FROM held)
      AND NOT EXISTS (SELECT 1 FROM {skip} s WHERE s.task_id = t.id AND s.user_id = %(user)s)
    ORDER BY t.priority DESC, t.id LIMIT 1 {lock}
), expired_task AS (
    SELECT t.id, t.priority, 'expired' AS how FROM {task} t
    WHERE t.project_id = %(project)s AND t.state = 'leased' AND t.lease_expires_at < %(now)s
      AND NOT EXISTS (SELECT 1 FROM held)
      AND NOT EXISTS (SELECT 1 FROM {skip} s WHERE s.task_id = t.id AND s.user_id = %(user)s)
    ORDER BY t.priority DESC, t.id LIMIT 1 {lock}
), chosen AS (
    SELECT c.id, c.how FROM (SELECT * FROM open_task UNION ALL SELECT * FROM expired_task) c
    ORDER BY c.priority DESC, c.id LIMIT 1
)"""
_LEASE_SET = "state = 'leased', lease_holder_id = %(user)s, claimed_at = %(now)s, lease_expires_at = %(expires)s"


def _hold_or_lease(*, project_id: int, user, now, lease_seconds: int) -> tuple[int, str] | None:
    """The user's current task, or the best claimable one leased to them, in one short transaction:
    (task id, "held" | "open" | "expired"), or None when nothing is claimable."""
    task_table = connection.ops.quote_name(ReviewTask._meta.db_table)
    ctes = _CLAIM_CTES.format(
        task=task_table, skip=connection.ops.quote_name(TaskSkip._meta.db_table),
        lock="FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else "",
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = {"project": project_id, "user": user.pk, "now": adapt(now),
              "expires": adapt(now + timedelta(seconds=lease_seconds))}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(ctes + f""", leased AS (
                UPDATE {task_table} t SET {_LEASE_SET} FROM chosen WHERE t.id = chosen.id RETURNING t.id, chosen.how
            ) SELECT id, 'held' FROM held UNION ALL SELECT id, how FROM leased""", params)
            return cursor.fetchone()
        # SQLite has no UPDATE in a WITH; its writers take turns, so a transaction does the same.
        with transaction.atomic():
            cursor.execute(ctes + " SELECT id, 'held' FROM held UNION ALL SELECT id, how FROM chosen", params)
            row = cursor.fetchone()
            if row is not None and row[1] != "held":
                cursor.execute(f"UPDATE {task_table} SET {_LEASE_SET} WHERE id = %(task)s", {**params, "task": row[0]})
        return row


def _task_with_item_and_judge_run(task_id: int) -> tuple[ReviewTask, JudgeRun | None]:
    """The task with its item and the item's latest judge run, in one plain statement (labeling.sql: the
    ORM spent 2 ms of CPU per claim building the two queries this replaces)."""
    quote = connection.ops.quote_name
    tasks, items, judge_runs = (quote(model._meta.db_table) for model in (ReviewTask, Item, JudgeRun))
    sql = (f"SELECT {columns(ReviewTask, 't')}, {columns(Item, 'i')}, {columns(JudgeRun, 'j')} "
           f"FROM {tasks} t JOIN {items} i ON i.id = t.item_id "
           f"LEFT JOIN {judge_runs} j ON j.id = (SELECT r.id FROM {judge_runs} r WHERE r.item_id = t.item_id "
           "ORDER BY r.id DESC LIMIT 1) WHERE t.id = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id])
        task, item, judge_run = instances(cursor.fetchone(), ReviewTask, Item, JudgeRun)
    task.item = item
    return task, judge_run


def review_task_claim_next(*, project: Project | int, user, lease_seconds: int = LEASE_SECONDS) -> Claim | None:
    """Give ``user`` their current task, or lease the highest-priority free one. None if the queue is empty.

    The task comes with its item (and its project when ``project`` is one) and the item's latest judge run."""
    project_id = project if isinstance(project, int) else project.pk
    found = _hold_or_lease(project_id=project_id, user=user, now=timezone.now(), lease_seconds=lease_seconds)
    if found is None:
        return None
    task_id, how = found
    task, judge_run = _task_with_item_and_judge_run(task_id)
    if not isinstance(project, int):
        task.project = project
    return Claim(task, how, judge_run)


def _locked_task(task_id: int, *, related: tuple[str, ...] = ()) -> ReviewTask:
    """The task, its row locked (the ``related`` rows are read with it, not locked)."""
    task = ReviewTask.objects.select_for_update(of=("self",)).select_related(*related).filter(pk=task_id).first()
    if task is None:
        raise QueueError("not_found", "this task does not exist")
    return task


def _check_held(task: ReviewTask, user) -> None:
    if task.state == ReviewTask.State.DONE:
        raise QueueError("done", "this task was already completed")
    if task.state != ReviewTask.State.LEASED or task.lease_holder_id != user.pk:
        raise QueueError("taken", "this task is not leased to you (it was released or taken by someone else)")
    if task.lease_expires_at < timezone.now():
        raise QueueError("lease_expired", "your lease on this task expired; claim the next item")


def _held_task(task_id: int, user, *, related: tuple[str, ...] = ()) -> ReviewTask:
    task = _locked_task(task_id, related=related)
    _check_held(task, user)
    return task


def review_task_heartbeat(*, task_id: int, user, lease_seconds: int = LEASE_SECONDS) -> ReviewTask:
    with transaction.atomic():
        task = _held_task(task_id, user)
        task.lease_expires_at = timezone.now() + timedelta(seconds=lease_seconds)
        task.save(update_fields=["lease_expires_at"])
        return task


def _task_to_submit(task_id: int, user, *, minimum_role: str | None) -> ReviewTask:
    """The task, its row locked, with its item and the item's project, and the user's role in the task's
    project checked when ``minimum_role`` is given (roles.ProjectHidden / RoleTooLow), in one plain
    statement (labeling.sql: the view's role check and the locked read were two ORM queries, 3.4 ms of CPU;
    this is 0.4 ms). A user without a role there matches no row, so their request locks nothing."""
    if not 0 < task_id <= BIGINT_MAX:  # not a key: no such task (the ORM answered so too)
        row = None
    else:
        quote = connection.ops.quote_name
        tasks, items, projects, memberships = (quote(model._meta.db_table)
                                               for model in (ReviewTask, Item, Project, Membership))
        members_only = minimum_role is not None and not user.is_superuser
        sql = (f"SELECT {columns(ReviewTask, 't')}, {columns(Item, 'i')}, {columns(Project, 'p')}, m.role "
               f"FROM {tasks} t JOIN {items} i ON i.id = t.item_id JOIN {projects} p ON p.id = t.project_id "
               f"LEFT JOIN {memberships} m ON m.project_id = t.project_id AND m.user_id = %s "
               f"WHERE t.id = %s{' AND m.role IS NOT NULL' if members_only else ''}"
               f"{' FOR UPDATE OF t' if connection.features.has_select_for_update_of else ''}")
        with connection.cursor() as cursor:
            cursor.execute(sql, [user.pk, task_id])
            row = cursor.fetchone()
    if row is None:
        if minimum_role is not None:
            raise ProjectHidden()
        raise QueueError("not_found", "this task does not exist")
    task, item, project, member_role = instances(row, ReviewTask, Item, Project)
    if minimum_role is not None:
        checked_role(user, task.project_id, member_role, minimum_role)
    item.project = project
    task.item = item
    return task


def review_task_submit(*, task_id: int, user, label: str, minimum_role: str | None = None) -> HumanLabel:
    """Record the human label. Idempotent: submitting the same task again returns the first label.

    ``minimum_role``: the role the user needs in the task's project (the API's access check, made on the
    task's own read, before anything is written). The task is read once, locked, with its item and project;
    the item's state change is then a conditional UPDATE with its audit event (it re-reads the item, locked,
    only if the item moved meanwhile), and the label is written with the task closed."""
    with transaction.atomic():
        task = _task_to_submit(task_id, user, minimum_role=minimum_role)
        if task.state == ReviewTask.State.DONE:
            # Read after the lock, not joined into the read above: a concurrent submit of the same task
            # (a double click) committed its label while this one waited, and a joined row would predate it.
            existing = HumanLabel.objects.filter(task_id=task_id).first()
            if existing is not None and existing.annotator_id == user.pk:
                existing.annotator = user
                return existing
            raise QueueError("done", "this task was already labelled by someone else" if existing is not None
                             else "this task was already completed")
        _check_held(task, user)
        labels = task.item.project.labels
        if label not in labels:
            raise QueueError("bad_label", f"unknown label {label!r}; expected one of {labels}")
        now = timezone.now()
        lead_time = (now - task.claimed_at).total_seconds() if task.claimed_at else None
        item_label_by_human(item_id=task.item_id, label=label, actor=user, seen=task.item,
                            data={"task": task.pk, "lead_time_seconds": lead_time})
        human_label = HumanLabel(item=task.item, task=task, annotator=user, label=label, created_at=now,
                                 lead_time_seconds=lead_time, source=HumanLabel.Source.REVIEW)
        task.state = ReviewTask.State.DONE
        task.completed_at = now
        _label_and_close(human_label, task)
        return human_label


def _label_and_close(human_label: HumanLabel, task: ReviewTask) -> None:
    """Insert ``human_label`` and mark ``task`` done (its state and completed_at as set): on PostgreSQL one
    statement (the ORM's INSERT and UPDATE cost a submit ~1 ms of CPU)."""
    if connection.vendor != "postgresql":
        human_label.save(force_insert=True)
        task.save(update_fields=["state", "completed_at"])
        return
    close = (f"closed AS (UPDATE {connection.ops.quote_name(ReviewTask._meta.db_table)} "
             "SET state = %s, completed_at = %s WHERE id = %s)")
    insert(human_label, with_cte=(close, [task.state, connection.ops.adapt_datetimefield_value(task.completed_at),
                                          task.pk]))


def review_task_skip(*, task_id: int, user) -> None:
    """The annotator passes on this task: it goes back to the queue for everyone else."""
    with transaction.atomic():
        task = _held_task(task_id, user, related=("item",))
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
