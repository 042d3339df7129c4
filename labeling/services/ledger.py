"""The budget ledger: human reviews are charged once per item and budget, and never beyond the cap.

The unique ledger entry is inserted first, then ``spent`` is raised by a conditional UPDATE that only
succeeds while ``spent + 1 <= cap``; zero rows updated means refused and the savepoint is rolled back.
The ``spent <= cap`` check constraint backs this up at the database.
"""

from __future__ import annotations

import math

from django.db import IntegrityError, transaction
from django.db.models import F

from labeling.models import Budget, Item, LedgerEntry, Project
from labeling.services.audit import audit_event_record


class BudgetError(ValueError):
    pass


def budget_cap_for(*, items: int, rate: float | None = None, cap: int | None = None) -> int:
    """B = ⌊ρ·|U|⌋ for a rate, or the absolute cap; exactly one of the two."""
    if (rate is None) == (cap is None):
        raise BudgetError("give either a budget rate ρ or an absolute cap, not both or neither")
    if cap is not None:
        if cap < 0:
            raise BudgetError("the budget cap must be ≥ 0")
        return int(cap)
    if not 0.0 <= rate <= 1.0:
        raise BudgetError("the budget rate ρ must be between 0 and 1")
    return int(math.floor(rate * items + 1e-9))


@transaction.atomic
def budget_create(*, project: Project, name: str, cap: int, actor=None) -> Budget:
    if cap < 0:
        raise BudgetError("the budget cap must be ≥ 0")
    budget = Budget.objects.create(project=project, name=name, cap=cap)
    audit_event_record(project=project, actor=actor, verb="budget_created", data={"budget": budget.pk, "cap": cap})
    return budget


@transaction.atomic
def budget_set_cap(*, budget: Budget, cap: int, actor=None) -> Budget:
    """Change a cap; it can never go below what is already spent."""
    locked = Budget.objects.select_for_update().get(pk=budget.pk)
    if cap < locked.spent:
        raise BudgetError(f"the cap cannot go below what is already spent ({locked.spent})")
    old = locked.cap
    locked.cap = cap
    locked.save(update_fields=["cap"])
    audit_event_record(project=locked.project_id, actor=actor, verb="budget_cap_changed",
                       data={"budget": locked.pk, "from": old, "to": cap})
    return locked


def ledger_try_spend(*, budget_id: int, item: Item | int, reason: str = "escalation") -> bool:
    """Charge one review of ``item`` to the budget. True if granted (or already charged before).

    Idempotent per (budget, item): a worker that re-runs an item after a crash is never charged twice.
    """
    item_id = item if isinstance(item, int) else item.pk
    if LedgerEntry.objects.filter(budget_id=budget_id, item_id=item_id).exists():
        return True
    try:
        with transaction.atomic():
            LedgerEntry.objects.create(budget_id=budget_id, item_id=item_id, reason=reason)
            updated = Budget.objects.filter(pk=budget_id, spent__lt=F("cap")).update(spent=F("spent") + 1)
            if updated == 0:
                raise _Refused
    except _Refused:
        return False
    except IntegrityError:
        # Another worker charged this item concurrently (unique entry) — it is charged exactly once.
        return LedgerEntry.objects.filter(budget_id=budget_id, item_id=item_id).exists()
    return True


class _Refused(Exception):
    pass
