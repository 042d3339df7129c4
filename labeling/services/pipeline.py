"""Route one item through the three tiers (the product's main job).

surrogate gate (if a certified one is active) → else stream the judge through the step parser and
poll the router every Δ steps → on ESCALATE try the ledger: granted → close the stream at once and
queue a review task with priority p̂; refused → the judge finishes → judge label.

Crash safety: each phase commits on its own, and every finishing write (item transition, judge run,
run item) happens in one transaction. A worker killed mid-stream leaves the item in ``routing`` and
its run item leased; when the lease expires another worker re-routes it. A ledger charge made
before the crash is honoured (the item goes to humans without a second charge).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from labeling import sql
from labeling.models import (
    Item, JudgeFailurePolicy, JudgeRun, LedgerEntry, ModelArtifact, Project, RouterDecision, RoutingRun, RunItem, Tier,
)
from labeling.services import items as item_services
from labeling.services.artifacts import artifact_load
from labeling.services.audit import audit_event_record
from labeling.services.ledger import ledger_try_spend
from labeling.services.queue import review_task_create
from labeling.states import ItemState
from routing.judges import JudgeError, OpenAIJudge, is_label_line
from routing.steps import StepParser

logger = logging.getLogger(__name__)

RUN_STATE_CHECK_SECONDS = 0.5
RUN_CONTEXT_SECONDS = 2.0
# The app's item kinds → the judge's prompt templates.
JUDGE_PROMPT_KIND = {"image_caption": "image_caption", "text": "text_classification", "pairwise": "pairwise",
                     "generic": "generic"}


class RunInterrupted(Exception):
    """The run was paused or cancelled between steps: the item goes back to the queue."""


class LeaseLost(Exception):
    """Another worker took this run item over (our lease expired): our result must not be written."""


@dataclass
class RunModels:
    """The models a run routes with, loaded once per process (artifacts are immutable)."""

    scorer: Any = None
    design: Any = None  # routing.selection.Design: the router with its policy and deployment options
    surrogate: dict[str, Any] | None = None


@dataclass
class _Stream:
    steps: list[str] = field(default_factory=list)
    decisions: list[RouterDecision] = field(default_factory=list)
    escalation_refused: bool = False


# ---------------------------------------------------------------- inputs and clients


def item_input(item: Item) -> dict[str, Any]:
    """The item as the judge and the models see it: fields, with a stored image as its file path."""
    fields = dict(item.fields)
    if item.image:
        fields["image"] = item.image.path
    return fields


@lru_cache(maxsize=32)
def _judge_client(base_url: str, model: str) -> OpenAIJudge:
    return OpenAIJudge(model=model or None, base_url=base_url or None,
                       timeout=settings.TRACELAB_JUDGE_TIMEOUT, max_attempts=settings.TRACELAB_JUDGE_MAX_ATTEMPTS)


def judge_for(project: Project) -> OpenAIJudge:
    """The project's judge; its key comes only from the environment (OPENAI_API_KEY)."""
    return _judge_client(project.judge_base_url or settings.TRACELAB_JUDGE_BASE_URL,
                         project.judge_model or settings.TRACELAB_JUDGE_MODEL)


def run_context(run_id: int) -> RoutingRun:
    """The run with its project and budget, read at most every RUN_CONTEXT_SECONDS per process.

    They change rarely (an admin's edit of the project or the cap applies within that time); the run's
    state is checked on every claim and between steps, and the budget read here only steers whether
    the router is asked: the ledger decides every escalation.
    """
    clock = time.monotonic()
    cached = _run_contexts.get(run_id)
    if cached is None or clock - cached[0] > RUN_CONTEXT_SECONDS:
        cached = (clock, RoutingRun.objects.select_related("project", "budget").get(pk=run_id))
        _run_contexts[run_id] = cached
    return cached[1]


_run_contexts: dict[int, tuple[float, RoutingRun]] = {}


def run_models(run: RoutingRun) -> RunModels:
    return RunModels(
        scorer=artifact_load(run.scorer_id) if run.scorer_id else None,
        design=artifact_load(run.router_id) if run.router_id else None,
        surrogate=artifact_load(run.surrogate_id) if run.surrogate_id else None,
    )


# ---------------------------------------------------------------- routing one item


