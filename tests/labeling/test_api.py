"""The REST API as a client sees it: token auth, CSRF, imports as jobs, streamed exports, the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from labeling.api.serializers import ClaimSerializer, HumanLabelSerializer
from labeling.models import AuditEvent, HumanLabel, Item, JudgeRun, ReviewTask, RouterDecision
from labeling.services.projects import batch_create
from tests.conftest import REPO
from tests.labeling.factories import jsonl, make_project, make_user, upload
from tests.labeling.test_queue import queue_items

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    admin = make_user("boss")
    project = make_project(members={admin: "admin"})
    token, _ = Token.objects.get_or_create(user=admin)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client, project


def test_import_returns_202_with_a_job_and_the_job_reports_every_error(admin_client,
                                                                    django_capture_on_commit_callbacks):
    client, project = admin_client
    good = jsonl([{"external_id": f"e{k}", "text": f"t{k}"} for k in range(5)])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/projects/{project.pk}/imports/", {"file": upload(good, "items.jsonl")},
                               format="multipart")
    assert response.status_code == 202
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert (job["status"], job["rows_imported"], job["errors"]) == ("succeeded", 5, [])

    bad = jsonl([{"external_id": "x", "text": "ok", "label": "perhaps"}, {"external_id": "y"}])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/projects/{project.pk}/imports/",
                               {"file": upload(bad, "bad.jsonl"), "format": "jsonl"}, format="multipart")
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed"
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(1, "label"), (2, "text")]
    assert Item.objects.filter(project=project).count() == 5


def test_import_rejects_an_unknown_format_parameter_with_400(admin_client):
    client, project = admin_client
    response = client.post(f"/api/v1/projects/{project.pk}/imports/",
                           {"file": upload(b"{}", "a.jsonl"), "format": "xml"}, format="multipart")
    assert response.status_code == 400 and "format" in response.json()


@pytest.mark.parametrize("fmt, first", [("jsonl", '{"id": "e0"'), ("ls-json", "["), ("csv", "external_id,")])
def test_export_streams_each_format(admin_client, fmt, first):
    client, project = admin_client
    Item.objects.bulk_create([Item(project=project, external_id=f"e{k}", fields={"text": f"t{k}"}) for k in range(2500)])
    response = client.get(f"/api/v1/projects/{project.pk}/export/?format={fmt}")
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content).decode()
    assert body.startswith(first)
    if fmt == "jsonl":
        assert len(body.splitlines()) == 2500
    if fmt == "ls-json":
        assert len(json.loads(body)) == 2500
    assert client.get(f"/api/v1/projects/{project.pk}/export/?format=xml").status_code == 400


def test_session_auth_enforces_csrf():
    user = make_user("ann")
    project = make_project(members={user: "annotator"})
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/api/v1/projects/{project.pk}/queue/claim/").status_code == 403
    assert client.get(f"/api/v1/projects/{project.pk}/").status_code == 200


def test_schema_and_docs_are_served():
    client = Client()
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/projects/{id}/imports/" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_drf_create_token_command_works():
    make_user("ann")
    call_command("drf_create_token", "ann")
    assert Token.objects.filter(user__username="ann").exists()


def test_pages_need_login_and_a_role():
    ann, outsider = make_user("ann"), make_user("out")
    project = make_project(members={ann: "annotator"})
    client = Client()
    assert client.get("/").status_code == 302
    client.force_login(outsider)
    assert client.get(f"/projects/{project.pk}/").status_code == 404
    client.force_login(ann)
    page = client.get(f"/projects/{project.pk}/")
    assert page.status_code == 200 and b"Budgets" not in page.content


def test_production_settings_pass_the_deploy_check():
    env = {"DJANGO_SETTINGS_MODULE": "tracelab.settings_production", "DJANGO_SECRET_KEY": "x" * 60 + "k9$Zq!",
           "DJANGO_ALLOWED_HOSTS": "tracelab.example.org", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- review queue

# What one claim and one submit may cost in SQL statements, as the test sees them (its transaction turns the
# service's BEGIN/COMMIT into SAVEPOINT/RELEASE). Claim: token→user, project+role, one statement that finds
# the held lease or leases the best task (on SQLite a SELECT and an UPDATE in a transaction), the task with
# its item and the item's latest judge run. Submit: token→user, the task locked with its item, project and
# the caller's role, the item's state change with its audit event (in a savepoint of its own: two more), the
# label with the task marked done (on SQLite the last two are two statements each). An item's history (judge runs,
# decisions, earlier labels) must not add any.
CLAIM_QUERIES = {"postgresql": 4, "sqlite": 7}
SUBMIT_QUERIES = {"postgresql": 8, "sqlite": 10}


def _annotator_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def _item_with_history(project):
    """A queued item the judge answered three times (router decisions on each), labelled by people before."""
    task = queue_items(project, [0.8])[0]
    for k in range(3):
        judge_run = JudgeRun.objects.create(item=task.item, model="m", status="stopped_early", label="yes" if k < 2
                                            else "no", raw_reasoning=f"1. looked\n2. decided {k}",
                                            steps=["looked", f"decided {k}"], stopped_at_step=2, stop_reason="router")
        RouterDecision.objects.bulk_create([RouterDecision(judge_run=judge_run, step=s, score=0.1 * s,
                                                           action="continue") for s in (1, 2)])
    HumanLabel.objects.bulk_create([HumanLabel(item=task.item, annotator_name=f"imported{k}", label="yes",
                                               source="imported") for k in range(2)])
    return task, judge_run


def _sql(ctx) -> str:
    return "\n".join(q["sql"][:200] for q in ctx.captured_queries)


def test_claim_gives_what_the_annotator_labels_with_in_a_fixed_number_of_queries():
    ann = make_user("ann")
    project = make_project(members={ann: "annotator"})
    task, latest = _item_with_history(project)
    client = _annotator_client(ann)
    url = f"/api/v1/projects/{project.pk}/queue/claim/"
    with CaptureQueriesContext(connection) as claim:
        response = client.post(url)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == task.pk and body["item"]["fields"] == task.item.fields and body["item"]["image_url"] is None
    assert body["project"] == {"id": project.pk, "question": "Does it fit?", "instructions": "",
                               "labels": ["yes", "no"]}
    assert (body["judge"]["id"], body["judge"]["label"], body["judge"]["steps"]) == (latest.pk, "no",
                                                                                    ["looked", "decided 2"])
    assert body["priority"] == 0.8 and body["reason"] == "router escalated at step 2"
    assert body["state"] == "leased" and body["lease_expires_at"] and "p̂=0.800" in body["claim_reason"]
    assert len(claim.captured_queries) <= CLAIM_QUERIES[connection.vendor], _sql(claim)

    with CaptureQueriesContext(connection) as held:
        again = client.post(url)
    assert again.json()["id"] == task.pk and "lease still held" in again.json()["claim_reason"]
    assert len(held.captured_queries) <= CLAIM_QUERIES[connection.vendor], _sql(held)


def test_the_claim_answers_exactly_what_its_schema_serializer_renders():
    """The claim's body is built by hand (serializers.task_data) to save CPU; ClaimSerializer is its schema."""
    ann = make_user("ann")
    project = make_project(members={ann: "annotator"}, instructions="Read the whole message.")
    task, latest = _item_with_history(project)
    batch = batch_create(project=project, name="b")
    Item.objects.filter(pk=task.item_id).update(batch=batch, image="items/a.png", meta={"slice": "s1"},
                                                disagreement_score=0.8)
    body = _annotator_client(ann).post(f"/api/v1/projects/{project.pk}/queue/claim/").json()
    task = ReviewTask.objects.select_related("item", "project").get(pk=task.pk)
    context = {"judge_run": latest, "claim_reason": body["claim_reason"]}
    documented = ClaimSerializer(task, context=context).data
    assert body == json.loads(JSONRenderer().render(documented))
    assert body["item"]["image_url"].endswith("items/a.png") and body["item"]["batch"] == batch.pk


