"""The budget ledger: charged once per item, never beyond the cap — also under concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction

from labeling.models import Budget, LedgerEntry
from labeling.services.ledger import BudgetError, budget_cap_for, budget_create, budget_set_cap, ledger_try_spend
from tests.labeling.factories import make_items, make_project


def test_cap_is_floor_of_rate_times_items_or_the_absolute_cap():
    assert budget_cap_for(items=10, rate=0.3) == 3
    assert budget_cap_for(items=7, rate=0.3) == 2
    assert budget_cap_for(items=100, cap=5) == 5
    for bad in ({"rate": 1.5}, {"rate": -0.1}, {"cap": -1}, {}, {"rate": 0.1, "cap": 3}):
        with pytest.raises(BudgetError):
            budget_cap_for(items=10, **bad)


@pytest.mark.django_db
def test_spend_grants_until_the_cap_then_refuses_and_never_charges_an_item_twice():
    project = make_project()
    items = make_items(project, 5)
    budget = budget_create(project=project, name="b", cap=3)
    granted = [ledger_try_spend(budget_id=budget.pk, item=item) for item in items]
    assert granted == [True, True, True, False, False]
    assert ledger_try_spend(budget_id=budget.pk, item=items[0]) is True  # re-run after a crash: no new charge
    budget.refresh_from_db()
    assert budget.spent == 3 == LedgerEntry.objects.filter(budget=budget).count()


@pytest.mark.django_db
def test_the_database_itself_refuses_spent_above_cap():
    project = make_project()
    budget = budget_create(project=project, name="b", cap=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.filter(pk=budget.pk).update(spent=2)


@pytest.mark.django_db
def test_cap_cannot_drop_below_spent():
    project = make_project()
    items = make_items(project, 2)
    budget = budget_create(project=project, name="b", cap=2)
    for item in items:
        ledger_try_spend(budget_id=budget.pk, item=item)
    with pytest.raises(BudgetError, match="already spent"):
        budget_set_cap(budget=budget, cap=1)
    assert budget_set_cap(budget=budget, cap=5).cap == 5


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_eight_threads_racing_never_overspend_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency needs PostgreSQL (SQLite serialises writers)")
    project = make_project()
    items = make_items(project, 200)
    budget = budget_create(project=project, name="race", cap=50)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(chunk):
        try:
            for item in chunk:
                # Every item is tried by two threads at once, so duplicates race as well.
                ok = ledger_try_spend(budget_id=budget.pk, item=item.pk)
                with lock:
                    results.append(ok)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(items[k % 4::4],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    budget.refresh_from_db()
    assert budget.spent == 50
    assert LedgerEntry.objects.filter(budget=budget).count() == 50
