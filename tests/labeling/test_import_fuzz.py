"""Property tests: junk fed to every importer never gives a 500 and never a silent partial import."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from rest_framework.test import APIClient

from labeling.models import ImportJob, Item
from tests.labeling.factories import make_project, make_user, upload

pytestmark = pytest.mark.django_db

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=10)
item_like = st.fixed_dictionaries(
    {}, optional={"external_id": st.one_of(st.text(max_size=6), st.integers(), json_values),
                  "text": st.one_of(st.text(max_size=30), json_values), "label": st.one_of(st.sampled_from(["yes", "no"]), json_values),
                  "data": json_values, "input": json_values, "judge": json_values, "annotations": json_values,
                  "predictions": json_values, "id": json_values},
)


def files():
    jsonl_file = st.lists(st.one_of(item_like, json_values), max_size=6).map(
        lambda rows: ("x.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()))
    ls_file = st.lists(st.one_of(st.builds(lambda d: {"data": d}, item_like), json_values), max_size=5).map(
        lambda rows: ("x.json", json.dumps(rows).encode()))
    csv_file = st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=4), min_size=1, max_size=6).map(
        lambda rows: ("x.csv", "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")))
    raw = st.binary(max_size=200).flatmap(lambda b: st.sampled_from(["x.jsonl", "x.json", "x.csv", "x.zip", "x"]).map(
        lambda name: (name, b)))
    return st.one_of(jsonl_file, ls_file, csv_file, raw)


@pytest.fixture
def client_and_project():
    admin = make_user("fuzzer")
    project = make_project(members={admin: "admin"})
    client = APIClient()
    client.force_authenticate(admin)
    return client, project


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=files(), on_error=st.sampled_from(["fail", "skip"]))
def test_junk_never_500s_and_never_imports_silently_partially(client_and_project, file, on_error,
                                                              django_capture_on_commit_callbacks):
    client, project = client_and_project
    before = Item.objects.filter(project=project).count()
    name, content = file
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/projects/{project.pk}/imports/",
                               {"file": upload(content, name), "on_error": on_error}, format="multipart")
    assert response.status_code in (202, 400), response.content[:300]
    if response.status_code != 202:
        return
    job = ImportJob.objects.get(pk=response.json()["id"])
    added = Item.objects.filter(project=project).count() - before
    assert job.status in ("succeeded", "failed")
    assert added == job.rows_imported
    if job.status == "failed" or (on_error == "fail" and job.error_count):
        assert added == 0
    if job.error_count:
        assert job.errors and all({"line", "field", "message"} <= set(e) for e in job.errors)
    assert not any(e["message"].startswith("internal error") for e in job.errors), job.errors
