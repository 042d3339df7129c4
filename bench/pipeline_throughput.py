"""Pipeline throughput: two Celery workers route a batch through the replay judge.

python -m bench.pipeline_throughput [--items 10000] [--paced-items 200] [--workers 2]

1. Instant judge (tokens_per_second=0, tokens_per_chunk=16): N items from run start to run completed →
   items/s, and per worker.
2. Paced judge at 50 tokens/s on a smaller batch: the share of the workers' wall time that is not spent
   streaming the judge (Σ stream seconds reported by the replay server vs workers × run wall time), and the
   same share inside judge runs only (JudgeRun started→finished vs that item's stream).

The project is the synthetic trained stack of tests/labeling/pipeline_support.py (a real scorer and
router trained from 120 labelled traces). Goals (issue 7): ≥ 50 items/s per worker; overhead ≤ 5%.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid

from bench.common import (
    bench_env, celery_workers, cpu_seconds, django_setup, load_average, replay_judge_process, run_inconsistencies,
    save_results, wait_for_run,
)


def route(project, records, batch, *, tokens_per_second: float, tokens_per_chunk: int, timeout: float,
          workers: list | None = None):
    from labeling.models import JudgeRun
    from labeling.services.runs import routing_run_create
    from routing.replay_server import ReplayServer

    with ReplayServer(records, tokens_per_second=tokens_per_second, tokens_per_chunk=tokens_per_chunk) as server:
        project.judge_base_url = server.base_url
        project.save(update_fields=["judge_base_url"])
        groups = [proc.pid for proc in workers or []]
        cpu_before, started = cpu_seconds(groups), time.perf_counter()
        run = routing_run_create(project=project, batch=batch, kind="route", rate=0.3)
        created = time.perf_counter() - started
        finished = wait_for_run(run, timeout)
        wall = time.perf_counter() - started
        cpu_after = cpu_seconds(groups)
        server.wait_idle(5)
        logs = server.requests()
    streams = {log.record_id: log.duration_s for log in logs if log.stream}
    judged = list(JudgeRun.objects.filter(run=run, finished_at__isnull=False)
                  .values_list("item__external_id", "started_at", "finished_at"))
    inside = [((fin - start).total_seconds(), streams.get(ext, 0.0)) for ext, start, fin in judged]
    return run, {"finished": finished, "wall_seconds": wall, "create_seconds": created,
                 "stream_seconds": sum(streams.values()), "streams": len(streams),
                 "inside": inside, "cpu": {k: cpu_after[k] - cpu_before[k] for k in cpu_after}}


PROFILE_FILE = "/tmp/tracelab-pipeline.prof"


class QueryLog:
    """A connection.execute_wrapper that counts and times each SQL statement shape (literals masked)."""

    def __init__(self):
        self.by_shape: dict[str, list[float]] = {}

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = re.sub(r'"s\d+_x\d+"', "<savepoint>", re.sub(r"\s+", " ", sql))[:150]
            self.by_shape.setdefault(shape, []).append(time.perf_counter() - started)

    def count(self) -> int:
        return sum(len(v) for v in self.by_shape.values())

    def table(self, items: int) -> str:
        rows = sorted(self.by_shape.items(), key=lambda kv: -sum(kv[1]))
        lines = [f"{self.count() / items:.1f} statements per item, {1000 * sum(map(sum, self.by_shape.values())) / items:.1f} "
                 "ms per item in the database; by shape (per item: count, ms):"]
        lines += [f"{len(v) / items:5.2f} {1000 * sum(v) / items:6.2f}  {shape}" for shape, v in rows[:25]]
        return "\n".join(lines)


def profile(project, n: int, *, sort: str | None = None) -> dict:
    """n items claimed and routed in this process as `run_route_slice` does (instant judge, no Celery): wall and CPU ms per item, SQL
    statements per item by shape, the claim scan's plan; with ``sort``, a cProfile (CPU time) sorted so."""
    import cProfile
    import io
    import pstats

    from django.db import connection, transaction

    from labeling.models import RoutingRun, RunItem
    from labeling.services.pipeline import run_item_route
    from labeling.services.runs import routing_run_create, run_claim_next
    from tests.labeling.pipeline_support import new_batch

    records, batch = new_batch(project, n, start=500_000)
    with replay_judge_process(records) as judge_url:
        project.judge_base_url = judge_url
        project.save(update_fields=["judge_base_url"])
        run = routing_run_create(project=project, batch=batch, kind="route", rate=0.3, start=False)
        RoutingRun.objects.filter(pk=run.pk).update(state="running")
        run_item_route(run_item=run_claim_next(run_id=run.pk))  # warm-up: model loading, judge client
        profiler = cProfile.Profile(time.process_time) if sort else None  # CPU time: the machine may be busy
        queries = QueryLog()
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        with connection.execute_wrapper(queries):
            for _ in range(n - 1):
                run_item_route(run_item=run_claim_next(run_id=run.pk))
        if profiler:
            profiler.disable()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(30)
        print(out.getvalue())
        profiler.dump_stats(PROFILE_FILE)
        print(f"cProfile stats saved to {PROFILE_FILE}")
    print(queries.table(n - 1))
    with transaction.atomic():
        scan = (RunItem.objects.filter(run_id=run.pk, run__state="running", state="queued")
                .order_by("-priority", "id").select_for_update(skip_locked=True, of=("self",))[:1])
        sql, params = scan.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE) " + sql, params)
            print("\n".join(row[0] for row in cursor.fetchall()))
        transaction.set_rollback(True)
    return {"profile_items": n - 1, "profile_ms_per_item": round(1000 * seconds / (n - 1), 1),
            "profile_cpu_ms_per_item": round(1000 * cpu_seconds / (n - 1), 1),
            "profile_statements_per_item": round(queries.count() / (n - 1), 1), "load_average": load_average(),
            "note": "the replay judge runs in a process of its own" + ("; CPU ms include cProfile" if sort else "")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--paced-items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens-per-second", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--section", default="pipeline_throughput", help="results.json section to write")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="only time N in-process routing steps (no workers) and print SQL statements by shape")
    parser.add_argument("--cprofile", metavar="SORT", help="with --profile: also print a cProfile sorted by SORT "
                        "(cumulative, tottime, …)")
    args = parser.parse_args(argv)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = bench_env("tracelab_bench_pipeline", CELERY_QUEUE=queue)
    django_setup(env)
    from tests.labeling.pipeline_support import new_batch, trained_project

    project = trained_project(name="bench-pipeline")
    if args.profile:
        figures = profile(project, args.profile, sort=args.cprofile)
        print(json.dumps(figures))
        return figures
    figures: dict = {"items": args.items, "workers": args.workers, "worker_concurrency": 1,
                     "paced_items": args.paced_items, "tokens_per_second": args.tokens_per_second}
    started = time.perf_counter()
    records, batch = new_batch(project, args.items, start=100_000)
    figures["batch_import_seconds"] = round(time.perf_counter() - started, 1)
    with celery_workers(env, args.workers, log_dir=env["TRACELAB_VAR_DIR"]) as workers:
        run, fast = route(project, records, batch, tokens_per_second=0, tokens_per_chunk=16, timeout=args.timeout,
                          workers=workers)
        figures.update(
            completed=fast["finished"] and run.state == "completed",
            wall_seconds=round(fast["wall_seconds"], 1), run_create_seconds=round(fast["create_seconds"], 1),
            items_per_s=round(args.items / fast["wall_seconds"], 1),
            items_per_s_per_worker=round(args.items / fast["wall_seconds"] / args.workers, 1),
            escalated=run.budget.spent if run.budget else None,
            # Where the time goes: the workers' own CPU, and every core's (PostgreSQL, the judge, Redis, …).
            worker_cpu_ms_per_item=round(1000 * fast["cpu"]["processes"] / args.items, 2),
            machine_cpu_ms_per_item=round(1000 * fast["cpu"]["machine"] / args.items, 2),
        )
        figures.update(run_inconsistencies(run))
        if args.paced_items:
            records, batch = new_batch(project, args.paced_items, start=900_000)
            run, paced = route(project, records, batch, tokens_per_second=args.tokens_per_second, tokens_per_chunk=1,
                               timeout=args.timeout)
            busy = args.workers * paced["wall_seconds"]
            inside_wall = sum(w for w, _ in paced["inside"])
            inside_stream = sum(s for _, s in paced["inside"])
            figures.update(
                paced_completed=paced["finished"] and run.state == "completed",
                paced_wall_seconds=round(paced["wall_seconds"], 1),
                paced_stream_seconds=round(paced["stream_seconds"], 1),
                paced_streams=paced["streams"],
                paced_overhead_share=round(1 - paced["stream_seconds"] / busy, 4),
                paced_judge_run_overhead_share=round(1 - inside_stream / inside_wall, 4) if inside_wall else None,
                paced_inconsistent_items=run_inconsistencies(run)["inconsistent_items"],
            )
    figures["notes"] = ("paced_overhead_share = 1 − Σ replay stream seconds / (workers × run wall time): everything "
                        "that is not streaming the judge (claims, scoring, ledger, saves, idle tail, items escalated "
                        "before the judge); paced_judge_run_overhead_share counts only time inside judge runs, "
                        "and is within its resolution of zero: a small negative value means the server counted "
                        "a stream as still open a moment after the worker had closed it (an early stop). "
                        "worker_cpu_ms_per_item / machine_cpu_ms_per_item: the workers' CPU, and all cores' "
                        "(PostgreSQL, the replay judge, Redis, the workers), per item of the instant-judge run.")
    save_results(args.section, figures)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
