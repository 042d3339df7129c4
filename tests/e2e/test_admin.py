"""Admins: set a budget, start a routing run and watch it reach 100%; forms, models, import errors, export.
Annotators are refused every admin page."""

from __future__ import annotations

import io
import json

import pytest

from labeling.models import Budget, HumanLabel, Item, ModelArtifact, RoutingRun
from labeling.services.imports import import_job_create, import_job_run
from labeling.services.projects import membership_set, project_create
from labeling.services.queue import review_task_claim_next, review_task_submit
from routing.demo import LABELS, DemoJudgeServer, generate_items
from tests.e2e.helpers import TABLET, login, screenshot
from tests.labeling.factories import make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEED_ITEMS, ROUTE_ITEMS = 80, 24


@pytest.fixture
def judge_server():
    server = DemoJudgeServer(port=0, tokens_per_second=0).start()
    yield server
    server.stop()


def _import(project, user, items, name):
    rows = [{"external_id": item.id, "image": item.image_data_url(), "caption": item.caption,
             "meta": {"slice": item.slice, "demo_truth": item.label}} for item in items]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    job = import_job_create(project=project, uploaded=io.BytesIO(content), filename=name, user=user, enqueue=False)
    job = import_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.errors[:3]
    return job.batch


def demo_project(judge_server, admin):
    """The `manage.py demo` project, smaller: a seed batch and a fresh batch, judged by the demo judge."""
    project = project_create(name="Shapes", question="Does the caption accurately describe the image?",
                             labels=list(LABELS), item_kind="image_caption", judge_model="demo-pixels",
                             judge_base_url=judge_server.base_url, default_budget_rate=0.3, created_by=admin)
    items = generate_items(SEED_ITEMS + ROUTE_ITEMS, random_state=0)
    seed_batch = _import(project, admin, items[:SEED_ITEMS], "seed.jsonl")
    route_batch = _import(project, admin, items[SEED_ITEMS:], "batch.jsonl")
    return project, seed_batch, route_batch


def simulate_annotators(project) -> None:
    """Stand-in humans for the seed run (as the demo does): they answer with the generator's truth."""
    simulated = make_user("simulated")
    membership_set(project=project, user=simulated, role="annotator")
    truth = dict(Item.objects.filter(project=project).values_list("external_id", "meta__demo_truth"))
    while (claim := review_task_claim_next(project=project, user=simulated)) is not None:
        label = review_task_submit(task_id=claim.task.pk, user=simulated, label=truth[claim.task.item.external_id])
        HumanLabel.objects.filter(pk=label.pk).update(source=HumanLabel.Source.SIMULATED)


def start_run(page, batch, *, kind: str, budget: str = "Project default") -> None:
    page.get_by_role("link", name="Start a run").first.click()
    page.get_by_label("Kind").select_option(kind)
    page.get_by_label("Batch").select_option(str(batch.pk))
    page.get_by_label(budget).check()


def submit_slow(page, button: str) -> None:
    """Click a button whose request does real work (eager Celery runs the whole run in the request)."""
    with page.expect_navigation(timeout=180000):
        page.get_by_role("button", name=button).click(timeout=180000)


def test_admin_sets_a_budget_starts_a_run_and_sees_it_reach_100_percent(live_server, new_page, judge_server):
    admin = make_user("boss", staff=True)
    project, seed_batch, route_batch = demo_project(judge_server, admin)
    page = new_page()
    login(page, live_server, "boss")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")

    # A seed run from the UI; simulated annotators label it; models are trained from the UI.
    start_run(page, seed_batch, kind="seed")
    submit_slow(page, "Start the run")
    simulate_annotators(project)
    page.get_by_role("link", name="Models").click()
    submit_slow(page, "Train new versions")
    page.locator(".msg.success", has_text="Training queued").wait_for()
    assert page.locator("#artifacts tbody tr", has_text="active").count() >= 2
    page.get_by_label("Model").select_option("router")
    page.get_by_role("button", name="Activate the previous version").click()
    page.locator(".msg.error", has_text="no earlier version").wait_for()
    screenshot(page, "models")

    # Set a budget: a cap below what is spent is refused with a message, a valid one is saved.
    seed_budget = Budget.objects.get(project=project)
    page.get_by_role("link", name="Dashboard").click()
    cap_input = page.get_by_label(f"New cap for {seed_budget.name}")
    cap_input.evaluate("el => el.removeAttribute('min')")
    cap_input.fill("0")
    cap_input.press("Enter")
    page.locator(".msg.error", has_text="cannot go below").wait_for()
    page.get_by_label(f"New cap for {seed_budget.name}").fill(str(seed_budget.cap + 5))
    page.get_by_label(f"New cap for {seed_budget.name}").press("Enter")
    page.locator(".msg.success", has_text="now capped").wait_for()
    assert Budget.objects.get(pk=seed_budget.pk).cap == seed_budget.cap + 5

    # A routing run over the fresh batch with an absolute cap (validated: the cap is required).
    start_run(page, route_batch, kind="route", budget="An absolute cap")
    page.get_by_role("button", name="Start the run").click()
    page.locator(".error", has_text="Give a cap").wait_for()
    screenshot(page, "run-form")
    page.get_by_label("Cap (items)").fill("6")
    submit_slow(page, "Start the run")
    assert page.url == f"{live_server.url}/projects/{project.pk}/dashboard/"

    run = RoutingRun.objects.filter(project=project, kind=RoutingRun.Kind.ROUTE).get()
    row = page.locator(f"#run-{run.pk}")
    row.locator(".run-progress", has_text="100%").wait_for(timeout=60000)
    assert row.get_attribute("data-state") == "completed"
    assert run.budget.cap == 6 and Budget.objects.get(pk=run.budget_id).spent <= 6
    assert page.locator("#selection-table tr.selected").count() == 1
    assert page.locator("svg.chart").count() >= 2
    screenshot(page, "dashboard")
    page.set_viewport_size(TABLET)
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "dashboard-tablet")
    assert ModelArtifact.objects.filter(project=project, kind="router", is_active=True).count() == 1

    # The escalated image items wait in the review queue: the image shows and zooms with z.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    image = page.get_by_role("img", name="The item's image; the caption follows")
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", image.element_handle())
    page.keyboard.press("z")
    assert page.locator("#zoom").get_attribute("aria-pressed") == "true"
    screenshot(page, "review-image")


