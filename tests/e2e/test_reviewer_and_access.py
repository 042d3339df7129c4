"""Reviewers accept or reject a sample of human labels; the pages are usable by keyboard, with readable
contrast and visible focus, at desktop and tablet widths."""

from __future__ import annotations

import pytest

from labeling.models import HumanLabel, ReviewTask
from labeling.services.queue import review_task_claim_next, review_task_create, review_task_submit
from tests.e2e.helpers import TABLET, login, screenshot
from tests.labeling.factories import make_items, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTRAST = """() => {
  const parse = c => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const el of document.querySelectorAll('main *, nav *')) {
    if (!el.offsetParent || ![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const [a, b] = [lum(parse(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push(el.tagName + ' ' + el.textContent.trim().slice(0, 30) + ' ' + ratio.toFixed(2));
  }
  return worst;
}"""

UNLABELLED = """() => [...document.querySelectorAll('button, input:not([type=hidden]), select, textarea, a[href]')]
  .filter(el => el.offsetParent !== null)
  .filter(el => !(el.getAttribute('aria-label') || (el.labels && el.labels.length) || el.textContent.trim()
                   || el.title))
  .map(el => el.outerHTML.slice(0, 80))"""


def labelled_sample(n: int):
    annotator, reviewer = make_user("ann"), make_user("rev")
    project = make_project(name="Sample", members={annotator: "annotator", reviewer: "reviewer"})
    for item in make_items(project, n):
        review_task_create(item=item, priority=0.5, reason="seed")
    for label in ("yes", "no", "yes")[:n]:
        claim = review_task_claim_next(project=project, user=annotator)
        review_task_submit(task_id=claim.task.pk, user=annotator, label=label)
    return project, annotator


def test_reviewer_accepts_one_label_and_rejects_another_which_goes_back_to_the_queue(live_server, new_page):
    project, annotator = labelled_sample(3)
    first, second = HumanLabel.objects.order_by("id")[:2]
    page = new_page()
    login(page, live_server, "rev")
    page.goto(f"{live_server.url}/projects/{project.pk}/reviews/")
    assert page.locator("#sample tbody tr").count() == 3
    screenshot(page, "review-sample")
    page.get_by_role("button", name=f"Accept label yes on {first.item.external_id}").click()
    page.locator(".msg.success", has_text="accepted").wait_for()
    page.get_by_role("button", name=f"Reject label no on {second.item.external_id}").click()
    page.locator(".msg.success", has_text="back in the queue").wait_for()
    assert HumanLabel.objects.get(pk=first.pk).review_status == "accepted"
    assert HumanLabel.objects.get(pk=second.pk).review_status == "rejected"
    assert ReviewTask.objects.filter(item=second.item, state="open").exists()
    assert page.locator("#sample tbody tr").count() == 1
    # A reviewer cannot review their own labels and an annotator cannot review at all.
    annotator_page = new_page()
    login(annotator_page, live_server, "ann")
    assert annotator_page.goto(f"{live_server.url}/projects/{project.pk}/reviews/").status == 403


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, TABLET], ids=["desktop", "tablet"])
def test_pages_have_labels_contrast_and_focus_and_fit_the_width(live_server, new_page, viewport):
    project, annotator = labelled_sample(2)
    for item in make_items(project, 2, prefix="more"):
        review_task_create(item=item, priority=0.9, reason="router escalated at step 2")
    make_user("boss", superuser=True)
    page = new_page(viewport)
    login(page, live_server, "boss")
    base = f"/projects/{project.pk}"
    for path in ("/", f"{base}/", f"{base}/review/", f"{base}/reviews/", f"{base}/dashboard/", f"{base}/runs/new",
                 f"{base}/models/", f"{base}/imports/", f"{base}/settings"):
        page.goto(live_server.url + path)
        assert page.locator("nav.project-nav").count() == (0 if path == "/" else 1), path
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(CONTRAST) == [], path
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), path
    # Keyboard: Tab reaches the skip link first, then every control shows a focus outline.
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(8):
        page.keyboard.press("Tab")
        style = page.evaluate("[getComputedStyle(document.activeElement).outlineStyle,"
                              " document.activeElement.tagName]")
        assert style[0] != "none", f"no focus outline on {style[1]}"
    # Enter on the focused label button submits it like a click.
    page.get_by_role("button", name="no").focus()
    page.keyboard.press("Enter")
    page.locator("#notice", has_text="Saved").wait_for()
