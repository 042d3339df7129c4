"""The live pipeline in-process: the real SDK judge over loopback (replay server), the trained router,
the ledger and the review queue."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from labeling.models import Item, JudgeRun, LedgerEntry, ReviewTask, RouterDecision, RoutingRun, RunItem
from labeling.selectors import run_progress
from labeling.services.pipeline import run_item_route
from labeling.services.runs import (
    RunError, routing_run_create, run_claim_next, run_pause, run_resume, run_route_slice,
)
from routing.replay_server import Fault, ReplayServer
from tests.labeling.pipeline_support import new_batch, trained_project

pytestmark = pytest.mark.django_db(transaction=True)




def routed(project, records, *, rate=0.3, faults=None, tokens_per_second=0, **project_changes):
    with ReplayServer(records, tokens_per_second=tokens_per_second, tokens_per_chunk=4, faults=faults) as server:
        project.judge_base_url = server.base_url
        for key, value in project_changes.items():
            setattr(project, key, value)
        project.save()
        run = routing_run_create(project=project, kind="route", rate=rate)
        server.wait_idle()
        stats = server.stats()
    run.refresh_from_db()
    return run, stats


def test_a_batch_is_routed_end_to_end_with_early_stops_within_budget():
    project = trained_project()
    records, _ = new_batch(project, 40)
    run, stats = routed(project, records, tokens_per_second=800)
    assert run.state == "completed"
    progress = run_progress(run=run)
    assert progress["finished"] == 40 and progress["failed"] == 0
    budget = run.budget
    assert budget.cap == 12 and budget.spent <= 12
    assert LedgerEntry.objects.filter(budget=budget).count() == budget.spent
    escalated = ReviewTask.objects.filter(run=run)
    assert escalated.count() == budget.spent > 0
    # The router reads the hedges of wrong judgements: escalations catch judge errors.
    wrong = {r.id for r in records if r.judge_label != r.human_label}
    caught = {t.item.external_id for t in escalated.select_related("item")}
    assert len(caught & wrong) / len(caught) > 0.6
    stopped = JudgeRun.objects.filter(run=run, status="stopped_early", stopped_at_step__gt=0)
    assert stopped.exists()
    for judge_run in stopped:
        decisions = list(judge_run.decisions.order_by("step"))
        assert decisions[-1].action == "escalate" and decisions[-1].granted is True
        assert decisions[-1].step == judge_run.stopped_at_step < 5  # stopped before the judge finished
    # Items the judge finished carry the judge's label; nothing is left half-done.
    assert Item.objects.filter(run_items__run=run, state="routing").count() == 0
    judge_items = Item.objects.filter(run_items__run=run, final_source="judge")
    assert judge_items.count() == 40 - escalated.count()
    # Closing the stream really stopped the judge: the server never sent the rest of those traces.
    assert stats["disconnected"] >= 1 and stats["tokens_not_sent"] > 0


def test_every_router_poll_is_stored_with_its_score():
    project = trained_project()
    records, _ = new_batch(project, 10)
    run, _ = routed(project, records, rate=0.0)
    assert run.budget.cap == 0
    # With no budget the router is never consulted (Algorithm 1): the judge completes every item.
    assert RouterDecision.objects.filter(judge_run__run=run).count() == 0
    assert JudgeRun.objects.filter(run=run, status="completed").count() == 10
    run2_records, _ = new_batch(project, 10, start=2000)
    run2, _ = routed(project, run2_records, rate=1.0)
    for judge_run in JudgeRun.objects.filter(run=run2).exclude(stopped_at_step=0):
        steps = list(judge_run.decisions.values_list("step", flat=True))
        assert steps == sorted(steps) and len(steps) >= 1


@pytest.mark.parametrize("fault, policy, expected_state, reason", [
    (Fault("garbage"), "fail", "failed", "no valid `Label: <label>` line"),
    (Fault("server_error", status=503), "fail", "failed", "JudgeServerError"),
    (Fault("garbage"), "human", "awaiting_review", None),
])
def test_judge_failures_are_retried_then_failed_or_sent_to_humans_never_silently_labelled(
    fault, policy, expected_state, reason
):
    project = trained_project()
    records, _ = new_batch(project, 3)
    bad = records[0].id
    run, _ = routed(project, records, rate=1.0, faults={bad: [fault] * 6}, judge_failure_policy=policy)
    item = Item.objects.get(project=project, external_id=bad)
    assert item.state == expected_state and item.final_label is None
    if reason:
        assert reason in item.failure_reason
    judge_run = JudgeRun.objects.get(item=item, run=run)
    assert judge_run.status == "failed" and judge_run.error
    assert run.state == "completed"


def test_rate_limits_with_retry_after_are_waited_out():
    project = trained_project()
    records, _ = new_batch(project, 2)
    run, stats = routed(project, records, rate=0.0, faults={records[0].id: [Fault("rate_limit", retry_after=0.2)] * 2})
    item = Item.objects.get(project=project, external_id=records[0].id)
    assert item.state == "auto_labeled"
    assert JudgeRun.objects.get(item=item).extra["attempts"] == 3


def test_pause_gives_items_back_and_resume_finishes_the_run():
    project = trained_project()
    records, batch = new_batch(project, 6)
    with ReplayServer(records, tokens_per_second=0) as server:
        project.judge_base_url = server.base_url
        project.save()
        run = routing_run_create(project=project, kind="route", rate=0.3, start=False)
        with pytest.raises(RunError):
            run_pause(run=run)
        run_resume(run=run)
    run.refresh_from_db()
    assert run.state == "completed" and run_progress(run=run)["finished"] == 6


def test_a_route_run_needs_trained_models():
    from labeling.services.projects import project_create
    from tests.labeling.factories import make_items

    project = project_create(name="untrained", question="q", labels=["yes", "no"], item_kind="text")
    make_items(project, 3)
    with pytest.raises(RunError, match="train first"):
        routing_run_create(project=project, kind="route", rate=0.3)
    assert RoutingRun.objects.filter(project=project).count() == 0


def test_the_commands_train_seed_and_route(capsys):
    import json

    from django.core.management import call_command

    project = trained_project()
    records, _ = new_batch(project, 8)
    call_command("train_models", project.pk, verbosity=0)
    assert '"router_version": 2' in capsys.readouterr().out
    with ReplayServer(records, tokens_per_second=0) as server:
        project.judge_base_url = server.base_url
        project.save()
        call_command("seed_run", project.pk, "--items", "3", verbosity=0)
        seeded = json.loads(capsys.readouterr().out)
        assert seeded["items"] == 3 and seeded["by_tier"]["human"] == 3
        call_command("route_batch", project.pk, "--budget", "0.2", verbosity=0)
    routed_run = json.loads(capsys.readouterr().out)
    assert routed_run["items"] == 5 and routed_run["progress"] == 1.0 and routed_run["budget"]["cap"] == 1


@contextmanager
def running_run(n: int, **run_changes):
    """A route run over n items, marked running with no task enqueued (the test drives the worker), and no
    budget: the judge labels every item it completes."""
    project = trained_project()
    records, batch = new_batch(project, n)
    with ReplayServer(records, tokens_per_second=0, tokens_per_chunk=4) as server:
        project.judge_base_url = server.base_url
        project.save()
        run = routing_run_create(project=project, batch=batch, kind="route", rate=0.0, start=False)
        RoutingRun.objects.filter(pk=run.pk).update(state="running", **run_changes)
        yield run


def test_a_worker_that_lost_its_lease_keeps_the_judge_accounting_but_labels_nothing():
    with running_run(3) as run:
        mine = run_claim_next(run_id=run.pk)
        # Meanwhile our lease expired and another worker claimed the run item (its attempt number moved on).
        RunItem.objects.filter(pk=mine.pk).update(attempts=mine.attempts + 1)
        assert run_item_route(run_item=mine) == "lease_lost"
    item = Item.objects.get(pk=mine.item_id)
    assert item.state == "routing" and item.final_label is None  # the other worker's to finish
    judge_run = JudgeRun.objects.get(item=item, run=run)
    assert judge_run.status == "completed" and judge_run.output_tokens > 0  # the tokens we spent are on record
    assert RunItem.objects.get(pk=mine.pk).state == "claimed"


def test_a_routing_task_from_before_a_resume_ends_without_routing():
    with running_run(4, generation=2) as run:  # paused and resumed since the stale task was enqueued
        assert run_route_slice(run_id=run.pk, generation=1) == {}
        assert RunItem.objects.filter(run=run, state="queued").count() == 4
        assert run_route_slice(run_id=run.pk, generation=2) == {"judge": 4}
    run.refresh_from_db()
    assert run.state == "completed"
