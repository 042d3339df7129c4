"""The review queue: ordered by p̂, never the same task twice, leases expire, submits are idempotent."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from labeling.models import HumanLabel, Item, ReviewTask
from labeling.services.items import item_start_routing
from labeling.services.queue import (
    QueueError, human_label_review, review_task_claim_next, review_task_create, review_task_heartbeat,
    review_task_release, review_task_skip, review_task_submit, review_task_undo,
)
from tests.labeling.factories import make_items, make_project, make_user


def queue_items(project, priorities):
    items = make_items(project, len(priorities))
    tasks = []
    for item, p in zip(items, priorities):
        item_start_routing(item_id=item.pk)
        tasks.append(review_task_create(item=item, priority=p, reason="router escalated at step 2"))
    return tasks


@pytest.mark.django_db
def test_claims_come_in_descending_disagreement_with_the_reason_and_the_current_task_is_kept():
    project = make_project()
    ann = make_user("ann")
    queue_items(project, [0.2, 0.9, 0.5])
    claim = review_task_claim_next(project=project, user=ann)
    assert claim.task.priority == 0.9 and "p̂=0.900" in claim.reason and "step 2" in claim.reason
    again = review_task_claim_next(project=project, user=ann)
    assert again.task.pk == claim.task.pk and "lease still held" in again.reason


@pytest.mark.django_db
def test_submit_labels_the_item_once_even_when_repeated():
    project = make_project()
    ann = make_user("ann")
    queue_items(project, [0.5])
    task = review_task_claim_next(project=project, user=ann).task
    first = review_task_submit(task_id=task.pk, user=ann, label="no")
    second = review_task_submit(task_id=task.pk, user=ann, label="no")
    assert first.pk == second.pk and HumanLabel.objects.count() == 1
    item = Item.objects.get(pk=task.item_id)
    assert (item.state, item.final_label, item.final_source) == ("human_labeled", "no", "human")
    assert first.lead_time_seconds is not None and first.lead_time_seconds >= 0
    assert review_task_claim_next(project=project, user=ann) is None


@pytest.mark.django_db
def test_an_expired_lease_returns_the_task_to_others_and_the_late_submit_is_refused():
    project = make_project()
    ann, bob = make_user("ann"), make_user("bob")
    queue_items(project, [0.5])
    task = review_task_claim_next(project=project, user=ann).task
    assert review_task_claim_next(project=project, user=bob) is None
    ReviewTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    claim = review_task_claim_next(project=project, user=bob)
    assert claim.task.pk == task.pk and "expired" in claim.reason
    with pytest.raises(QueueError) as refused:
        review_task_submit(task_id=task.pk, user=ann, label="yes")
    assert refused.value.code == "taken"
    with pytest.raises(QueueError):
        review_task_heartbeat(task_id=task.pk, user=ann)


@pytest.mark.django_db
def test_skip_hands_the_task_to_someone_else_and_release_reopens_it():
    project = make_project()
    ann, bob = make_user("ann"), make_user("bob")
    queue_items(project, [0.9, 0.1])
    top = review_task_claim_next(project=project, user=ann).task
    review_task_skip(task_id=top.pk, user=ann)
    assert review_task_claim_next(project=project, user=ann).task.priority == 0.1
    assert review_task_claim_next(project=project, user=bob).task.pk == top.pk
    review_task_release(task_id=top.pk, user=bob)
    assert ReviewTask.objects.get(pk=top.pk).state == "open"


@pytest.mark.django_db
def test_undo_withdraws_the_last_label_and_gives_the_task_back():
    project = make_project()
    ann = make_user("ann")
    queue_items(project, [0.5])
    task = review_task_claim_next(project=project, user=ann).task
    review_task_submit(task_id=task.pk, user=ann, label="yes")
    undone = review_task_undo(user=ann, project=project)
    assert undone.pk == task.pk and undone.state == "leased" and undone.lease_holder_id == ann.pk
    item = Item.objects.get(pk=task.item_id)
    assert item.state == "awaiting_review" and item.final_label is None
    assert review_task_submit(task_id=task.pk, user=ann, label="no").label == "no"


@pytest.mark.django_db
def test_a_rejected_label_sends_the_item_back_to_the_queue():
    project = make_project()
    ann, rev = make_user("ann"), make_user("rev")
    queue_items(project, [0.7])
    task = review_task_claim_next(project=project, user=ann).task
    label = review_task_submit(task_id=task.pk, user=ann, label="yes")
    human_label_review(human_label_id=label.pk, reviewer=rev, accept=False)
    item = Item.objects.get(pk=task.item_id)
    assert item.state == "awaiting_review" and item.final_label is None
    again = review_task_claim_next(project=project, user=ann)
    assert again.task.item_id == item.pk and "sent back" in again.reason
    with pytest.raises(QueueError):
        human_label_review(human_label_id=label.pk, reviewer=rev, accept=True)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_get_the_same_task_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL (SQLite ignores it)")
    project = make_project()
    users = [make_user(f"u{k}") for k in range(8)]
    queue_items(project, [k / 100 for k in range(40)])
    claimed: list[int] = []
    lock = threading.Lock()

    def annotate(user):
        try:
            while True:
                claim = review_task_claim_next(project=project, user=user)
                if claim is None:
                    return
                review_task_submit(task_id=claim.task.pk, user=user, label="yes")
                with lock:
                    claimed.append(claim.task.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=annotate, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == 40
    assert HumanLabel.objects.count() == 40
