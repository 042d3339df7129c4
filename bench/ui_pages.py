"""Server time of every browser page with one large project (default 1,000,000 items) on PostgreSQL.

python -m bench.ui_pages [--items 1000000] [--requests 30] [--review-requests 300] [--keep-database NAME]

The project is filled server-side with set-based SQL (INSERT … SELECT generate_series; about three minutes
for a million items): ten batches; items across every state (30% pending, 20% labelled by the surrogate,
30% by the judge, 10% awaiting review with an open review task, 8% labelled by humans over the last 30 days,
the newest eighth of those labels waiting for a reviewer, 1% failed, 1% routing); a judge run for every item
the judge saw, three router decisions for each early-stopped one; a finished seed run over the first batch
and a running routing run over the rest; then VACUUM ANALYZE. The pages are driven in-process through
Django's test client as the browser does, each GET ``--requests`` times after a warm-up: figures
``<page>_p50_ms``, ``<page>_p95_ms`` and ``<page>_queries`` (the most queries one request ran), and
``slowest_page_p95_ms``. Last, the annotator's loop, ``--review-requests`` times: the review fragment with
the lease held, label + next item, the full review page (``review_fragment_ms``, ``label_and_next_ms``,
``review_full_page_ms``, ``queries_per_review_page``).

Goal (issue 7): every page < 200 ms at 1,000,000 items.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from bench.common import PG_ADMIN, bench_env, django_setup, percentiles_ms, save_results

LABELS = ["yes", "no"]
BATCHES = 10
ANNOTATORS = 5

# Item state by g % 100 (g = 1 … N), and the tier of its final label.
# (SQL with parameters: % is written %%.)
STATE_SQL = """CASE WHEN g %% 100 < 30 THEN 'pending' WHEN g %% 100 < 80 THEN 'auto_labeled'
                    WHEN g %% 100 < 90 THEN 'awaiting_review' WHEN g %% 100 < 98 THEN 'human_labeled'
                    WHEN g %% 100 = 98 THEN 'failed' ELSE 'routing' END"""
SOURCE_SQL = """CASE WHEN g %% 100 BETWEEN 30 AND 49 THEN 'surrogate' WHEN g %% 100 BETWEEN 50 AND 79 THEN 'judge'
                     WHEN g %% 100 BETWEEN 90 AND 97 THEN 'human' END"""


def fill(n: int) -> float:
    """The large project, its members and runs; returns the seconds it took."""
    from django.db import connection

    from labeling.models import Budget, RoutingRun
    from labeling.services.projects import batch_create, membership_set, project_create, user_ensure

    started = time.perf_counter()
    admin = user_ensure(username="bench-admin", password="bench")
    reviewer = user_ensure(username="bench-reviewer", password="bench")
    annotators = [user_ensure(username=f"bench-annotator{k}", password="bench") for k in range(ANNOTATORS)]
    project = project_create(name="UI bench", question="Is the request valid?", labels=LABELS, item_kind="text")
    membership_set(project=project, user=admin, role="admin")
    membership_set(project=project, user=reviewer, role="reviewer")
    for user in annotators:
        membership_set(project=project, user=user, role="annotator")
    batch_ids = [batch_create(project=project, name=f"batch {k + 1}").pk for k in range(BATCHES)]
    seed_budget = Budget.objects.create(project=project, name="seed run", cap=n // BATCHES, spent=0)
    route_budget = Budget.objects.create(project=project, name="routing run", cap=n // 5, spent=0)
    seed = RoutingRun.objects.create(project=project, batch_id=batch_ids[0], kind="seed", state="completed",
                                     budget=seed_budget)
    route = RoutingRun.objects.create(project=project, kind="route", state="running", budget=route_budget,
                                      budget_rate=0.2)
    steps = json.dumps([f"Step {k}: the message asks for a refund of a declined payment." for k in range(1, 7)])
    run_of = f"CASE WHEN i.batch_id = {batch_ids[0]} THEN {seed.pk} ELSE {route.pk} END"
    p = project.pk
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO labeling_item (project_id, batch_id, external_id, fields, meta, image, image_error, state,
                    final_label, final_source, disagreement_score, failure_reason, created_at, updated_at)
                SELECT %s, (%s::bigint[])[1 + ((g - 1) * {BATCHES}) / %s], 'u' || g,
                    jsonb_build_object('text', 'Customer message ' || g || ': my card payment was declined twice.'),
                    jsonb_build_object('slice', 's' || (g %% 7)), '', '', {STATE_SQL},
                    CASE WHEN ({SOURCE_SQL}) IS NULL THEN NULL WHEN g %% 2 = 0 THEN 'yes' ELSE 'no' END, {SOURCE_SQL},
                    random(), CASE WHEN g %% 100 = 98 THEN 'judge failed: timeout' ELSE '' END, now(), now()
                FROM generate_series(1, %s) AS g""", [p, batch_ids, n, n])
        # The seed run covers the first batch, the routing run every other item that left pending.
        cur.execute(
            f"""INSERT INTO labeling_runitem (run_id, item_id, priority, state, attempts, lease_expires_at, finished_at)
                SELECT {run_of}, i.id, i.disagreement_score,
                    CASE i.state WHEN 'routing' THEN 'claimed' WHEN 'failed' THEN 'failed' ELSE 'done' END, 1,
                    CASE WHEN i.state = 'routing' THEN now() + interval '1 hour' END,
                    CASE WHEN i.state <> 'routing' THEN now() END
                FROM labeling_item i WHERE i.project_id = %s AND i.state <> 'pending'""", [p])
        cur.execute(
            f"""INSERT INTO labeling_judgerun (item_id, run_id, model, prompt_version, status, raw_reasoning, steps,
                    label, input_tokens, output_tokens, output_tokens_estimated, latency_ms, stopped_at_step,
                    stop_reason, error, extra, started_at, finished_at)
                SELECT i.id, {run_of}, 'bench', 'v1',
                    CASE i.state WHEN 'failed' THEN 'failed' WHEN 'auto_labeled' THEN 'completed'
                         ELSE 'stopped_early' END,
                    '', %s::jsonb, 'yes', 400, CASE WHEN i.state = 'auto_labeled' THEN 120 ELSE 60 END, false, 900,
                    CASE WHEN i.state = 'auto_labeled' THEN 6 WHEN i.state = 'failed' THEN NULL ELSE 3 END,
                    CASE WHEN i.state = 'auto_labeled' THEN 'completed' ELSE 'router' END, '', '{{}}'::jsonb,
                    now(), now()
                FROM labeling_item i WHERE i.project_id = %s AND (i.final_source = 'judge'
                    OR i.state IN ('awaiting_review', 'human_labeled', 'failed'))""", [steps, p])
        cur.execute(
            """INSERT INTO labeling_routerdecision (judge_run_id, step, score, action, granted, created_at)
               SELECT j.id, s, 0.3 * s, CASE WHEN s = 3 THEN 'escalate' ELSE 'continue' END,
                      CASE WHEN s = 3 THEN true END, now()
               FROM labeling_judgerun j JOIN labeling_item i ON i.id = j.item_id, generate_series(1, 3) AS s
               WHERE i.project_id = %s AND j.status = 'stopped_early'""", [p])
        cur.execute(
            f"""INSERT INTO labeling_reviewtask (project_id, item_id, run_id, priority, reason, state, created_at,
                    completed_at)
                SELECT i.project_id, i.id, {run_of}, i.disagreement_score, 'router escalated at step 3',
                    CASE WHEN i.state = 'awaiting_review' THEN 'open' ELSE 'done' END, now(),
                    CASE WHEN i.state = 'human_labeled' THEN now() END
                FROM labeling_item i WHERE i.project_id = %s AND i.state IN ('awaiting_review', 'human_labeled')""",
            [p])
        # Labels given over the last 30 days; reviewers have judged all but the newest eighth, which wait for a
        # verdict (the sample has to skip the judged ones).
        cur.execute(
            """INSERT INTO labeling_humanlabel (item_id, task_id, annotator_id, annotator_name, label,
                   lead_time_seconds, source, review_status, created_at)
               SELECT item_id, id, (%s::int[])[1 + id %% %s], '', final_label, 2 + random() * 20, 'review',
                   CASE WHEN newest <= total / 8 THEN 'pending' ELSE 'accepted' END,
                   now() - (CASE WHEN newest <= total / 8 THEN 0 ELSE 1 END + random() * 29) * interval '1 day'
               FROM (SELECT t.item_id, t.id, i.final_label, row_number() OVER (ORDER BY t.id DESC) AS newest,
                            count(*) OVER () AS total
                     FROM labeling_reviewtask t JOIN labeling_item i ON i.id = t.item_id
                     WHERE t.project_id = %s AND t.state = 'done') AS done""",
            [[u.pk for u in annotators], ANNOTATORS, p])
        cur.execute("""UPDATE labeling_budget b SET spent = (SELECT count(*) FROM labeling_reviewtask t
                       JOIN labeling_routingrun r ON r.id = t.run_id WHERE r.budget_id = b.id) WHERE b.project_id = %s""",
                    [p])
    _settle()
    return round(time.perf_counter() - started, 1)


