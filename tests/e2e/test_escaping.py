"""Text from items, traces, imports and project settings is always escaped: nothing in it executes."""

from __future__ import annotations

import io
import json

import pytest

from labeling.models import JudgeRun, RouterDecision
from labeling.services.imports import import_job_create, import_job_run
from labeling.services.ledger import budget_create
from labeling.services.queue import review_task_claim_next, review_task_create, review_task_submit
from tests.e2e.helpers import login, screenshot
from tests.labeling.factories import make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
BREAKOUT = "\"'><svg onload=\"window.__xss = 'svg'\"></svg>"
PAYLOAD = SCRIPT + IMG + BREAKOUT
EVIL_LABEL = "<b onmouseover=\"window.__xss = 'label'\">no</b>"


def assert_inert(page, *visible_texts: str) -> None:
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)  # let any injected onerror/onload handler fire
    assert page.evaluate("window.__xss") is None, "an injected payload executed"
    assert page.locator("script:not([src])").count() == 0, "an inline script element made it into the page"
    shown = page.inner_text("body")
    for text in visible_texts:
        assert text in shown, f"{text!r} should be shown as text"


def test_payloads_in_captions_fields_reasoning_and_imports_never_execute(live_server, new_page):
    annotator, admin = make_user("ann"), make_user("boss", staff=True)
    project = make_project(name="Evil " + PAYLOAD, labels=("yes", EVIL_LABEL), kind="text",
                           members={annotator: "annotator", admin: "admin"}, instructions=PAYLOAD)
    project.question = "Question " + PAYLOAD
    project.save()
    content = "".join(json.dumps(row) + "\n" for row in [
        {"external_id": "x1" + IMG, "text": "Caption " + PAYLOAD, "note " + IMG: "Field " + PAYLOAD},
        {"external_id": "x2", "text": "fine", "meta": {"slice": PAYLOAD}},
        {"external_id": "x3" + SCRIPT, "text": ""},
    ]).encode()
    job = import_job_create(project=project, uploaded=io.BytesIO(content), filename="evil" + IMG + ".jsonl",
                            on_error="skip", enqueue=False)
    job = import_job_run(job_id=job.pk)
    assert job.rows_imported == 2 and job.rows_failed == 1
    items = list(project.items.order_by("id"))
    for k, item in enumerate(items):  # the second item is the best: another annotator labels it first
        judge_run = JudgeRun.objects.create(item=item, status=JudgeRun.Status.STOPPED_EARLY, stopped_at_step=2,
                                            steps=["Step one " + PAYLOAD, "Step two " + BREAKOUT, "hidden"])
        RouterDecision.objects.create(judge_run=judge_run, step=2, score=0.9, action="escalate", granted=True)
        review_task_create(item=item, priority=0.9 + k / 100, reason="escalated " + PAYLOAD)
    budget_create(project=project, name="Budget " + PAYLOAD, cap=5)
    other = make_user("other")
    from labeling.services.projects import membership_set

    membership_set(project=project, user=other, role="annotator")
    claim = review_task_claim_next(project=project, user=other)
    review_task_submit(task_id=claim.task.pk, user=other, label=EVIL_LABEL)

    page = new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    login(page, live_server, "ann")
    assert_inert(page, "Evil <script>")
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    assert_inert(page, "Question <script>")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    assert_inert(page, "Caption <script>", "Step one <script>", "Field <script>", "escalated <script>")
    assert page.locator("ol.steps li").count() == 2
    screenshot(page, "escaping-review")
    page.get_by_role("button", name=EVIL_LABEL).hover()
    page.keyboard.press("2")  # the evil label, through the fetch() swap
    page.locator("#notice", has_text="Saved").wait_for()
    assert_inert(page)

    admin_page = new_page()
    admin_page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    login(admin_page, live_server, "boss")
    for path in ("/dashboard/", "/reviews/", "/imports/", f"/imports/{job.pk}", "/models/", "/runs/new", "/settings"):
        admin_page.goto(f"{live_server.url}/projects/{project.pk}{path}")
        assert_inert(admin_page)
    admin_page.goto(f"{live_server.url}/projects/{project.pk}/reviews/")
    assert admin_page.get_by_text(EVIL_LABEL).count() >= 1
    admin_page.goto(f"{live_server.url}/projects/{project.pk}/imports/{job.pk}")
    assert admin_page.locator("#import-errors tbody tr").count() >= 1
    assert_inert(admin_page, "evil<img")
