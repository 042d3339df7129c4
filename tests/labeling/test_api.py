"""The REST API as a client sees it: token auth, CSRF, imports as jobs, streamed exports, the schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Item
from tests.conftest import REPO
from tests.labeling.factories import jsonl, make_project, make_user, upload

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
