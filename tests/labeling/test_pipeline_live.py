"""The pipeline with real services: PostgreSQL, Redis and Celery worker processes.

Workers are started as subprocesses on the test database and a queue of their own; one is killed with
SIGKILL mid-stream. Skipped when PostgreSQL or Redis is not configured (CI always has both).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count

from labeling.models import Item, JudgeRun, LedgerEntry, ReviewTask, RoutingRun, RunItem
from labeling.services.runs import routing_run_create
from routing.replay_server import ReplayServer
from tests.conftest import REPO
from tests.labeling.pipeline_support import new_batch, trained_project

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers(settings, tmp_path):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("live worker tests need PostgreSQL and Redis (DATABASE_URL and REDIS_URL)")
    from tracelab.celery import app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL, "CELERY_QUEUE": queue, "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "TRACELAB_ROUTE_LEASE_SECONDS": "15", "DJANGO_LOG_LEVEL": "WARNING",
    }
    started: list[subprocess.Popen] = []

    def start(n: int = 1, concurrency: int = 1, **extra_env: str) -> list[subprocess.Popen]:
        for _ in range(n):
            name = f"w{len(started)}-{queue}@%h"
            started.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tracelab", "worker", "-Q", queue, "-n", name,
                 "--concurrency", str(concurrency), "--pool", "prefork", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "--loglevel", "WARNING"],
                cwd=REPO, env={**env, **extra_env}, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name.split('@')[0]}.log", "w"), start_new_session=True,
            ))
        return started

    start.queue = queue
    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    from labeling.services.pipeline import _judge_client

    _judge_client.cache_clear()


def wait_for_run(run: RoutingRun, timeout: float = 300.0) -> RoutingRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in ("completed", "failed", "cancelled"):
            return run
        time.sleep(0.3)
    states = dict(RunItem.objects.filter(run=run).values_list("state").annotate(n=Count("id")))
    raise AssertionError(f"run {run.pk} did not finish in {timeout:.0f} s: {states}")


def assert_consistent(run: RoutingRun) -> None:
    """Every item ends in a terminal state exactly once, no double charge, nothing stuck."""
    items = Item.objects.filter(run_items__run=run)
    assert not items.filter(state__in=["pending", "routing"]).exists()
    assert RunItem.objects.filter(run=run).exclude(state__in=["done", "failed"]).count() == 0
    run.budget.refresh_from_db()
    assert LedgerEntry.objects.filter(budget=run.budget).count() == run.budget.spent <= run.budget.cap
    for item in items:
        open_tasks = ReviewTask.objects.filter(item=item, state__in=["open", "leased"]).count()
        assert open_tasks == (1 if item.state == "awaiting_review" else 0), item.external_id
        assert (item.final_label is not None) == (item.state in ("auto_labeled", "human_labeled"))
        assert JudgeRun.objects.filter(item=item, run=run, status="streaming").count() == 0


def test_a_batch_end_to_end_with_two_workers(workers):
    project = trained_project()
    records, batch = new_batch(project, 30)
    with ReplayServer(records, tokens_per_second=0, tokens_per_chunk=8) as server:
        project.judge_base_url = server.base_url
        project.save()
        workers(2)
        run = wait_for_run(routing_run_create(project=project, batch=batch, kind="route", rate=0.3))
    assert run.state == "completed"
    assert_consistent(run)
    assert 0 < run.budget.spent <= 9
    assert Item.objects.filter(run_items__run=run, final_source="judge").count() == 30 - run.budget.spent


def test_a_run_handed_on_one_item_per_task_still_completes(workers, settings):
    """Each task routes one item, then hands the run on (a zero-second slice); one task in flight."""
    import redis

    settings.TRACELAB_ROUTE_TASKS_PER_RUN = 1
    project = trained_project()
    records, batch = new_batch(project, 20)
    with ReplayServer(records, tokens_per_second=0, tokens_per_chunk=8) as server:
        project.judge_base_url = server.base_url
        project.save()
        run = routing_run_create(project=project, batch=batch, kind="route", rate=0.3)
        assert redis.Redis.from_url(settings.REDIS_URL).llen(workers.queue) == 1
        workers(2, TRACELAB_ROUTE_SLICE_SECONDS="0")
        run = wait_for_run(run)
    assert run.state == "completed"
    assert_consistent(run)
    assert Item.objects.filter(run_items__run=run, state__in=["auto_labeled", "awaiting_review"]).count() == 20


def test_a_worker_killed_mid_stream_loses_nothing_and_charges_nothing_twice(workers):
    project = trained_project()
    records, batch = new_batch(project, 12)
    with ReplayServer(records, tokens_per_second=40, tokens_per_chunk=1) as server:
        project.judge_base_url = server.base_url
        project.save()
        (proc,) = workers(1)
        run = routing_run_create(project=project, batch=batch, kind="route", rate=0.5)
        killed = 0
        deadline = time.monotonic() + 60
        while killed < 2 and time.monotonic() < deadline:
            streaming = JudgeRun.objects.filter(run=run, status="streaming").first()
            if streaming is not None:
                time.sleep(0.3)  # mid-stream
                children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
                for pid in children:
                    os.kill(int(pid), signal.SIGKILL)  # the pool process streaming the judge
                killed += bool(children)
                time.sleep(1.0)
            time.sleep(0.1)
        assert killed == 2
        run = wait_for_run(run)
    assert run.state == "completed"
    assert_consistent(run)
    abandoned = JudgeRun.objects.filter(run=run, status="failed", error__startswith="abandoned")
    assert abandoned.count() >= 1  # the killed streams were noticed and the items re-routed
    for judge_run in abandoned:
        assert Item.objects.get(pk=judge_run.item_id).state != "routing"


def test_eight_workers_racing_escalations_never_overspend(workers):
    project = trained_project()
    records, batch = new_batch(project, 60)
    with ReplayServer(records, tokens_per_second=0, tokens_per_chunk=8) as server:
        project.judge_base_url = server.base_url
        project.save()
        workers(4, concurrency=2)  # eight worker processes
        run = wait_for_run(routing_run_create(project=project, batch=batch, kind="route", cap=5))
    assert_consistent(run)
    assert run.budget.cap == 5 and run.budget.spent == 5
    assert ReviewTask.objects.filter(run=run).count() == 5