def test_admin_creates_a_project_imports_with_row_errors_and_exports(live_server, new_page):
    make_user("boss", staff=True)
    page = new_page()
    login(page, live_server, "boss")
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("Tickets")
    page.get_by_label("Question").fill("Is the ticket urgent?")
    page.get_by_label("Labels").fill("urgent")
    page.get_by_role("button", name="Create project").click()
    page.locator(".error", has_text="at least two labels").wait_for()
    page.get_by_label("Labels").fill("urgent\nnot urgent")
    page.get_by_label("Item kind").select_option("text")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("heading", name="Import and export").wait_for()

    rows = [{"external_id": "t1", "text": "Server down"}, {"external_id": "t2", "text": ""},
            {"external_id": "t3", "text": "Password reset"}]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    page.get_by_label("File").set_input_files({"name": "tickets.jsonl", "mimeType": "application/json",
                                               "buffer": content})
    page.get_by_label("When rows are invalid").select_option("skip")
    page.get_by_role("button", name="Upload").click()
    page.locator("#import-status", has_text="succeeded").wait_for()
    assert "2 imported, 1 failed" in page.locator("#import-status").inner_text()
    errors = page.locator("#import-errors tbody tr")
    assert errors.count() == 1 and "text" in errors.inner_text()
    screenshot(page, "import-errors")

    page.get_by_role("link", name="Back to imports").click()
    for fmt in ("jsonl", "csv", "ls-json"):
        with page.expect_download() as download:
            page.get_by_role("link", name=f"Download {fmt}").click()
        body = open(download.value.path(), "rb").read().decode()
        assert "Server down" in body and "Password reset" in body


def test_annotator_is_refused_the_admin_pages(live_server, new_page):
    annotator = make_user("ann")
    project = make_project(name="Mine", members={annotator: "annotator"})
    stranger_project = make_project(name="Not mine")
    page = new_page()
    login(page, live_server, "ann")
    base = f"{live_server.url}/projects/{project.pk}"
    for path in ("/dashboard/", "/runs/new", "/models/", "/imports/", "/export/jsonl", "/reviews/"):
        response = page.goto(base + path)
        assert response.status == 403, path
        assert "You do not have access" in page.content()
    screenshot(page, "refused")
    assert page.goto(f"{live_server.url}/projects/{stranger_project.pk}/dashboard/").status == 404
    assert page.goto(f"{live_server.url}/projects/new").status == 403
    # No admin links are offered to an annotator either.
    page.goto(base + "/")
    assert page.get_by_role("link", name="Dashboard").count() == 0


def test_dashboard_progress_updates_live_without_a_reload(live_server, new_page):
    """A worker elsewhere finishes the run's items: the open dashboard's bar moves to 100% by itself."""
    from labeling.models import RunItem
    from tests.labeling.factories import make_items

    admin = make_user("boss", staff=True)
    project = make_project(name="Live", members={admin: "admin"})
    run = RoutingRun.objects.create(project=project, kind="seed", state="running")
    run_items = RunItem.objects.bulk_create([RunItem(run=run, item=item) for item in make_items(project, 4)])
    RunItem.objects.filter(pk=run_items[0].pk).update(state="done")
    page = new_page()
    login(page, live_server, "boss")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    row = page.locator(f"#run-{run.pk}")
    assert row.locator(".run-progress").inner_text() == "25%"
    page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    RunItem.objects.filter(run=run).update(state="done")
    RoutingRun.objects.filter(pk=run.pk).update(state="completed")
    row.locator(".run-progress", has_text="100%").wait_for(timeout=10000)
    assert page.locator(f"#run-{run.pk}").get_attribute("data-state") == "completed"
    assert page.evaluate("window.__marker") == 1
