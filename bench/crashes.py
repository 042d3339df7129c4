"""Crashes: SIGKILL a random Celery pool process mid-stream, again and again, during one routing run.

python -m bench.crashes [--kills 20] [--items 400] [--workers 2 --concurrency 2] [--lease-seconds 8]

The judge is the replay server at 40 tokens/s (one token per chunk), so every item streams for about a
second and a kill lands mid-stream: a kill happens only while some judge run is streaming, at a random
moment, on a random pool process of a random worker. The workers run with a short routing lease
(TRACELAB_ROUTE_LEASE_SECONDS) so an abandoned item is revisited soon. After the run: every item in
exactly one terminal state (or awaiting review with exactly one open task), no double charge, no
streaming judge run and no run-item lease left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import time
import uuid

from bench.common import (bench_env, celery_workers, django_setup, pool_children, run_inconsistencies,
                          save_results, wait_for_run)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--lease-seconds", type=int, default=8)
    parser.add_argument("--tokens-per-second", type=float, default=40.0)
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = bench_env("tracelab_bench_crashes", CELERY_QUEUE=queue,
                    TRACELAB_ROUTE_LEASE_SECONDS=str(args.lease_seconds))
    django_setup(env)
    from labeling.models import JudgeRun
    from labeling.services.runs import routing_run_create
    from routing.replay_server import ReplayServer
    from tests.labeling.pipeline_support import new_batch, trained_project

    project = trained_project(name="bench-crashes")
    records, batch = new_batch(project, args.items)
    kills, kill_log = 0, []
    started = time.perf_counter()
    with ReplayServer(records, tokens_per_second=args.tokens_per_second, tokens_per_chunk=1) as server:
        project.judge_base_url = server.base_url
        project.save(update_fields=["judge_base_url"])
        with celery_workers(env, args.workers, concurrency=args.concurrency,
                            log_dir=env["TRACELAB_VAR_DIR"]) as workers:
            run = routing_run_create(project=project, batch=batch, kind="route", rate=0.3)
            deadline = time.monotonic() + args.timeout
            while kills < args.kills and time.monotonic() < deadline:
                run.refresh_from_db()
                if run.state != "running":
                    break
                if not JudgeRun.objects.filter(run=run, status="streaming").exists():
                    time.sleep(0.1)
                    continue
                time.sleep(rng.uniform(0.1, 0.6))  # somewhere inside the stream
                streaming = JudgeRun.objects.filter(run=run, status="streaming").count()
                children = pool_children(rng.choice(workers))
                if not streaming or not children:
                    continue
                victim = rng.choice(children)
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                kills += 1
                kill_log.append({"t": round(time.perf_counter() - started, 1), "pid": victim,
                                 "streaming": streaming})
                time.sleep(rng.uniform(0.5, 2.0))  # let the pool replace the process
            finished = wait_for_run(run, max(60.0, deadline - time.monotonic()))
            # Leases of items abandoned at the very end expire and are revisited; give them that time.
            time.sleep(1)
    figures = {"items": args.items, "workers": args.workers, "concurrency": args.concurrency,
               "kills_requested": args.kills, "kills": kills, "lease_seconds": args.lease_seconds,
               "run_state": run.state, "finished": finished, "seconds": round(time.perf_counter() - started, 1),
               "abandoned_judge_runs": JudgeRun.objects.filter(run=run, status="failed",
                                                               error__startswith="abandoned").count(),
               "escalated": run.budget.spent, "budget_cap": run.budget.cap,
               "replay_disconnects": server.stats()["disconnected"]}
    counts = run_inconsistencies(run)
    figures.update(counts)
    figures["stuck_leases"] = counts["leases_left"]
    figures["kill_log"] = kill_log
    save_results("crashes", figures)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
