"""The item state machine: one service per transition, an audit event each, invalid moves refused."""

from __future__ import annotations

import pytest

from labeling.models import AuditEvent
from labeling.services.items import (
    item_escalate, item_fail, item_label_automatically, item_label_by_human, item_release, item_start_routing,
)
from labeling.states import InvalidTransition
from tests.labeling.factories import make_items, make_project

pytestmark = pytest.mark.django_db


def test_routing_then_judge_label_records_both_transitions_in_the_audit_log():
    project = make_project()
    (item,) = make_items(project, 1)
    item_start_routing(item_id=item.pk)
    item = item_label_automatically(item_id=item.pk, label="yes", tier="judge")
    assert (item.state, item.final_label, item.final_source) == ("auto_labeled", "yes", "judge")
    events = list(AuditEvent.objects.filter(item=item).values_list("verb", "from_state", "to_state"))
    assert events == [("routing_started", "pending", "routing"), ("labeled_by_judge", "routing", "auto_labeled")]


def test_invalid_transitions_and_unknown_labels_are_refused_and_change_nothing():
    project = make_project()
    (item,) = make_items(project, 1)
    with pytest.raises(InvalidTransition):
        item_label_by_human(item_id=item.pk, label="yes")
    item_start_routing(item_id=item.pk)
    with pytest.raises(ValueError, match="unknown label"):
        item_label_automatically(item_id=item.pk, label="maybe", tier="judge")
    item.refresh_from_db()
    assert item.state == "routing" and item.final_label is None
    assert AuditEvent.objects.filter(item=item).count() == 1


def test_crash_recovery_release_and_failure_keep_a_reason():
    project = make_project()
    a, b = make_items(project, 2)
    item_start_routing(item_id=a.pk)
    assert item_release(item_id=a.pk, reason="worker lost").state == "pending"
    item_start_routing(item_id=b.pk)
    failed = item_fail(item_id=b.pk, reason="judge returned no label after 3 attempts")
    assert failed.state == "failed" and "no label" in failed.failure_reason
    item_start_routing(item_id=a.pk)
    assert item_escalate(item_id=a.pk, reason="router").state == "awaiting_review"


def test_the_audit_log_is_append_only():
    project = make_project()
    (item,) = make_items(project, 1)
    item_start_routing(item_id=item.pk)
    event = AuditEvent.objects.get(item=item)
    event.verb = "tampered"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(item=item).update(verb="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(item=item).delete()
