"""Routing runs over a batch: create (p̂ for every item, the run's budget), claim in descending p̂
with SKIP LOCKED, pause / resume / cancel, finish."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from labeling import sql
from labeling.models import Batch, Item, ModelArtifact, Project, RoutingRun, RunItem
from labeling.services.artifacts import artifact_active, artifact_load
from labeling.services.audit import audit_event_record
from labeling.services.bulk import insert_rows
from labeling.services.ledger import budget_cap_for, budget_create
from labeling.states import ItemState

SCORE_CHUNK = 2000
MAX_ATTEMPTS = 3
EXPIRED_SCAN_SECONDS = 1.0
logger = logging.getLogger(__name__)


class RunError(ValueError):
    pass


def routing_run_create(
    *,
    project: Project,
    batch: Batch | None = None,
    items: list[int] | None = None,
    kind: str = RoutingRun.Kind.ROUTE,
    rate: float | None = None,
    cap: int | None = None,
    options: dict[str, Any] | None = None,
    seed_size: int | None = None,
    actor=None,
    start: bool = True,
) -> RoutingRun:
    """Create a run over the batch's (or the given) pending items, score them, size its budget, and start it.

    Route runs need an active scorer and router (train first); seed runs judge their items to
    completion and send all of them to humans (budget = their number).
    """
    scope = Item.objects.filter(project=project, state__in=[ItemState.PENDING])
    if batch is not None:
        scope = scope.filter(batch=batch)
    if items is not None:
        scope = scope.filter(pk__in=items)
    item_ids = list(scope.order_by("id").values_list("id", flat=True))
    if not item_ids:
        raise RunError("there are no pending items to route")
    if seed_size is not None:
        if kind != RoutingRun.Kind.SEED:
            raise RunError("seed_size applies to seed runs only")
        picked = np.random.default_rng(len(item_ids)).permutation(len(item_ids))[:seed_size]
        item_ids = sorted(item_ids[i] for i in picked)
    scorer = router = surrogate = None
    if kind == RoutingRun.Kind.ROUTE:
        scorer = artifact_active(project=project, kind=ModelArtifact.Kind.SCORER)
        router = artifact_active(project=project, kind=ModelArtifact.Kind.ROUTER)
        surrogate = artifact_active(project=project, kind=ModelArtifact.Kind.SURROGATE)
        if scorer is None or router is None:
            raise RunError("this project has no active disagreement scorer and router: run a seed run and train first")
        if rate is None and cap is None:
            rate, cap = (None, project.default_budget_cap) if project.default_budget_cap is not None else (
                project.default_budget_rate, None)
        budget_cap = budget_cap_for(items=len(item_ids), rate=rate, cap=cap)
    else:
        budget_cap = len(item_ids)
    priorities = _priorities(item_ids, scorer)
    with transaction.atomic():
        budget = budget_create(project=project, name=f"{kind} run over {len(item_ids)} items", cap=budget_cap,
                               actor=actor)
        run = RoutingRun.objects.create(
            project=project, batch=batch, kind=kind, budget=budget, budget_rate=rate, scorer=scorer, router=router,
            surrogate=surrogate, options=options or {}, created_by=actor,
        )
        insert_rows(RunItem, [{"run_id": run.pk, "item_id": item_id, "priority": float(p),
                               "state": RunItem.State.QUEUED, "attempts": 0}
                              for item_id, p in zip(item_ids, priorities)])
        if scorer is not None:
            _store_scores(run)
        audit_event_record(project=project, actor=actor, verb="run_created",
                           data={"run": run.pk, "kind": kind, "items": len(item_ids), "budget_cap": budget_cap})
    if start:
        run_start(run=run, actor=actor)
    return run


def _priorities(item_ids: list[int], scorer_artifact: ModelArtifact | None) -> np.ndarray:
    if scorer_artifact is None:
        # Seed runs have no model yet: a seeded random order (the seed set is a random sample anyway).
        return np.random.default_rng(len(item_ids)).random(len(item_ids))
    from labeling.services.pipeline import item_input

    scorer = artifact_load(scorer_artifact)
    out = np.empty(len(item_ids))
    for start in range(0, len(item_ids), SCORE_CHUNK):
        chunk = item_ids[start:start + SCORE_CHUNK]
        items = {i.pk: i for i in Item.objects.filter(pk__in=chunk).only("id", "fields", "image")}
        out[start:start + len(chunk)] = scorer.predict_disagreement([item_input(items[i]) for i in chunk])
    return out


def _store_scores(run: RoutingRun) -> None:
    """Copy each run item's p̂ to its item in one statement (bulk_update's CASE per row is quadratic)."""
    priority = RunItem.objects.filter(run=run, item=OuterRef("pk")).values("priority")[:1]
    Item.objects.filter(run_items__run=run).update(disagreement_score=Subquery(priority))


def run_start(*, run: RoutingRun, actor=None) -> RoutingRun:
    """Mark the run running and, after commit, enqueue its routing tasks: one per item left, up to
    TRACELAB_ROUTE_TASKS_PER_RUN (the most workers that route one run at once)."""
    with transaction.atomic():
        run = RoutingRun.objects.select_for_update().get(pk=run.pk)
        if run.state not in (RoutingRun.State.PENDING, RoutingRun.State.PAUSED):
            raise RunError(f"a {run.state} run cannot be started")
        run.state = RoutingRun.State.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.generation += 1  # tasks left from before a pause end instead of adding to the new ones
        run.save(update_fields=["state", "started_at", "generation"])
        audit_event_record(project=run.project_id, actor=actor, verb="run_started", data={"run": run.pk})
        # At least one: a run with nothing left is completed by the task that finds the queue empty.
        left = _unfinished(RunItem.objects.filter(run=run)).count()
        tasks = max(1, min(left, settings.TRACELAB_ROUTE_TASKS_PER_RUN))
        transaction.on_commit(lambda: _enqueue(run.pk, run.generation, tasks))
    return run


def _eager() -> bool:
    from tracelab.celery import app

    return app.conf.task_always_eager


def _enqueue(run_id: int, generation: int, count: int) -> None:
    from labeling.tasks import run_route_slice_task
    from tracelab.celery import app

    if _eager():
        run_route_slice_task.delay(run_id, generation)  # in-process, one slice routes the whole run
        return
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            run_route_slice_task.apply_async((run_id, generation), producer=producer)


def run_pause(*, run: RoutingRun, actor=None) -> RoutingRun:
    """Workers stop between steps and give their items back; queued tasks find the run paused and exit."""
    return _set_state(run, RoutingRun.State.PAUSED, {RoutingRun.State.RUNNING}, actor)


def run_resume(*, run: RoutingRun, actor=None) -> RoutingRun:
    return run_start(run=run, actor=actor)


def run_cancel(*, run: RoutingRun, actor=None) -> RoutingRun:
    return _set_state(run, RoutingRun.State.CANCELLED,
                      {RoutingRun.State.RUNNING, RoutingRun.State.PAUSED, RoutingRun.State.PENDING}, actor)


def _set_state(run: RoutingRun, state: str, allowed: set[str], actor) -> RoutingRun:
    with transaction.atomic():
        run = RoutingRun.objects.select_for_update().get(pk=run.pk)
        if run.state not in allowed:
            raise RunError(f"a {run.state} run cannot become {state}")
        run.state = state
        if state == RoutingRun.State.CANCELLED:
            run.finished_at = timezone.now()
        run.save(update_fields=["state", "finished_at"])
        audit_event_record(project=run.project_id, actor=actor, verb=f"run_{state}", data={"run": run.pk})
    return run


def run_claim_next(*, run_id: int) -> RunItem | None:
    """Lease the queued run item with the highest p̂ (or, now and then, one whose lease expired: a lost
    worker's), with its item. None when none is left or the run is not running.

    Two indexed LIMIT 1 scans rather than one with an OR: the OR makes PostgreSQL gather and sort every
    matching row (and the dead index entries of the rows already claimed) on every claim.
    """
    now = timezone.now()
    expires = now + timedelta(seconds=settings.TRACELAB_ROUTE_LEASE_SECONDS)
    claim = _claim_postgresql if connection.vendor == "postgresql" else _claim_orm
    for scan in (("expired", "queued") if _expired_scan_due(run_id) else ("queued", "expired")):
        run_item = claim(run_id, scan, now, expires)
        if run_item is not None:
            return run_item
    return None


_CLAIM_SCANS = {"queued": "ri.state = 'queued'",
                "expired": "ri.state = 'claimed' AND ri.lease_expires_at < %(now)s"}
# One statement, its own transaction: pick and lock the best row of the scan, lease it, and return it
# with its item.
_CLAIM_SQL = """
WITH picked AS (
    SELECT ri.id FROM {run_item} ri
    WHERE ri.run_id = %(run)s AND {scan}
      AND EXISTS (SELECT 1 FROM {run} r WHERE r.id = %(run)s AND r.state = 'running')
    ORDER BY ri.priority DESC, ri.id LIMIT 1 FOR UPDATE OF ri SKIP LOCKED
)
UPDATE {run_item} ri SET state = 'claimed', attempts = ri.attempts + 1, lease_expires_at = %(expires)s
FROM picked, {item} i WHERE ri.id = picked.id AND i.id = ri.item_id
RETURNING {item_columns}, ri.id, ri.priority, ri.attempts"""


def _claim_postgresql(run_id: int, scan: str, now, expires) -> RunItem | None:
    quote = connection.ops.quote_name
    statement = _CLAIM_SQL.format(
        run_item=quote(RunItem._meta.db_table), run=quote(RoutingRun._meta.db_table), item=quote(Item._meta.db_table),
        item_columns=sql.columns(Item, "i"), scan=_CLAIM_SCANS[scan])
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(statement, {"run": run_id, "now": adapt(now), "expires": adapt(expires)})
        row = cursor.fetchone()
    if row is None:
        return None
    item, run_item_id, priority, attempts = sql.instances(row, Item)
    run_item = RunItem.from_db(connection.alias, None, [
        run_item_id, run_id, item.pk, priority, RunItem.State.CLAIMED, attempts, expires, None])
    run_item.item = item
    return run_item


def _claim_orm(run_id: int, scan: str, now, expires) -> RunItem | None:
    """Elsewhere (SQLite, the embedded default) writers take turns: a read and an update in a transaction."""
    claimable = (RunItem.objects.filter(run_id=run_id, run__state=RoutingRun.State.RUNNING)
                 .order_by("-priority", "id").select_related("item"))
    if scan == "expired":
        claimable = claimable.filter(state=RunItem.State.CLAIMED, lease_expires_at__lt=now)
    else:
        claimable = claimable.filter(state=RunItem.State.QUEUED)
    with transaction.atomic():
        run_item = claimable.first()
        if run_item is None:
            return None
        run_item.state = RunItem.State.CLAIMED
        run_item.attempts += 1
        run_item.lease_expires_at = expires
        RunItem.objects.filter(pk=run_item.pk).update(state=run_item.state, attempts=run_item.attempts,
                                                      lease_expires_at=expires)
    return run_item


_expired_scans: dict[int, float] = {}


def _expired_scan_due(run_id: int) -> bool:
    """Look for expired leases before the queue at most once a second per process and run: a lease is
    only lost after TRACELAB_ROUTE_LEASE_SECONDS, so a second's delay changes nothing, while the extra
    scan on every claim would cost a third of the claim. (The queue empty, they are always looked for.)"""
    clock = time.monotonic()
    if clock - _expired_scans.get(run_id, float("-inf")) < EXPIRED_SCAN_SECONDS:
        return False
    _expired_scans[run_id] = clock
    return True


def run_route_slice(*, run_id: int, generation: int) -> dict[str, int]:
    """One worker's turn on a run: claim and route items in descending p̂ until none is left to claim or
    the slice (TRACELAB_ROUTE_SLICE_SECONDS) is used up, then hand the run on to a continuation task.
    Returns how many items ended each way.

    A task per item cost a broker round trip and a finish check per item, more than routing an item
    with a fast judge. The slice bounds a task's length, so other runs' tasks get a worker in turn and
    the broker's visibility timeout is never reached. In-process (eager) there is one worker and no one
    to take turns with: the slice is the whole run. A task of an earlier ``generation`` (enqueued before a
    pause and a resume, which enqueued tasks of its own) ends at once, so a run never has more tasks in
    flight than TRACELAB_ROUTE_TASKS_PER_RUN for long (at most one slice).
    """
    from labeling.services.pipeline import run_item_route

    if not RoutingRun.objects.filter(pk=run_id, generation=generation).exists():
        return {}

    eager = _eager()
    deadline = time.monotonic() + settings.TRACELAB_ROUTE_SLICE_SECONDS
    outcomes: dict[str, int] = {}
    while True:
        run_item = run_claim_next(run_id=run_id)
        if run_item is None:
            if not run_finish_if_done(run_id=run_id):
                _revisit_leased(run_id, generation)
            return outcomes
        try:
            outcome = run_item_route(run_item=run_item)
        except Exception as exc:  # a fault outside the judge (database, model): never leave the item stuck
            logger.exception("routing run item %s failed", run_item.pk)
            outcome = _route_error(run_item, exc)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if not eager and time.monotonic() >= deadline:
            break
    _enqueue(run_id, generation, 1)
    return outcomes


def _route_error(run_item: RunItem, exc: Exception) -> str:
    from labeling.services.items import item_fail, item_release

    item = Item.objects.get(pk=run_item.item_id)
    reason = f"internal error while routing: {type(exc).__name__}: {exc}"
    mine = RunItem.objects.filter(pk=run_item.pk, attempts=run_item.attempts, state=RunItem.State.CLAIMED)
    with transaction.atomic():
        if run_item.attempts >= MAX_ATTEMPTS:
            if not mine.update(state=RunItem.State.FAILED, lease_expires_at=None, finished_at=timezone.now()):
                return "lease_lost"
            if item.state == ItemState.ROUTING:
                item_fail(item_id=item.pk, reason=reason)
            return "failed"
        if not mine.update(state=RunItem.State.QUEUED, lease_expires_at=None):
            return "lease_lost"
        if item.state == ItemState.ROUTING:
            item_release(item_id=item.pk, reason=reason)
    return "retry"


def _revisit_leased(run_id: int, generation: int) -> None:
    """Items are still leased (perhaps by a worker that died): come back when the first lease expires."""
    from labeling.tasks import run_route_slice_task

    if _eager():
        return  # in-process there is no other worker; `run_resume` picks leftovers up
    first = (RunItem.objects.filter(run_id=run_id, run__state=RoutingRun.State.RUNNING, state=RunItem.State.CLAIMED)
             .order_by("lease_expires_at").values_list("lease_expires_at", flat=True).first())
    if first is not None:
        delay = max(1.0, (first - timezone.now()).total_seconds() + 0.5)
        run_route_slice_task.apply_async((run_id, generation), countdown=delay)


def run_finish_if_done(*, run_id: int) -> bool:
    """Complete the run once every run item is done or failed (checked without a lock first: most calls
    find items left, and the run row is every worker's to lock)."""
    if _unfinished(RunItem.objects.filter(run_id=run_id)).exists():
        return False
    with transaction.atomic():
        run = RoutingRun.objects.select_for_update().get(pk=run_id)
        if run.state != RoutingRun.State.RUNNING:
            return False
        if _unfinished(RunItem.objects.filter(run=run)).exists():
            return False
        run.state = RoutingRun.State.COMPLETED
        run.finished_at = timezone.now()
        run.save(update_fields=["state", "finished_at"])
        audit_event_record(project=run.project_id, verb="run_completed", data={"run": run.pk})
    return True


def _unfinished(run_items):
    # state IN (…) walks the claim-order index; NOT IN (done, failed) would read every run item.
    return run_items.filter(state__in=[RunItem.State.QUEUED, RunItem.State.CLAIMED])