def run_item_route(*, run_item: RunItem) -> str:
    """Route one claimed run item (as `run_claim_next` returns it, with its item) to a terminal outcome.
    Returns the outcome's name."""
    run, item = run_context(run_item.run_id), run_item.item
    item.project = run.project  # the same row: label checks need no query of their own
    if item.state in (ItemState.AUTO_LABELED, ItemState.HUMAN_LABELED, ItemState.AWAITING_REVIEW, ItemState.FAILED):
        _run_item_done(run_item)  # finished before a crash; only the run item was left behind
        return "already_done"
    if item.state != ItemState.ROUTING:
        item_services.item_start_routing(item_id=item.pk, data={"run": run.pk, "attempt": run_item.attempts},
                                         seen=item)
    else:
        _abandon_stale_judge_runs(item)
    models = run_models(run)
    _renew_lease_if_due(run_item)  # loading models can take a while on a cold worker
    project = run.project
    try:
        if run.kind == RoutingRun.Kind.SEED:
            return _route_seed(run, run_item, item, project)
        if run_item.attempts > 1 and _already_charged(run, item):
            return _escalate(run, run_item, item, reason="escalation granted before a worker restart")
        spot_check_label = None
        if models.surrogate is not None:
            outcome, spot_check_label = _try_surrogate(run, run_item, item, models.surrogate)
            if outcome:
                return outcome
        return _route_with_judge(run, run_item, item, project, models, spot_check_label)
    except RunInterrupted as interrupted:
        _give_back(run_item, item, reason=f"run {interrupted}")
        return "interrupted"
    except LeaseLost:
        logger.warning("run item %s: lease lost to another worker; result discarded", run_item.pk)
        return "lease_lost"


def _already_charged(run: RoutingRun, item: Item) -> bool:
    return run.budget_id is not None and LedgerEntry.objects.filter(budget_id=run.budget_id, item=item).exists()


def _abandon_stale_judge_runs(item: Item) -> None:
    JudgeRun.objects.filter(item=item, status=JudgeRun.Status.STREAMING).update(
        status=JudgeRun.Status.FAILED, error="abandoned: the worker streaming it was lost", finished_at=timezone.now()
    )


def _try_surrogate(run, run_item, item, surrogate: dict[str, Any]) -> tuple[str | None, str | None]:
    """(outcome, None) when the surrogate labelled the item; (None, label) for a spot check the judge
    must confirm; (None, None) when the gate does not accept the item."""
    gate, featurizer = surrogate["gate"], surrogate["featurizer"]
    artifact = ModelArtifact.objects.get(pk=run.surrogate_id)  # fresh: another worker may have suspended it
    if not gate.certified or (artifact.metrics.get("drift") or {}).get("suspended"):
        return None, None
    accepted, labels, scores = gate.decide(featurizer.transform([item_input(item)]))
    if not bool(accepted[0]):
        return None, None
    label = str(labels[0])
    rate = float(run.options.get("spot_check_rate", surrogate.get("spot_check_rate", 0.02)))
    if np.random.default_rng([item.pk, run.pk]).random() < rate:
        return None, label
    with transaction.atomic():
        _run_item_done(run_item)
        item_services.item_label_automatically(item_id=item.pk, label=label, tier=Tier.SURROGATE, seen=item,
                                               data={"run": run.pk, "acceptor_score": float(scores[0]),
                                                     "surrogate_version": artifact.version})
    return "surrogate", None


def _route_seed(run, run_item, item, project) -> str:
    """Seed runs: the judge completes, then humans label the item (the labelled set for training)."""
    judge_run, result, stream = _stream_judge(run, item, project, router=None, p_hat=run_item.priority,
                                              run_item=run_item)
    if result is None:
        return "failed"
    _save_judge_result(judge_run, result, steps=stream.steps)
    if not ledger_try_spend(budget_id=run.budget_id, item=item, reason="seed run"):
        with transaction.atomic():  # the seed budget is its own size; refused only if an admin cut it
            _run_item_done(run_item)
            item_services.item_label_automatically(item_id=item.pk, label=result.label, tier=Tier.JUDGE, seen=item,
                                                   data={"run": run.pk, "judge_run": judge_run.pk})
        return "judge"
    return _escalate(run, run_item, item, reason="seed run: judged to completion, then human-labelled")


