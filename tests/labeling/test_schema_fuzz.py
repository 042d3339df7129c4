"""Schemathesis against the app's own OpenAPI schema (/api/schema/), in-process over WSGI.

Every operation is called with generated data, authenticated as the admin of a project that holds items,
a review task, a budget and a run, so that generated ids can hit real objects as well as missing ones.
Checks: never a 5xx, and every response body matches the schema the API publishes. Each operation is its
own test case (parametrized by schemathesis); nothing is excluded.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from labeling.models import ReviewTask
from labeling.services.ledger import budget_create
from labeling.services.projects import batch_create
from labeling.services.queue import review_task_claim_next, review_task_submit
from labeling.services.runs import routing_run_create
from tests.labeling.factories import jsonl, make_items, make_project, make_user, run_import

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CHECKS = [checks.not_a_server_error, checks.response_schema_conformance, checks.content_type_conformance]


class FuzzWorld:
    """An admin's project with items, review tasks (one labelled), a batch, budgets, an import and a seed
    run not yet started, plus a project the admin is not in; rebuilt whenever a generated DELETE removed
    it, so later operations still meet real objects."""

    def __init__(self):
        from rest_framework.authtoken.models import Token

        self.admin = make_user("fuzz-admin")
        self.token = Token.objects.get_or_create(user=self.admin)[0].key
        self.other = make_project(name="someone else's")  # the admin has no role there: 404, never 5xx
        self.generation = 0
        self._build()

    def _build(self) -> None:
        self.generation += 1
        project = make_project(name=f"fuzz {self.generation}", members={self.admin: "admin"})
        items = make_items(project, 5, prefix=f"g{self.generation}-", state="awaiting_review")
        tasks = [ReviewTask.objects.create(project=project, item=item, priority=k / 5, reason="fuzz")
                 for k, item in enumerate(items)]
        batch_create(project=project, name="fuzz batch", created_by=self.admin)
        budget = budget_create(project=project, name="fuzz budget", cap=3)
        claim = review_task_claim_next(project=project, user=self.admin)
        human_label = review_task_submit(task_id=claim.task.pk, user=self.admin, label="yes")
        job = run_import(project, jsonl([{"external_id": f"p{self.generation}-{k}", "text": "t"} for k in range(3)]),
                         "pending.jsonl")
        run = routing_run_create(project=project, batch=job.batch, kind="seed", start=False)
        self.project = project
        self.by_kind = {"projects": [project.pk, self.other.pk], "items": [i.pk for i in items],
                        "tasks": [t.pk for t in tasks], "budgets": [budget.pk, run.budget_id],
                        "human-labels": [human_label.pk], "imports": [job.pk], "runs": [run.pk]}

    def ids(self) -> dict[str, list[int]]:
        from labeling.models import Project

        if not Project.objects.filter(pk=self.project.pk).exists():
            self._build()
        return self.by_kind


@pytest.fixture
def fuzz_world(db) -> FuzzWorld:
    return FuzzWorld()


def point_at_real_objects(case, ids: dict) -> None:
    """Even generated ids are swapped for real ones of the kind the path names (odd ones stay as
    generated: mostly missing objects)."""
    kind = case.operation.path.strip("/").split("/")[2]  # api/v1/<kind>/{id}/…
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, int) and value % 2 == 0 and ids.get(kind):
            case.path_parameters[name] = ids[kind][(value // 2) % len(ids[kind])]


@pytest.fixture
def api_schema(db):
    """The schema served by the app itself; requests go through the WSGI handler in this process, on the
    test's database connection (like Django's test client, the per-request connection close is off)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from tracelab.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_without_5xx_and_as_documented(case, fuzz_world):
    point_at_real_objects(case, fuzz_world.ids())
    case.call_and_validate(headers={"Authorization": f"Token {fuzz_world.token}"}, checks=CHECKS)