def _claim(client, project) -> dict:
    response = client.post(f"/api/v1/projects/{project.pk}/queue/claim/")
    assert response.status_code == 200
    # the judge's reasoning is in the body only inside ``judge``
    assert (b"decided 2" in response.content) == (response.json()["judge"] is not None)
    return response.json()


def test_blind_review_hides_the_judge_and_the_escalation_reason_from_annotators_not_from_reviewers():
    ann, rev = make_user("ann"), make_user("rev")
    project = make_project(members={ann: "annotator", rev: "reviewer"}, blind_review=True)
    task, latest = _item_with_history(project)
    annotator, reviewer = _annotator_client(ann), _annotator_client(rev)

    seen = _claim(annotator, project)
    assert (seen["id"], seen["judge"], seen["reason"]) == (task.pk, None, "")
    assert "p̂=0.800" in seen["claim_reason"] and "router" not in seen["claim_reason"]
    annotator.post(f"/api/v1/tasks/{task.pk}/submit/", {"label": "yes"}, format="json")
    undone = annotator.post(f"/api/v1/projects/{project.pk}/queue/undo/")
    assert (undone.json()["id"], undone.json()["judge"], undone.json()["reason"]) == (task.pk, None, "")
    assert b"decided 2" not in undone.content
    assert annotator.get(f"/api/v1/items/{task.item_id}/").status_code == 403  # the item's history: reviewers

    annotator.post(f"/api/v1/tasks/{task.pk}/release/")
    seen = _claim(reviewer, project)
    assert (seen["id"], seen["judge"]["id"], seen["judge"]["label"]) == (task.pk, latest.pk, "no")
    assert seen["reason"] == "router escalated at step 2" and "router escalated" in seen["claim_reason"]