def _route_with_judge(run, run_item, item, project, models: RunModels, spot_check_label: str | None) -> str:
    p_hat = run_item.priority
    router = models.design.router
    start_above = models.design.escalate_at_start_above
    if start_above is not None and p_hat >= start_above and _budget_open(run):
        outcome = _escalate_before_judge(run, run_item, item, project, p_hat)
        if outcome:
            return outcome
    judge_run, result, stream = _stream_judge(run, item, project, router=router, p_hat=p_hat, run_item=run_item)
    if result is None:
        return "failed"
    if result == "escalated":
        return _escalate(run, run_item, item, reason=_reason(stream.decisions[-1], router))
    # The judge's result and the item's label commit together (one commit on the hot path). The run item's
    # fence goes first, so a spot check is counted once, by the lease holder; when the transaction fails
    # (a lost lease, a refused transition, the database), the judge run's accounting is still kept.
    try:
        with transaction.atomic():
            _run_item_done(run_item)
            _save_judge_result(judge_run, result, steps=stream.steps, decisions=stream.decisions)
            if spot_check_label is not None:
                _record_spot_check(run, item, spot_check_label, result.label)
            item_services.item_label_automatically(item_id=item.pk, label=result.label, tier=Tier.JUDGE,
                                                   seen=item, data={"run": run.pk, "judge_run": judge_run.pk})
    except Exception:
        _keep_judge_accounting(judge_run, result, stream)
        raise
    return "judge"


def _keep_judge_accounting(judge_run: JudgeRun, result, stream: _Stream) -> None:
    """Best effort, while another error is on its way up: the tokens the judge spent stay on record."""
    for decision in stream.decisions:
        decision.pk = None  # rolled back with the transaction that first wrote it, if it got that far
    try:
        _save_judge_result(judge_run, result, steps=stream.steps, decisions=stream.decisions)
    except Exception:
        logger.exception("judge run %s: its result could not be saved either", judge_run.pk)


def _escalate_before_judge(run, run_item, item, project, p_hat: float) -> str | None:
    """t = 0: p̂ alone justifies a human; the judge is never called (its tokens are all saved)."""
    if not ledger_try_spend(budget_id=run.budget_id, item=item, reason="p̂ before the judge started"):
        return None
    judge_run = JudgeRun.objects.create(
        item=item, run=run, model=judge_for(project).resolved_model, prompt_version=project.judge_prompt_version,
        status=JudgeRun.Status.STOPPED_EARLY, stopped_at_step=0, stop_reason="escalated_before_judge",
        output_tokens=0, finished_at=timezone.now(),
    )
    RouterDecision.objects.create(judge_run=judge_run, step=0, score=float(p_hat), action="escalate", granted=True,
                                  router_id=run.router_id)
    return _escalate(run, run_item, item, reason=f"escalated before the judge started (p̂={p_hat:.2f})")


def _stream_judge(run, item, project, *, router, p_hat: float, run_item: RunItem | None = None):
    """Stream the judge, polling ``router`` every Δ steps. Returns (judge_run, result | "escalated" | None, stream)."""
    judge = judge_for(project)
    judge_run = sql.insert(JudgeRun(item=item, run=run, model=judge.resolved_model,
                                    prompt_version=project.judge_prompt_version))
    parser = StepParser()
    stream_state = _Stream()
    budget_open = router is not None and _budget_open(run)
    inputs = item_input(item)
    last_check = time.monotonic()
    try:
        with judge.stream(inputs, labels=project.labels, kind=JUDGE_PROMPT_KIND[project.item_kind],
                          instructions=project.question,
                          record_id=item.external_id) as stream:
            for chunk in stream:
                for step in parser.feed(chunk):
                    if is_label_line(step):
                        continue  # the verdict line is not reasoning: offline traces never contain it
                    stream_state.steps.append(step)
                    t = len(stream_state.steps)
                    if time.monotonic() - last_check > RUN_STATE_CHECK_SECONDS:
                        last_check = time.monotonic()
                        _check_running(run, run_item)
                    if not budget_open or not router.should_poll(t):
                        continue
                    decision = _poll(router, run.router_id, judge_run, stream_state, inputs, p_hat, final=False)
                    if decision.action == "escalate":
                        if ledger_try_spend(budget_id=run.budget_id, item=item, reason=f"router at step {t}"):
                            decision.granted = True
                            stream.close()  # stops the generation: the tokens after step t are never produced
                            _save_judge_result(judge_run, stream.result, steps=stream_state.steps, stopped_at=t,
                                               stop_reason="router_escalated", decisions=stream_state.decisions)
                            return judge_run, "escalated", stream_state
                        decision.granted = False
                        budget_open = False  # the budget is spent: the judge completes, no more router calls
            stream_state.steps.extend(step for step in parser.close() if not is_label_line(step))
            result = stream.result
    except JudgeError as exc:
        _judge_failed(run, run_item, item, project, judge_run, exc, stream_state)
        return judge_run, None, stream_state
    if budget_open and router is not None and router.should_poll(len(stream_state.steps), final=True) \
            and (not stream_state.decisions or stream_state.decisions[-1].step != len(stream_state.steps)):
        decision = _poll(router, run.router_id, judge_run, stream_state, inputs, p_hat, final=True,
                         judge_label=result.label)
        if decision.action == "escalate":
            decision.granted = ledger_try_spend(budget_id=run.budget_id, item=item, reason="router at completion")
            if decision.granted:
                _save_judge_result(judge_run, result, steps=stream_state.steps, stop_reason="router_escalated_at_end",
                                   decisions=stream_state.decisions)
                return judge_run, "escalated", stream_state
    return judge_run, result, stream_state


