"""Every HTML page: log-in required, 404 for non-members, 403 for a too-low role, CSRF on every POST.
(Django's test client, no browser: these run in `make test-fast` too.)"""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Budget, HumanLabel, ModelArtifact, RoutingRun
from labeling.services.ledger import budget_create
from labeling.services.queue import review_task_claim_next, review_task_create, review_task_submit
from tests.labeling.factories import make_items, make_project, make_user

pytestmark = pytest.mark.django_db

ROLES = {"annotator": 1, "reviewer": 2, "admin": 3}


@pytest.fixture
def world():
    users = {role: make_user(role) for role in ROLES}
    project = make_project(members={users[r]: r for r in ROLES})
    item, other = make_items(project, 2)
    make_items(project, 3, prefix="pending")
    task = review_task_create(item=item, priority=0.5, reason="seed")
    review_task_create(item=other, priority=0.4, reason="seed")
    claim = review_task_claim_next(project=project, user=users["annotator"])
    label = review_task_submit(task_id=claim.task.pk, user=users["annotator"], label="yes")
    budget = budget_create(project=project, name="b", cap=3)
    run = RoutingRun.objects.create(project=project, kind="seed", state="completed")
    p = project.pk
    gets = {
        f"/projects/{p}/": "annotator", f"/projects/{p}/review/": "annotator", f"/projects/{p}/reviews/": "reviewer",
        f"/projects/{p}/dashboard/": "admin", f"/projects/{p}/dashboard/runs": "admin",
        f"/projects/{p}/runs/new": "admin", f"/projects/{p}/models/": "admin", f"/projects/{p}/imports/": "admin",
        f"/projects/{p}/export/jsonl": "admin", f"/projects/{p}/settings": "admin",
    }
    posts = {
        f"/projects/{p}/review/undo": "annotator", f"/projects/{p}/reviews/{label.pk}": "reviewer",
        f"/projects/{p}/runs/{run.pk}/pause": "admin", f"/projects/{p}/budgets/{budget.pk}/cap": "admin",
        f"/projects/{p}/models/rollback": "admin", f"/projects/{p}/models/train": "admin",
    }
    return {"users": users, "project": project, "gets": gets, "posts": posts, "task": task, "label": label}


def client_for(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_anonymous_users_are_sent_to_log_in(world):
    for url in [*world["gets"], *world["posts"]]:
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_non_members_get_404_everywhere(world):
    stranger = client_for(make_user("stranger"))
    for url in world["gets"]:
        assert stranger.get(url).status_code == 404, url
    for url in world["posts"]:
        assert stranger.post(url).status_code == 404, url


@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_reaches_exactly_its_pages(world, role):
    client = client_for(world["users"][role])
    for url, minimum in world["gets"].items():
        expected = 200 if ROLES[role] >= ROLES[minimum] else 403
        assert client.get(url).status_code == expected, (role, url)
    for url, minimum in world["posts"].items():
        status = client.post(url, {"cap": 3, "kind": "router", "verdict": "accept"}).status_code
        if ROLES[role] >= ROLES[minimum]:
            assert status in (200, 302), (role, url, status)
        else:
            assert status == 403, (role, url, status)


def test_posts_without_a_csrf_token_are_refused(world):
    client = client_for(world["users"]["admin"], csrf=True)
    for url in world["posts"]:
        assert client.post(url, {"cap": 1}).status_code == 403, url
    assert Budget.objects.get().cap == 3
    assert HumanLabel.objects.get().review_status == "pending"
    assert not ModelArtifact.objects.exists()


def test_only_staff_create_projects(world):
    assert client_for(world["users"]["admin"]).get("/projects/new").status_code == 403
    staff = client_for(make_user("staffer", staff=True))
    response = staff.post("/projects/new", {"name": "New", "question": "Q?", "labels": "a\nb", "item_kind": "text",
                                            "judge_failure_policy": "fail", "default_budget_rate": 0.2})
    assert response.status_code == 302
    response = staff.post("/projects/new", {"name": "Bad", "question": "Q?", "labels": "a\na", "item_kind": "text",
                                            "judge_failure_policy": "fail", "default_budget_rate": 2})
    assert response.status_code == 200 and b"must not repeat" in response.content


def test_budget_and_run_forms_validate(world):
    admin = client_for(world["users"]["admin"])
    p = world["project"].pk
    budget = Budget.objects.get()
    admin.post(f"/projects/{p}/budgets/{budget.pk}/cap", {"cap": -1})
    assert Budget.objects.get().cap == 3
    for data, message in [({"kind": "route", "budget_mode": "rate"}, b"Give \xcf\x81"),
                          ({"kind": "route", "budget_mode": "rate", "rate": 1.5}, b"less than or equal to 1"),
                          ({"kind": "seed", "budget_mode": "cap", "cap": 3}, b"leave the project default"),
                          ({"kind": "route", "budget_mode": "default", "seed_size": 3}, b"seed runs only"),
                          ({"kind": "route", "budget_mode": "default"}, b"no active disagreement scorer")]:
        response = admin.post(f"/projects/{p}/runs/new", data)
        assert response.status_code == 200 and message in response.content, (data, response.content[-2000:])


def test_admin_edits_settings_and_cannot_drop_a_label_in_use(world):
    admin = client_for(world["users"]["admin"])
    p = world["project"].pk
    form = {"name": "Renamed", "question": "Still fits?", "labels": "yes\nno\nmaybe", "instructions": "",
            "judge_failure_policy": "human", "default_budget_rate": 0.25, "blind_review": "on"}
    assert admin.post(f"/projects/{p}/settings", form).status_code == 302
    world["project"].refresh_from_db()
    assert world["project"].blind_review and world["project"].labels == ["yes", "no", "maybe"]
    assert world["project"].default_budget_rate == 0.25 and world["project"].item_kind == "text"
    response = admin.post(f"/projects/{p}/settings", {**form, "labels": "no\nmaybe"})
    assert response.status_code == 200 and b"in use by labelled items" in response.content