def test_the_review_page_hides_the_judge_from_annotators_of_a_blind_project_not_from_reviewers():
    ann, rev = make_user("ann"), make_user("rev")
    project = make_project(members={ann: "annotator", rev: "reviewer"}, blind_review=True)
    task, _ = _item_with_history(project)
    pages = {}
    for user in (ann, rev):
        client = Client()
        client.force_login(user)
        pages[user.username] = client.get(f"/projects/{project.pk}/review/").content
        client.post(f"/projects/{project.pk}/review/tasks/{task.pk}/skip")  # back to the queue for the next
    assert b"blind-note" in pages["ann"] and b"decided 2" not in pages["ann"] and b"router" not in pages["ann"]
    assert b"blind-note" not in pages["rev"] and b"decided 2" in pages["rev"]


def test_the_review_page_shows_the_latest_judge_answer_after_a_claim_and_after_an_undo():
    ann = make_user("ann")
    project = make_project(members={ann: "annotator"})
    task, _ = _item_with_history(project)
    client = Client()
    client.force_login(ann)
    with CaptureQueriesContext(connection) as claimed:
        page = client.get(f"/projects/{project.pk}/review/")
    assert b"decided 2" in page.content and b"decided 1" not in page.content
    # the claim read the judge run with its task; the page does not look it up again
    assert sum('"labeling_judgerun"' in query["sql"] for query in claimed.captured_queries) == 1, _sql(claimed)

    client.post(f"/projects/{project.pk}/review/tasks/{task.pk}/label", {"label": "yes"})
    undone = client.post(f"/projects/{project.pk}/review/undo", HTTP_X_REQUESTED_WITH="fetch")
    assert f'data-task-id="{task.pk}"'.encode() in undone.content
    assert b"decided 2" in undone.content and b"decided 1" not in undone.content


def test_token_auth_refuses_unknown_deleted_and_deactivated_tokens_from_the_next_request_on():
    ann = make_user("ann")
    project = make_project(members={ann: "annotator"})
    client, url = _annotator_client(ann), f"/api/v1/projects/{project.pk}/"
    assert client.get(url).status_code == 200
    ann.is_active = False
    ann.save(update_fields=["is_active"])
    refused = client.get(url)
    assert refused.status_code in (401, 403) and refused.json()["detail"] == "User inactive or deleted."
    ann.is_active = True
    ann.save(update_fields=["is_active"])
    assert client.get(url).status_code == 200
    Token.objects.filter(user=ann).delete()
    refused = client.get(url)
    assert refused.status_code in (401, 403) and refused.json()["detail"] == "Invalid token."


def test_a_project_id_beyond_any_key_is_a_404_not_a_database_error():
    ann = make_user("ann")
    make_project(members={ann: "annotator"})
    assert _annotator_client(ann).post(f"/api/v1/projects/{2**63}/queue/claim/").status_code == 404


def test_submit_labels_the_item_once_in_a_fixed_number_of_queries_and_a_repeat_returns_the_same_label():
    ann = make_user("ann")
    project = make_project(members={ann: "annotator"})
    task, _ = _item_with_history(project)
    client = _annotator_client(ann)
    client.post(f"/api/v1/projects/{project.pk}/queue/claim/")
    url = f"/api/v1/tasks/{task.pk}/submit/"
    with CaptureQueriesContext(connection) as submit:
        response = client.post(url, {"label": "no"}, format="json")
    assert response.status_code == 200 and response.json()["annotator"] == "ann"
    assert len(submit.captured_queries) <= SUBMIT_QUERIES[connection.vendor], _sql(submit)
    item = Item.objects.get(pk=task.item_id)
    assert (item.state, item.final_label, item.final_source) == ("human_labeled", "no", "human")
    assert AuditEvent.objects.filter(item=item, verb="labeled_by_human").count() == 1

    repeat = client.post(url, {"label": "no"}, format="json")
    assert repeat.status_code == 200 and repeat.json()["id"] == response.json()["id"]
    assert HumanLabel.objects.filter(task_id=task.pk).count() == 1
    assert client.post(url, {"label": "yes"}, format="json").json()["id"] == response.json()["id"]