def _poll(router, router_id, judge_run, state: _Stream, inputs, p_hat, *, final: bool,
          judge_label=None) -> RouterDecision:
    """Ask the router; the decision is kept in memory and stored with the judge run's result."""
    decision = router.decide(state.steps, inputs, float(p_hat), final=final, judge_label=judge_label)
    row = RouterDecision(judge_run=judge_run, step=len(state.steps), score=float(decision.score),
                         action=decision.action, router_id=router_id)
    state.decisions.append(row)
    return row


def _reason(decision: RouterDecision, router) -> str:
    return (f"router escalated at step {decision.step} (score {decision.score:.2f} ≥ "
            f"threshold {router.threshold_at(max(decision.step, 1)):.2f})")


def _budget_open(run: RoutingRun) -> bool:
    """As read with the run context (at most RUN_CONTEXT_SECONDS old): only steers whether the router is
    asked at all; the ledger decides every escalation under its own lock."""
    return run.budget_id is not None and run.budget.spent < run.budget.cap


def _check_running(run: RoutingRun, run_item: RunItem | None) -> None:
    state = RoutingRun.objects.filter(pk=run.pk).values_list("state", flat=True).first()
    if state != RoutingRun.State.RUNNING:
        raise RunInterrupted(state)
    if run_item is not None:
        _renew_lease_if_due(run_item)


def _renew_lease_if_due(run_item: RunItem) -> None:
    """Renew once half the lease has run out (a renewal is a write; most items finish well inside it)."""
    if run_item.lease_expires_at is None or \
            (run_item.lease_expires_at - timezone.now()).total_seconds() < settings.TRACELAB_ROUTE_LEASE_SECONDS / 2:
        _renew_lease(run_item)


def _renew_lease(run_item: RunItem) -> None:
    expires = timezone.now() + timedelta(seconds=settings.TRACELAB_ROUTE_LEASE_SECONDS)
    if not RunItem.objects.filter(pk=run_item.pk, attempts=run_item.attempts, state=RunItem.State.CLAIMED).update(
        lease_expires_at=expires
    ):
        raise LeaseLost
    run_item.lease_expires_at = expires


def _save_judge_result(judge_run: JudgeRun, result, *, steps: list[str], stopped_at: int | None = None,
                       stop_reason: str = "completed", decisions: list[RouterDecision] = ()) -> None:
    judge_run.status = JudgeRun.Status.STOPPED_EARLY if stopped_at else JudgeRun.Status.COMPLETED
    judge_run.raw_reasoning = result.text
    judge_run.steps = steps
    judge_run.label = result.label
    judge_run.input_tokens = result.input_tokens
    judge_run.output_tokens = result.output_tokens
    judge_run.output_tokens_estimated = result.output_tokens_source == "estimated"
    judge_run.latency_ms = int(result.latency_s * 1000)
    judge_run.stopped_at_step = stopped_at if stopped_at else len(steps)
    judge_run.stop_reason = stop_reason
    judge_run.finished_at = timezone.now()
    judge_run.extra = {**judge_run.extra, "attempts": result.attempts, "first_token_s": result.first_token_s}
    with transaction.atomic(savepoint=False):  # inside the caller's transaction when it has one
        sql.update(judge_run, _RESULT_FIELDS)
        RouterDecision.objects.bulk_create(decisions)


