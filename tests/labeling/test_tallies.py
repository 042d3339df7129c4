"""The dashboard's totals (labeling.models.Tally, kept by triggers) equal counting the tables themselves,
after every kind of write: state transitions, imports, review, a real routing run, batch and project
deletion, folding, and concurrent writers on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.db.models import Avg, Count, Q, Sum

from labeling import selectors
from labeling.models import Batch, HumanLabel, Item, JudgeRun, ReviewTask, RouterDecision, RunItem, Tally
from labeling.services.items import (
    item_fail, item_label_automatically, item_release, item_retry, item_start_routing,
)
from labeling.services.projects import project_delete
from labeling.services.queue import (
    human_label_review, review_task_claim_next, review_task_create, review_task_submit, review_task_undo,
)
from tests.labeling.factories import jsonl, make_items, make_project, make_user, run_import


def counted(project) -> dict:
    """What the dashboard shows, counted from the item and task tables."""
    items = Item.objects.filter(project=project)
    return {
        "by_state": dict(items.values_list("state").annotate(n=Count("id")).order_by()),
        "by_source": dict(items.filter(final_source__isnull=False).values_list("final_source")
                          .annotate(n=Count("id")).order_by()),
        "review_waiting": ReviewTask.objects.filter(project=project, state__in=["open", "leased"]).count(),
    }


def pending_per_batch(project) -> dict:
    return {b.pk: Item.objects.filter(batch=b, state="pending").count() for b in Batch.objects.filter(project=project)}


def assert_totals(project) -> None:
    assert selectors.project_counts(project=project) == counted(project)
    assert {b.pk: b.pending for b in selectors.batch_list(project=project)} == pending_per_batch(project)


@pytest.mark.django_db
def test_counts_follow_transitions_imports_review_and_batch_deletion():
    admin, annotator = make_user("admin"), make_user("ann")
    project = make_project(members={admin: "admin", annotator: "annotator"})
    items = make_items(project, 6)
    assert selectors.project_counts(project=project) == {"by_state": {"pending": 6}, "by_source": {},
                                                         "review_waiting": 0}
    for item in items[:5]:
        item_start_routing(item_id=item.pk)
    item_label_automatically(item_id=items[0].pk, label="yes", tier="judge")
    item_label_automatically(item_id=items[1].pk, label="no", tier="surrogate")
    item_fail(item_id=items[2].pk, reason="judge failed")
    item_retry(item_id=items[2].pk)
    item_release(item_id=items[3].pk, reason="worker lost")
    review_task_create(item=items[4], priority=0.9, reason="router escalated")
    assert_totals(project)
    assert counted(project)["by_state"] == {"pending": 3, "auto_labeled": 2, "awaiting_review": 1}

    run_import(project, b"external_id,text,human_label\nx1,a,\nx2,b,\nx3,c,yes\n", "batch.csv")
    assert_totals(project)
    assert sorted(b.pending for b in selectors.batch_list(project=project)) == [2]

    claim = review_task_claim_next(project=project, user=annotator)
    assert selectors.project_counts(project=project)["review_waiting"] == 1  # leased still waits
    label = review_task_submit(task_id=claim.task.pk, user=annotator, label="yes")
    assert_totals(project)
    review_task_undo(user=annotator, project=project)
    assert_totals(project)
    label = review_task_submit(task_id=claim.task.pk, user=annotator, label="no")
    human_label_review(human_label_id=label.pk, reviewer=admin, accept=False)
    assert_totals(project)

    batch = Batch.objects.get(project=project)
    before = selectors.project_counts(project=project)
    batch.delete()  # its items stay, without a batch
    assert selectors.project_counts(project=project) == before == counted(project)
    assert selectors.batch_list(project=project) == []


@pytest.mark.django_db
def test_project_deletion_takes_its_totals_along():
    project, other = make_project(name="gone"), make_project(name="kept")
    for item in make_items(project, 3):
        item_start_routing(item_id=item.pk)
    make_items(other, 2)
    project_delete(project=project)
    assert not Tally.objects.filter(project_id=project.pk).exists()
    assert selectors.project_counts(project=other)["by_state"] == {"pending": 2}


@pytest.mark.django_db
def test_deltas_are_folded_into_one_row_per_key_and_stay_exact():
    project = make_project()
    items = make_items(project, 700)
    for item in items:
        item_start_routing(item_id=item.pk)
    for item in items[:300]:
        item_label_automatically(item_id=item.pk, label="yes", tier="judge")
    assert_totals(project)
    assert Tally.objects.order_by("-id").values_list("id", flat=True).first() > 1024  # a fold happened
    assert Tally.objects.filter(project_id=project.pk).count() < 1024  # not one row per change


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_totals_exact_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite writers take turns)")
    project = make_project()
    items = make_items(project, 480)
    errors: list[BaseException] = []

    def work(chunk):
        try:
            for k, item in enumerate(chunk):
                item_start_routing(item_id=item.pk)
                if k % 3 == 0:
                    item_label_automatically(item_id=item.pk, label="yes", tier="judge")
                elif k % 3 == 1:
                    review_task_create(item=item, priority=0.5, reason="router escalated")
                else:
                    item_fail(item_id=item.pk, reason="judge failed")
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    def importer():
        try:
            run_import(project, jsonl([{"external_id": f"imp{k}", "text": "t"} for k in range(3000)]), "more.jsonl")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(items[k::6],)) for k in range(6)]
    threads.append(threading.Thread(target=importer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert counted(project)["by_state"] == {"pending": 3000, "auto_labeled": 162, "awaiting_review": 162,
                                            "failed": 156}
    assert_totals(project)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_progress_cost_and_histogram_equal_the_tables_after_a_real_routing_run():
    from tests.labeling.pipeline_support import new_batch, trained_project
    from tests.labeling.test_pipeline import routed

    project = trained_project()
    records, _ = new_batch(project, 30)
    run, _ = routed(project, records, tokens_per_second=800)
    annotator = make_user("ann")
    from labeling.services.projects import membership_set

    membership_set(project=project, user=annotator, role="annotator")
    for _ in range(3):
        claim = review_task_claim_next(project=project, user=annotator)
        review_task_submit(task_id=claim.task.pk, user=annotator, label="yes")

    progress = selectors.run_progress(run=run)
    judge_runs = JudgeRun.objects.filter(run=run)
    stopped, completed = Q(status="stopped_early"), Q(status="completed")
    tokens = judge_runs.aggregate(out=Sum("output_tokens"), inp=Sum("input_tokens"), lat=Sum("latency_ms"),
                                  stopped=Count("id", filter=stopped), completed=Count("id", filter=completed),
                                  stopped_out=Sum("output_tokens", filter=stopped),
                                  completed_out=Sum("output_tokens", filter=completed))
    assert progress["run_items"] == dict(RunItem.objects.filter(run=run).values_list("state")
                                         .annotate(n=Count("id")).order_by())
    assert progress["finished"] == progress["items"] == 30
    tiers = dict(Item.objects.filter(run_items__run=run, final_source__in=["surrogate", "judge"])
                 .values_list("final_source").annotate(n=Count("id")).order_by())
    assert progress["by_tier"] == {"surrogate": tiers.get("surrogate", 0), "judge": tiers.get("judge", 0),
                                   "human": ReviewTask.objects.filter(run=run).values("item").distinct().count()}
    assert progress["by_tier"]["human"] > 0 and progress["by_tier"]["judge"] > 0
    assert (progress["judge_output_tokens"], progress["judge_input_tokens"], progress["judge_latency_ms"],
            progress["stopped_early"]) == (tokens["out"] or 0, tokens["inp"] or 0, tokens["lat"] or 0,
                                           tokens["stopped"])
    mean_full = (tokens["completed_out"] or 0) / tokens["completed"] if tokens["completed"] else 0.0
    assert progress["judge_output_tokens_saved_estimate"] == round(
        max(0.0, mean_full * tokens["stopped"] - (tokens["stopped_out"] or 0)))
    assert progress["router_calls"] == RouterDecision.objects.filter(judge_run__run=run, step__gt=0).count() > 0
    lead = HumanLabel.objects.filter(task__run=run).aggregate(s=Sum("lead_time_seconds"))["s"]
    assert progress["human_lead_time_seconds"] == round(lead, 1)

    cost = selectors.cost_summary(project=project, price_in=1.0, price_out=2.0)
    everything = JudgeRun.objects.filter(item__project=project)
    totals = everything.aggregate(out=Sum("output_tokens"), inp=Sum("input_tokens"),
                                  full=Avg("output_tokens", filter=completed), n=Count("id", filter=stopped),
                                  stopped_out=Sum("output_tokens", filter=stopped))
    assert (cost["output_tokens"], cost["input_tokens"], cost["stopped_early"]) == (
        totals["out"] or 0, totals["inp"] or 0, totals["n"])
    assert cost["tokens_saved"] == max(0, int(round(totals["full"] * totals["n"] - (totals["stopped_out"] or 0))))
    seconds = HumanLabel.objects.filter(item__project=project).aggregate(s=Sum("lead_time_seconds"))["s"]
    assert cost["human_minutes"] == pytest.approx(seconds / 60.0)
    histogram = list(everything.filter(status="stopped_early", stopped_at_step__isnull=False)
                     .values_list("stopped_at_step").annotate(n=Count("id")).order_by("stopped_at_step"))
    assert selectors.stopping_step_histogram(project=project) == histogram != []
    assert_totals(project)
