"""Item state changes: one service per transition, each in one transaction with an audit event.

Every service locks the item row (or updates it only if still in the state the caller saw), checks the
transition against ``labeling.states`` and refuses an invalid one with ``InvalidTransition``, so
concurrent workers can never move an item twice.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from labeling.models import AuditEvent, Item, Tier
from labeling.services.audit import audit_event_record
from labeling.states import TRANSITIONS, ItemState, check_transition


def _transition(
    *, item_id: int, to_state: str, verb: str, actor=None, data: dict[str, Any] | None = None,
    label: str | None = None, seen: Item | None = None, **changes: Any
) -> Item:
    """Lock the item, check the transition (and ``label`` against the project's labels), write, audit.

    ``seen`` is the item as the caller read it (its project loaded): if the item is still in that
    state, one conditional UPDATE replaces the locked read (the pipeline's hot path); if it moved
    meanwhile, the locked read decides as usual.
    """
    if seen is not None and to_state in TRANSITIONS.get(seen.state, ()):
        if label is not None:
            _check_label(seen, label)
        from_state, now = seen.state, timezone.now()
        if _move_if_unchanged(seen, from_state=from_state, to_state=to_state, now=now, changes=changes, verb=verb,
                              actor=actor, data=data):
            seen.updated_at = now
            _apply(seen, to_state, changes)
            return seen
    item = Item.objects.select_for_update(of=("self",)).select_related("project").get(pk=item_id)
    from_state = item.state
    if label is not None:
        _check_label(item, label)
    check_transition(from_state, to_state)
    _apply(item, to_state, changes)
    item.save(update_fields=["state", "updated_at", *changes])
    audit_event_record(
        project=item.project_id, item=item, actor=actor, verb=verb, from_state=from_state, to_state=to_state, data=data
    )
    return item


def _move_if_unchanged(item: Item, *, from_state: str, to_state: str, now, changes: dict[str, Any], verb: str,
                       actor, data: dict[str, Any] | None) -> bool:
    """Move the item if it is still in ``from_state`` and append the audit event. On PostgreSQL that is one
    statement (the ORM's UPDATE and INSERT cost ten times their SQL in CPU on the routing hot path)."""
    if connection.vendor != "postgresql":
        if not Item.objects.filter(pk=item.pk, state=from_state).update(state=to_state, updated_at=now, **changes):
            return False
        audit_event_record(project=item.project_id, item=item, actor=actor, verb=verb, from_state=from_state,
                           to_state=to_state, data=data)
        return True
    field = Item._meta.get_field
    values = [field(name).get_db_prep_save(value, connection) for name, value in changes.items()]
    stamp = field("updated_at").get_db_prep_save(now, connection)
    event = AuditEvent._meta.get_field("data").get_db_prep_save(data or {}, connection)
    with connection.cursor() as cursor:
        cursor.execute(_move_sql(tuple(changes)), [
            to_state, stamp, *values, item.pk, from_state,
            actor.pk if actor is not None else None, verb, from_state, to_state, event, stamp,
        ])
        return cursor.rowcount == 1


@cache
def _move_sql(changed: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(Item._meta.get_field(name).column)} = %s" for name in ("state", "updated_at", *changed))
    return f"""
WITH moved AS (
    UPDATE {quote(Item._meta.db_table)} SET {sets} WHERE id = %s AND state = %s RETURNING id, project_id
)
INSERT INTO {quote(AuditEvent._meta.db_table)} (project_id, item_id, actor_id, verb, from_state, to_state, data,
                                                created_at)
SELECT project_id, id, %s, %s, %s, %s, %s, %s FROM moved"""


def _apply(item: Item, to_state: str, changes: dict[str, Any]) -> None:
    item.state = to_state
    for name, value in changes.items():
        setattr(item, name, value)


@transaction.atomic
def item_start_routing(*, item_id: int, actor=None, data: dict[str, Any] | None = None, seen: Item | None = None
                       ) -> Item:
    return _transition(item_id=item_id, to_state=ItemState.ROUTING, verb="routing_started", actor=actor, data=data,
                       seen=seen, failure_reason="")


@transaction.atomic
def item_release(*, item_id: int, reason: str, actor=None) -> Item:
    """A routing attempt gave up (crash recovery, cancellation): the item is pending again."""
    return _transition(item_id=item_id, to_state=ItemState.PENDING, verb="routing_released", actor=actor,
                       data={"reason": reason})


@transaction.atomic
def item_label_automatically(
    *, item_id: int, label: str, tier: str, actor=None, data: dict[str, Any] | None = None, seen: Item | None = None
) -> Item:
    """The surrogate or the judge labelled the item."""
    if tier not in (Tier.SURROGATE, Tier.JUDGE):
        raise ValueError(f"automatic labels come from the surrogate or the judge, not {tier!r}")
    return _transition(item_id=item_id, to_state=ItemState.AUTO_LABELED, verb=f"labeled_by_{tier}", actor=actor,
                       data={"label": label, **(data or {})}, label=label, seen=seen, final_label=label,
                       final_source=tier)


@transaction.atomic
def item_escalate(*, item_id: int, reason: str, actor=None, data: dict[str, Any] | None = None) -> Item:
    """The item goes to the human review queue (the caller creates its review task)."""
    return _transition(item_id=item_id, to_state=ItemState.AWAITING_REVIEW, verb="escalated", actor=actor,
                       data={"reason": reason, **(data or {})})


@transaction.atomic
def item_label_by_human(*, item_id: int, label: str, actor=None, data: dict[str, Any] | None = None,
                        seen: Item | None = None) -> Item:
    """A person labelled the item (a review-queue submit). A savepoint like every transition: a refusal
    must leave a caller's transaction usable (without one Django marks it for rollback)."""
    return _transition(item_id=item_id, to_state=ItemState.HUMAN_LABELED, verb="labeled_by_human", actor=actor,
                       data={"label": label, **(data or {})}, label=label, seen=seen, final_label=label,
                       final_source=Tier.HUMAN)


@transaction.atomic
def item_send_back(*, item_id: int, reason: str, actor=None) -> Item:
    """A reviewer rejected the human label: the item needs a new one."""
    return _transition(item_id=item_id, to_state=ItemState.AWAITING_REVIEW, verb="sent_back", actor=actor,
                       data={"reason": reason}, final_label=None, final_source=None)


@transaction.atomic
def item_fail(*, item_id: int, reason: str, actor=None) -> Item:
    return _transition(item_id=item_id, to_state=ItemState.FAILED, verb="failed", actor=actor,
                       data={"reason": reason}, failure_reason=reason)


@transaction.atomic
def item_retry(*, item_id: int, actor=None) -> Item:
    return _transition(item_id=item_id, to_state=ItemState.PENDING, verb="retry", actor=actor, failure_reason="")


def _check_label(item: Item, label: str) -> None:
    if label not in item.project.labels:
        raise ValueError(f"unknown label {label!r}; the project's labels are {item.project.labels}")