_RESULT_FIELDS = ["status", "raw_reasoning", "steps", "label", "input_tokens", "output_tokens",
                  "output_tokens_estimated", "latency_ms", "stopped_at_step", "stop_reason", "finished_at", "extra"]


def _judge_failed(run, run_item, item, project, judge_run: JudgeRun, exc: JudgeError, state: _Stream) -> None:
    reason = f"judge failed: {type(exc).__name__}: {exc}"
    judge_run.status = JudgeRun.Status.FAILED
    judge_run.error = reason
    judge_run.steps = state.steps
    judge_run.raw_reasoning = getattr(exc, "text", "") or ""
    judge_run.finished_at = timezone.now()
    with transaction.atomic():
        judge_run.save()
        RouterDecision.objects.bulk_create(state.decisions)
    if project.judge_failure_policy == JudgeFailurePolicy.HUMAN and run.budget_id \
            and ledger_try_spend(budget_id=run.budget_id, item=item, reason="judge failure"):
        _escalate(run, run_item, item, reason=reason + "; sent to humans by the project's policy")
        return
    with transaction.atomic():
        _run_item_done(run_item, failed=True)
        item_services.item_fail(item_id=item.pk, reason=reason)


def _escalate(run, run_item, item, *, reason: str) -> str:
    with transaction.atomic():
        _run_item_done(run_item)
        review_task_create(item=item, priority=run_item.priority, reason=reason, run=run)
    return "human"


def _record_spot_check(run, item, surrogate_label: str, judge_label: str) -> None:
    from routing.surrogate.drift import DriftWatch

    with transaction.atomic():
        artifact = ModelArtifact.objects.select_for_update().get(pk=run.surrogate_id)
        drift = dict(artifact.metrics.get("drift") or {})
        gate = artifact_load(artifact)["gate"]
        watch = DriftWatch(target=gate.target, delta=gate.delta)
        watch.update_many([d == 0 for d in drift.get("disagreements", [])])
        watch.update(surrogate_label == judge_label)
        drift.update({"disagreements": [int(d) for d in watch.disagreements], "suspended": bool(watch.suspended),
                      "ta_upper_bound": float(watch.ta_upper_bound)})
        artifact.metrics = {**artifact.metrics, "drift": drift}
        artifact.save(update_fields=["metrics"])
        audit_event_record(project=run.project_id, item=item, verb="surrogate_spot_check",
                           data={"agreed": surrogate_label == judge_label, "suspended": watch.suspended})


def _run_item_done(run_item: RunItem, *, failed: bool = False) -> None:
    """Fenced by the claim: only the worker holding the current lease can finish the run item."""
    state = RunItem.State.FAILED if failed else RunItem.State.DONE
    finished = RunItem._meta.get_field("finished_at").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:  # a plain statement: the ORM's update costs ten times its SQL in CPU
        cursor.execute(_RUN_ITEM_DONE_SQL, [state, finished, run_item.pk, run_item.attempts, RunItem.State.CLAIMED])
        if cursor.rowcount != 1:
            raise LeaseLost


_RUN_ITEM_DONE_SQL = (f"UPDATE {RunItem._meta.db_table} SET state = %s, finished_at = %s, lease_expires_at = NULL "
                      "WHERE id = %s AND attempts = %s AND state = %s")


def _give_back(run_item: RunItem, item: Item, *, reason: str) -> None:
    JudgeRun.objects.filter(item=item, status=JudgeRun.Status.STREAMING).update(
        status=JudgeRun.Status.FAILED, error=f"interrupted: {reason}", finished_at=timezone.now()
    )
    with transaction.atomic():
        if not RunItem.objects.filter(pk=run_item.pk, attempts=run_item.attempts, state=RunItem.State.CLAIMED).update(
            state=RunItem.State.QUEUED, lease_expires_at=None
        ):
            return  # another worker owns it now
        item_services.item_release(item_id=item.pk, reason=reason)
