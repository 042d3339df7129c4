"""Server time of the review page with a large project (default 1,000,000 items) on PostgreSQL.

    createdb -h 127.0.0.1 -U postgres tracelab_uibench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tracelab_uibench \
        .venv/bin/python -m tests.e2e.bench_review --items 1000000 --open-tasks 300000 --requests 300

Items, judge runs, router decisions and open review tasks are written with set-based SQL (a minute
or two for a million items); the measurement then drives the real views in-process through Django's
test client, the way the browser does: GET the review fragment (claim), POST a label (submit + next).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracelab.settings")


def _populate(project_id: int, items: int, open_tasks: int) -> None:
    from django.db import connection

    steps = json.dumps([f"Step {k}: the caption mentions a shape and a colour." for k in range(1, 7)])
    with connection.cursor() as cur:
        cur.execute(
            """INSERT INTO labeling_item (project_id, external_id, fields, meta, image_error, state, final_label,
                   final_source, disagreement_score, failure_reason, created_at, updated_at)
               SELECT %s, 'b' || g, jsonb_build_object('text', 'Customer message number ' || g), '{}'::jsonb, '',
                   CASE WHEN g <= %s THEN 'awaiting_review' ELSE 'auto_labeled' END,
                   CASE WHEN g <= %s THEN NULL ELSE 'yes' END, CASE WHEN g <= %s THEN NULL ELSE 'judge' END,
                   random(), '', now(), now()
               FROM generate_series(1, %s) g""", [project_id, open_tasks, open_tasks, open_tasks, items])
        cur.execute(
            """INSERT INTO labeling_judgerun (item_id, model, prompt_version, status, raw_reasoning, steps, label,
                   output_tokens_estimated, output_tokens, stopped_at_step, stop_reason, error, extra, started_at)
               SELECT id, 'bench', 'v1', CASE WHEN state = 'awaiting_review' THEN 'stopped_early' ELSE 'completed' END,
                   '', %s::jsonb, 'yes', false, 120, CASE WHEN state = 'awaiting_review' THEN 3 ELSE 6 END, '', '',
                   '{}'::jsonb, now()
               FROM labeling_item WHERE project_id = %s""", [steps, project_id])
        cur.execute(
            """INSERT INTO labeling_routerdecision (judge_run_id, step, score, action, granted, created_at)
               SELECT j.id, 3, 0.8, 'escalate', true, now() FROM labeling_judgerun j
               JOIN labeling_item i ON i.id = j.item_id WHERE i.project_id = %s AND i.state = 'awaiting_review'""",
            [project_id])
        cur.execute(
            """INSERT INTO labeling_reviewtask (project_id, item_id, priority, reason, state, created_at)
               SELECT project_id, id, disagreement_score, 'router escalated at step 3', 'open', now()
               FROM labeling_item WHERE project_id = %s AND state = 'awaiting_review'""", [project_id])
        cur.execute("ANALYZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--open-tasks", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from labeling.models import Item, Project
    from labeling.services.projects import membership_set, project_create, user_ensure

    settings.ALLOWED_HOSTS = ["*"]
    annotator = user_ensure(username="bench-annotator", password="bench")
    project = Project.objects.filter(name="UI bench").first()
    if project is None or Item.objects.filter(project=project).count() != args.items:
        Project.objects.filter(name="UI bench").delete()
        project = project_create(name="UI bench", question="Valid?", labels=["yes", "no"], item_kind="text")
        membership_set(project=project, user=annotator, role="annotator")
        started = time.perf_counter()
        _populate(project.pk, args.items, args.open_tasks)
        seconds = time.perf_counter() - started
        print(f"populated {args.items:,} items / {args.open_tasks:,} open tasks in {seconds:.0f} s")

    client = Client()
    client.force_login(annotator)
    headers = {"HTTP_X_REQUESTED_WITH": "fetch"}
    review_url = f"/projects/{project.pk}/review/"
    client.get(review_url)  # warm-up (template compilation, connection)
    page_ms, next_ms, queries = [], [], []
    for _ in range(args.requests):
        t0 = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(review_url, **headers)
        page_ms.append((time.perf_counter() - t0) * 1000)
        queries.append(len(captured))
        task_id = int(response.content.split(b'data-task-id="')[1].split(b'"')[0])
        t0 = time.perf_counter()
        client.post(f"{review_url}tasks/{task_id}/label", {"label": "yes"}, **headers)
        next_ms.append((time.perf_counter() - t0) * 1000)
    full_ms = []
    for _ in range(min(50, args.requests)):
        t0 = time.perf_counter()
        client.get(review_url)
        full_ms.append((time.perf_counter() - t0) * 1000)

    def p95(values):
        return statistics.quantiles(values, n=20)[-1]

    print(json.dumps({
        "database": connection.vendor, "items": args.items, "open_tasks": args.open_tasks, "requests": args.requests,
        "review_fragment_ms": {"p50": round(statistics.median(page_ms), 1), "p95": round(p95(page_ms), 1)},
        "review_full_page_ms": {"p50": round(statistics.median(full_ms), 1), "p95": round(p95(full_ms), 1)},
        "label_and_next_ms": {"p50": round(statistics.median(next_ms), 1), "p95": round(p95(next_ms), 1)},
        "queries_per_review_page": max(queries),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