def bench_ids() -> dict | None:
    """The bench project and the users who look at it, or None if there is no filled project."""
    from django.contrib.auth import get_user_model

    from labeling.models import Project

    project = Project.objects.filter(name="UI bench").first()
    if project is None:
        return None
    users = dict(get_user_model().objects.filter(username__startswith="bench-").values_list("username", "id"))
    return {"project_id": project.pk, "admin": users["bench-admin"], "reviewer": users["bench-reviewer"],
            "annotator": users["bench-annotator0"]}


def _settle() -> None:
    """VACUUM ANALYZE after the bulk load, as autovacuum does on its own a little later (the visibility map
    and the planner statistics of a settled database). Django's connection is in autocommit mode here."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def kept_env(database: str) -> dict[str, str]:
    """Development: a named database that is kept between runs (created if missing), not a scratch one."""
    import psycopg

    with psycopg.connect(PG_ADMIN.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    return {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}", "DJANGO_DEBUG": "false",
            "DJANGO_LOG_LEVEL": "WARNING", "TRACELAB_VAR_DIR": f"/tmp/tracelab-bench-{database}"}


def _client(user_id: int):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(pk=user_id))
    return client


def time_pages(ids: dict, requests: int) -> dict:
    """GET every page ``requests`` times (after one warm-up); p50/p95 and the number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    p = ids["project_id"]
    admin, reviewer, annotator = _client(ids["admin"]), _client(ids["reviewer"]), _client(ids["annotator"])
    fetch = {"HTTP_X_REQUESTED_WITH": "fetch"}
    pages = {
        "home": (admin, "/", {}),
        "queue": (annotator, f"/projects/{p}/", {}),
        "review_sample": (reviewer, f"/projects/{p}/reviews/", {}),
        "dashboard": (admin, f"/projects/{p}/dashboard/", {}),
        "dashboard_runs": (admin, f"/projects/{p}/dashboard/runs", fetch),
        "run_start": (admin, f"/projects/{p}/runs/new", {}),
        "models": (admin, f"/projects/{p}/models/", {}),
        "imports": (admin, f"/projects/{p}/imports/", {}),
        "settings": (admin, f"/projects/{p}/settings", {}),
        "api_items": (reviewer, f"/api/v1/projects/{p}/items/", {}),
        "api_items_pending": (reviewer, f"/api/v1/projects/{p}/items/?state=pending", {}),
        "api_items_human": (reviewer, f"/api/v1/projects/{p}/items/?source=human", {}),
        "api_items_batch_failed": (reviewer, f"/api/v1/projects/{p}/items/?state=failed&batch={_last_batch(p)}", {}),
    }
    figures = {}
    for name, (client, url, headers) in pages.items():
        response = client.get(url, **headers)
        assert response.status_code == 200, (name, response.status_code)
        seconds, queries = [], 0
        for _ in range(requests):
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                client.get(url, **headers)
            seconds.append(time.perf_counter() - started)
            queries = max(queries, len(captured))
        figures.update({k.replace("_n", "_requests") if k.endswith("_n") else k: v
                        for k, v in percentiles_ms(seconds, name).items() if not k.endswith(("_p99_ms", "_max_ms"))})
        figures[f"{name}_queries"] = queries
        print(f"{name:24s} p50 {figures[f'{name}_p50_ms']:8.1f} ms  p95 {figures[f'{name}_p95_ms']:8.1f} ms  "
              f"{queries} queries", flush=True)
    figures["slowest_page_p95_ms"] = max(v for k, v in figures.items() if k.endswith("_p95_ms"))
    return figures


