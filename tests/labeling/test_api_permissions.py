"""The authorization matrix: every endpoint × every role × another project's objects."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import Budget, HumanLabel
from labeling.services.items import item_start_routing
from labeling.services.ledger import budget_create
from labeling.services.queue import review_task_create
from tests.labeling.factories import make_items, make_project, make_user

pytestmark = pytest.mark.django_db

ROLES = ["annotator", "reviewer", "admin"]
RANK = {"anonymous": 0, "outsider": 0, "annotator": 1, "reviewer": 2, "admin": 3}


@pytest.fixture
def world():
    users = {role: make_user(role) for role in ROLES}
    users["outsider"] = make_user("outsider")
    project = make_project(members={users[r]: r for r in ROLES})
    other = make_project(name="other", members={users["outsider"]: "admin"})
    items = make_items(project, 3)
    for item in items:
        item_start_routing(item_id=item.pk)
    task = review_task_create(item=items[0], priority=0.5, reason="test")
    label = HumanLabel.objects.create(item=items[1], label="yes", annotator=users["admin"])
    budget = budget_create(project=project, name="b", cap=3)
    return {"users": users, "project": project, "other": other, "item": items[2], "task": task, "label": label,
            "budget": budget}


def endpoints(w):
    p, i, t, h, b = w["project"].pk, w["item"].pk, w["task"].pk, w["label"].pk, w["budget"].pk
    return [
        ("get", f"/api/v1/projects/{p}/", None, "annotator"),
        ("patch", f"/api/v1/projects/{p}/", {"name": "renamed"}, "admin"),
        ("get", f"/api/v1/projects/{p}/members/", None, "admin"),
        ("get", f"/api/v1/projects/{p}/batches/", None, "reviewer"),
        ("post", f"/api/v1/projects/{p}/batches/", {"name": "b2"}, "admin"),
        ("get", f"/api/v1/projects/{p}/items/", None, "reviewer"),
        ("get", f"/api/v1/items/{i}/", None, "reviewer"),
        ("get", f"/api/v1/projects/{p}/export/?format=jsonl", None, "admin"),
        ("post", f"/api/v1/projects/{p}/imports/", None, "admin"),
        ("get", f"/api/v1/projects/{p}/budgets/", None, "reviewer"),
        ("post", f"/api/v1/projects/{p}/budgets/", {"name": "x", "cap": 2}, "admin"),
        ("get", f"/api/v1/budgets/{b}/", None, "reviewer"),
        ("patch", f"/api/v1/budgets/{b}/", {"cap": 4}, "admin"),
        ("post", f"/api/v1/projects/{p}/queue/claim/", None, "annotator"),
        ("post", f"/api/v1/projects/{p}/queue/undo/", None, "annotator"),
        ("post", f"/api/v1/tasks/{t}/heartbeat/", None, "annotator"),
        ("get", f"/api/v1/projects/{p}/review-sample/", None, "reviewer"),
        ("post", f"/api/v1/human-labels/{h}/review/", {"accept": True}, "reviewer"),
        ("delete", f"/api/v1/projects/{p}/", None, "admin"),
    ]


@pytest.mark.parametrize("who", ["anonymous", "outsider", *ROLES])
def test_every_endpoint_allows_exactly_the_roles_it_should(world, who):
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate(world["users"][who])
    for method, url, body, minimum in endpoints(world):
        response = getattr(client, method)(url, body, format="json")
        where = f"{who} {method.upper()} {url} → {response.status_code}"
        if who == "anonymous":
            assert response.status_code in (401, 403), where
        elif who == "outsider":
            assert response.status_code == 404, where  # another project's objects do not exist for you
        elif RANK[who] < RANK[minimum]:
            assert response.status_code == 403, where
        else:
            assert response.status_code not in (401, 403, 404, 500), where


def test_project_lists_only_show_your_projects(world):
    client = APIClient()
    client.force_authenticate(world["users"]["outsider"])
    names = [p["name"] for p in client.get("/api/v1/projects/").json()["results"]]
    assert names == ["other"]


def test_only_staff_create_projects_and_become_their_admin(world):
    client = APIClient()
    client.force_authenticate(world["users"]["admin"])
    body = {"name": "new", "question": "q?", "labels": ["a", "b"], "item_kind": "text"}
    assert client.post("/api/v1/projects/", body, format="json").status_code == 403
    staff = make_user("staffer", staff=True)
    client.force_authenticate(staff)
    created = client.post("/api/v1/projects/", body, format="json")
    assert created.status_code == 201 and created.json()["my_role"] == "admin"


def test_budget_rate_or_cap_is_validated(world):
    client = APIClient()
    client.force_authenticate(world["users"]["admin"])
    url = f"/api/v1/projects/{world['project'].pk}/budgets/"
    assert client.post(url, {"name": "r", "rate": 0.3, "items": 10}, format="json").json()["cap"] == 3
    for bad in ({"name": "x"}, {"name": "x", "rate": 2, "items": 3}, {"name": "x", "rate": 0.2},
                {"name": "x", "cap": -1}, {"name": "x", "cap": 1, "rate": 0.1, "items": 3}):
        assert client.post(url, bad, format="json").status_code == 400, bad
    budget = Budget.objects.get(name="r")
    response = client.patch(f"/api/v1/budgets/{budget.pk}/", {"cap": "lots"}, format="json")
    assert response.status_code == 400
    for bad in ([1, 2], {"cap": -1}, {"cap": 2**31}, {}):
        response = client.patch(f"/api/v1/budgets/{budget.pk}/", bad, format="json")
        assert response.status_code == 400, bad
        assert {"cap", "non_field_errors"} & set(response.json()), response.json()
    assert client.patch(f"/api/v1/budgets/{budget.pk}/", {"cap": 5}, format="json").json()["cap"] == 5
