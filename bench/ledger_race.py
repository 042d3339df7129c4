"""Ledger race: eight processes escalate at once against one budget.

python -m bench.ledger_race [--attempts 10000] [--cap 1000] [--workers 8]

Every attempt is ``ledger_try_spend`` on one item; 80% of the attempts are distinct items, the rest repeat
items already tried (as a worker re-running an item after a crash does), shuffled and split across the
processes, which start together behind a barrier. Checks: spent = cap exactly, ledger entries = spent,
every item that got a "granted" answer has its one ledger entry, no item has two.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import time

from bench.common import bench_env, django_setup, save_results


def _worker(env: dict, budget_id: int, item_ids: list[int], barrier, results) -> None:
    django_setup(env, migrate=False)
    from django.db import connection

    from labeling.services.ledger import ledger_try_spend

    connection.ensure_connection()
    barrier.wait()
    granted, refused, errors = [], 0, 0
    started = time.perf_counter()
    for item_id in item_ids:
        try:
            if ledger_try_spend(budget_id=budget_id, item=item_id, reason="bench escalation"):
                granted.append(item_id)
            else:
                refused += 1
        except Exception:  # counted: a raised error is a failed attempt, which the checks report
            errors += 1
    results.put({"granted": granted, "refused": refused, "errors": errors,
                 "seconds": time.perf_counter() - started})


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    env = bench_env("tracelab_bench_ledger")
    env.pop("REDIS_URL", None)
    django_setup(env)
    from django.db import connection, connections
    from django.db.models import Count

    from labeling.models import Item, LedgerEntry
    from labeling.services.ledger import budget_create
    from labeling.services.projects import project_create

    project = project_create(name="ledger-race", question="q", labels=["yes", "no"], item_kind="text")
    budget = budget_create(project=project, name="race", cap=args.cap)
    distinct = int(args.attempts * (1 - args.repeat_share))
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO labeling_item (project_id, external_id, fields, meta, image, image_error, state,
                   failure_reason, created_at, updated_at)
               SELECT %s, 'l' || g, '{}', '{}', '', '', 'routing', '', now(), now()
               FROM generate_series(1, %s) AS g""", [project.pk, distinct])
    item_ids = list(Item.objects.filter(project=project).values_list("id", flat=True))
    rng = random.Random(args.seed)
    attempts = item_ids + [rng.choice(item_ids) for _ in range(args.attempts - distinct)]
    rng.shuffle(attempts)
    connections.close_all()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(args.workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(env, budget.pk, attempts[k::args.workers], barrier, results))
             for k in range(args.workers)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    budget.refresh_from_db()
    entries = LedgerEntry.objects.filter(budget=budget)
    charged = set(entries.values_list("item_id", flat=True))
    granted = {i for o in outcomes for i in o["granted"]}
    figures = {
        "workers": args.workers, "attempts": len(attempts), "distinct_items": distinct, "cap": args.cap,
        "spent": budget.spent, "ledger_entries": entries.count(),
        "items_charged_twice": entries.values("item_id").annotate(n=Count("id")).filter(n__gt=1).count(),
        "granted_without_entry": len(granted - charged),
        "entries_never_granted": len(charged - granted),
        "refused": sum(o["refused"] for o in outcomes), "errors": sum(o["errors"] for o in outcomes),
        "seconds": round(max(o["seconds"] for o in outcomes), 2),
    }
    figures["attempts_per_s"] = round(len(attempts) / figures["seconds"])
    save_results("ledger_race", figures)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