def _last_batch(project_id: int) -> int:
    from labeling.models import Batch

    return Batch.objects.filter(project_id=project_id).order_by("-id").values_list("id", flat=True)[0]


def time_review(ids: dict, requests: int) -> dict:
    """The annotator's loop: review fragment with the lease held, the full page, label + next item."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _client(ids["annotator"])
    headers = {"HTTP_X_REQUESTED_WITH": "fetch"}
    review_url = f"/projects/{ids['project_id']}/review/"
    client.get(review_url)  # warm-up (template compilation, connection)
    page_ms, next_ms, full_ms, queries = [], [], [], []
    for _ in range(requests):
        t0 = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(review_url, **headers)
        page_ms.append((time.perf_counter() - t0) * 1000)
        queries.append(len(captured))
        task_id = int(response.content.split(b'data-task-id="')[1].split(b'"')[0])
        t0 = time.perf_counter()
        client.post(f"{review_url}tasks/{task_id}/label", {"label": "yes"}, **headers)
        next_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        client.get(review_url)
        full_ms.append((time.perf_counter() - t0) * 1000)

    def p95(values):
        return statistics.quantiles(values, n=20)[-1]

    return {
        "review_fragment_ms": {"p50": round(statistics.median(page_ms), 1), "p95": round(p95(page_ms), 1)},
        "review_full_page_ms": {"p50": round(statistics.median(full_ms), 1), "p95": round(p95(full_ms), 1)},
        "label_and_next_ms": {"p50": round(statistics.median(next_ms), 1), "p95": round(p95(next_ms), 1)},
        "queries_per_review_page": max(queries), "review_requests": requests,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30, help="GETs per page")
    parser.add_argument("--review-requests", type=int, default=300, help="label + next rounds")
    parser.add_argument("--keep-database", metavar="NAME",
                        help="development: use this named database and keep it, reusing a project of the same size "
                             "from an earlier run (default: a scratch database, dropped at exit)")
    parser.add_argument("--section", default="ui_pages", help="results.json section to write")
    args = parser.parse_args(argv)
    env = kept_env(args.keep_database) if args.keep_database else bench_env("tracelab_bench_ui")
    env.pop("REDIS_URL", None)
    django_setup(env)
    from django.conf import settings

    from labeling.models import Item

    settings.ALLOWED_HOSTS = ["*"]
    figures = {}
    ids = bench_ids()
    if ids is None:
        figures["fill_seconds"] = fill(args.items)
        ids = bench_ids()
        print(f"filled {args.items:,} items in {figures['fill_seconds']} s", flush=True)
    elif Item.objects.filter(project_id=ids["project_id"]).count() != args.items:
        parser.error(f"{args.keep_database} holds a project of another size: drop it or name another database")
    figures.update(items=args.items, requests=args.requests)
    figures.update(time_pages(ids, args.requests))
    save_results(args.section, figures)
    if args.review_requests:
        figures.update(time_review(ids, args.review_requests))
        save_results(args.section, figures)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