def test_the_submit_answers_exactly_what_its_schema_serializer_renders():
    """The submit's body is built by hand (serializers.human_label_data); HumanLabelSerializer is its schema."""
    ann = make_user("ann")
    project = make_project(members={ann: "annotator"})
    task = queue_items(project, [0.5])[0]
    client = _annotator_client(ann)
    client.post(f"/api/v1/projects/{project.pk}/queue/claim/")
    for _ in range(2):  # the first submit, then the repeat that returns the same label
        body = client.post(f"/api/v1/tasks/{task.pk}/submit/", {"label": "no"}, format="json").json()
        documented = HumanLabelSerializer(HumanLabel.objects.select_related("annotator").get(task=task)).data
        assert body == json.loads(JSONRenderer().render(documented))
        assert body["annotator"] == "ann" and body["lead_time_seconds"] >= 0 and body["source"] == "review"


def test_submit_refusals_say_why_and_change_nothing():
    ann, bob, out = make_user("ann"), make_user("bob"), make_user("out")
    project = make_project(members={ann: "annotator", bob: "reviewer"})
    first, second = queue_items(project, [0.9, 0.5])
    annotator, reviewer, stranger = _annotator_client(ann), _annotator_client(bob), _annotator_client(out)
    annotator.post(f"/api/v1/projects/{project.pk}/queue/claim/")
    url = f"/api/v1/tasks/{first.pk}/submit/"

    # a stranger learns nothing, whatever the body; a member is told what is wrong with it
    for body in ({"label": "yes"}, {}, {"label": ""}):
        refused = stranger.post(url, body, format="json")
        assert refused.status_code == 404 and refused.json()["detail"] == "No such task."
    assert annotator.post(url, {}, format="json").status_code == 400
    assert annotator.post(f"/api/v1/tasks/{2**63}/submit/", {"label": "yes"}, format="json").status_code == 404

    unknown = annotator.post(url, {"label": "maybe"}, format="json")
    assert unknown.status_code == 400 and unknown.json() == {
        "code": "bad_label", "detail": "unknown label 'maybe'; expected one of ['yes', 'no']"}

    # the item moved on behind the task's back: the transition is refused and the whole submit undone
    Item.objects.filter(pk=first.item_id).update(state="auto_labeled")
    moved = annotator.post(url, {"label": "yes"}, format="json")
    assert moved.status_code == 409 and moved.json()["code"] == "invalid_transition"
    assert ReviewTask.objects.get(pk=first.pk).state == "leased" and not HumanLabel.objects.exists()
    assert not AuditEvent.objects.filter(item_id=first.item_id, verb="labeled_by_human").exists()
    Item.objects.filter(pk=first.item_id).update(state="awaiting_review")

    assert annotator.post(url, {"label": "yes"}, format="json").status_code == 200
    taken = reviewer.post(url, {"label": "yes"}, format="json")
    assert taken.status_code == 409 and taken.json() == {
        "code": "done", "detail": "this task was already labelled by someone else"}

    annotator.post(f"/api/v1/projects/{project.pk}/queue/claim/")
    ReviewTask.objects.filter(pk=second.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    late = annotator.post(f"/api/v1/tasks/{second.pk}/submit/", {"label": "no"}, format="json")
    assert late.status_code == 409 and late.json()["code"] == "lease_expired"
    assert HumanLabel.objects.count() == 1


def test_task_actions_answer_404_to_strangers_and_409_to_the_wrong_annotator():
    ann, bob, out = make_user("ann"), make_user("bob"), make_user("out")
    project = make_project(members={ann: "annotator", bob: "annotator"})
    task = queue_items(project, [0.5])[0]
    _annotator_client(ann).post(f"/api/v1/projects/{project.pk}/queue/claim/")
    for action, body in (("submit", {"label": "yes"}), ("heartbeat", None), ("skip", None), ("release", None)):
        url = f"/api/v1/tasks/{task.pk}/{action}/"
        assert _annotator_client(out).post(url, body, format="json").status_code == 404
        refused = _annotator_client(bob).post(url, body, format="json")
        assert refused.status_code == 409 and refused.json()["code"] == "taken"
    assert _annotator_client(ann).post(f"/api/v1/tasks/{task.pk + 1000}/submit/", {"label": "yes"},
                                       format="json").status_code == 404
