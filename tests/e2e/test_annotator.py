"""An annotator works the review queue by keyboard only: label, skip, undo; lease and queue messages."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import HumanLabel, JudgeRun, ReviewTask, RouterDecision, TaskSkip
from labeling.services.queue import review_task_create
from tests.e2e.helpers import TABLET, login, screenshot
from tests.labeling.factories import make_items, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STEPS = ["The message asks about a refund.", "It mentions an order number.",
         "However, the order number looks malformed.", "I am not sure the request is valid.",
         "So the answer is no."]


def queue_with_reasoning(n: int, *, blind: bool = False, members=None, **project_settings):
    annotator = make_user("ann")
    project = make_project(name="Refunds", kind="text", members={annotator: "annotator", **(members or {})},
                           blind_review=blind, instructions="Answer yes if the request is valid.",
                           **project_settings)
    tasks = []
    for k, item in enumerate(make_items(project, n)):
        judge_run = JudgeRun.objects.create(item=item, status=JudgeRun.Status.STOPPED_EARLY, steps=STEPS,
                                            stopped_at_step=3, output_tokens=40, stop_reason="router_escalated")
        RouterDecision.objects.create(judge_run=judge_run, step=2, score=0.21, action="continue")
        RouterDecision.objects.create(judge_run=judge_run, step=3, score=0.74, action="escalate", granted=True)
        tasks.append(review_task_create(item=item, priority=1.0 - k / 100, reason="router escalated at step 3"))
    return project, annotator, tasks


def current_task_id(page) -> int:
    return int(page.locator("#task").get_attribute("data-task-id"))


def press_and_wait_next(page, key: str) -> float:
    """Press ``key`` and wait until a different task (or the empty queue) shows; returns milliseconds."""
    before = page.locator("#task").get_attribute("data-task-id") if page.locator("#task").count() else None
    started = page.evaluate("performance.now()")
    page.keyboard.press(key)
    page.wait_for_function(
        "(before) => { const t = document.getElementById('task');"
        " return document.getElementById('empty') || (t && t.dataset.taskId !== before); }", arg=before)
    return page.evaluate("performance.now()") - started


def test_annotator_labels_three_by_keyboard_skips_one_and_undoes_one(live_server, new_page):
    project, annotator, tasks = queue_with_reasoning(6)
    page = new_page()
    # Keyboard only: the username field has focus on load; Tab to the password, Enter to log in.
    page.goto(f"{live_server.url}/accounts/login/?next=/projects/{project.pk}/")
    expect(page.locator("#id_username")).to_be_focused()  # autofocus lands a moment after load on a busy machine
    page.keyboard.type("ann")
    page.keyboard.press("Tab")
    page.keyboard.type("pw-ann")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/projects/{project.pk}/")
    assert page.locator("#stat-waiting").inner_text() == "6"
    screenshot(page, "queue")
    page.get_by_role("link", name="Start reviewing").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/projects/{project.pk}/review/")

    # The reasoning is shown up to the stopping step; the escalating step is highlighted with its score.
    steps = page.locator("ol.steps li")
    assert steps.count() == 3
    assert "escalated here" in page.locator("li.escalated").inner_text()
    assert "0.740" in page.locator("li.escalated").inner_text()
    assert "So the answer is no." not in page.content()
    screenshot(page, "review")

    first = current_task_id(page)
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    timings = [press_and_wait_next(page, key) for key in ("1", "n", "y")]
    assert page.locator("#notice").inner_text().startswith("Saved")
    skipped = current_task_id(page)
    timings.append(press_and_wait_next(page, "s"))
    assert "Skipped" in page.locator("#notice").inner_text()
    assert not navigations, "the next item must load without a page navigation"

    labels = list(HumanLabel.objects.filter(annotator=annotator).order_by("id").values_list("label", flat=True))
    assert labels == ["yes", "no", "yes"]
    assert TaskSkip.objects.filter(task_id=skipped, user=annotator).exists()
    assert all(lead is not None for lead in HumanLabel.objects.values_list("lead_time_seconds", flat=True))

    # u withdraws the last label ("yes") and shows that item again.
    last_labelled = HumanLabel.objects.filter(annotator=annotator).order_by("-id").first().task_id
    page.keyboard.press("u")
    page.wait_for_function(f"document.getElementById('task').dataset.taskId === '{last_labelled}'")
    assert "withdrawn" in page.locator("#notice").inner_text()
    assert HumanLabel.objects.filter(annotator=annotator).count() == 2
    assert ReviewTask.objects.get(pk=last_labelled).state == ReviewTask.State.LEASED

    # ? toggles the help; the page keeps working at tablet width without sideways scrolling.
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.set_viewport_size(TABLET)
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "review-tablet")
    assert first != skipped
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    assert page.locator("#stat-today").inner_text() == "2"
    assert page.locator("#stat-median").inner_text().endswith("(last 2)")
    print(f"next item in the browser: median {statistics.median(timings):.0f} ms, max {max(timings):.0f} ms")
    assert max(timings) < 1500  # generous for a loaded CI machine; the goal (< 300 ms) is reported, not gated


def test_lease_is_renewed_and_lost_leases_and_taken_items_are_explained(live_server, new_page):
    project, annotator, tasks = queue_with_reasoning(3)
    other = make_user("other")
    page = new_page()
    login(page, live_server, "ann")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    task_id = current_task_id(page)

    before = ReviewTask.objects.get(pk=task_id).lease_expires_at
    renewed = page.evaluate("window.tracelabHeartbeatNow()")
    assert renewed["ok"] and ReviewTask.objects.get(pk=task_id).lease_expires_at > before

    # The lease ran out: the label is refused with a message, and the item (still the best) is claimed afresh.
    ReviewTask.objects.filter(pk=task_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    page.keyboard.press("1")
    page.locator("#notice", has_text="expired").wait_for()
    assert not HumanLabel.objects.exists()
    assert ReviewTask.objects.get(pk=task_id).lease_expires_at > timezone.now()

    ReviewTask.objects.filter(pk=task_id).update(lease_holder=other)
    press_and_wait_next(page, "2")
    assert "taken by someone else" in page.locator("#notice").inner_text()
    assert not HumanLabel.objects.exists()


def test_empty_queue_and_blind_review(live_server, new_page):
    project, annotator, tasks = queue_with_reasoning(1, blind=True)
    page = new_page()
    login(page, live_server, "ann")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    assert page.locator("#blind-note").is_visible()
    assert page.locator("ol.steps").count() == 0 and "malformed" not in page.content()
    assert "router escalated" not in page.content() and "0.740" not in page.content()
    page.get_by_role("button", name="yes").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "focused controls need a visible outline"
    press_and_wait_next(page, "y")
    assert page.locator("#empty-title").inner_text() == "The queue is empty"
    screenshot(page, "review-empty")
