"""Shared benchmark plumbing: a scratch PostgreSQL database, a served app, results I/O, machine facts."""

from __future__ import annotations

import atexit
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_mb": mem, "python": platform.python_version(),
            "os": platform.platform()}


def load_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def load_average() -> float:
    """The 1-minute load average now (the machine is shared: every figure says how busy it was)."""
    return round(os.getloadavg()[0], 2)


def save_results(section: str, figures: dict[str, Any]) -> None:
    """Replace one section of bench/results.json; the other sections stay as they were."""
    results = load_results()
    results[section] = {"load_average": load_average(), **figures,
                        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def percentiles_ms(seconds: list[float], prefix: str) -> dict[str, float]:
    """{prefix_p50_ms, prefix_p95_ms, prefix_p99_ms, prefix_max_ms, prefix_n} of latencies in seconds."""
    import numpy as np

    if not seconds:
        return {f"{prefix}_n": 0}
    values = np.asarray(seconds) * 1000
    figures = {f"{prefix}_p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)}
    figures[f"{prefix}_max_ms"] = round(float(values.max()), 2)
    figures[f"{prefix}_n"] = len(seconds)
    return figures


def bench_env(database: str, **extra: str) -> dict[str, str]:
    """Environment for the app, workers and helper processes of one benchmark on a scratch database."""
    url = scratch_database(database)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "false", "DJANGO_LOG_LEVEL": "WARNING",
           "TRACELAB_VAR_DIR": scratch_directory(url.rsplit("/", 1)[1]), **extra}
    return env


def scratch_directory(name: str) -> str:
    """A fresh /tmp/tracelab-bench-<name> (the app's TRACELAB_VAR_DIR), removed when this process exits."""
    path = Path(tempfile.gettempdir()) / f"tracelab-bench-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return str(path)


def django_setup(env: dict[str, str], *, migrate: bool = True) -> None:
    """Configure Django in this process on the benchmark's database (once per process) and migrate."""
    os.environ.update({k: v for k, v in env.items() if k in ("DATABASE_URL", "REDIS_URL", "CELERY_QUEUE",
                                                           "DJANGO_DEBUG", "DJANGO_LOG_LEVEL", "TRACELAB_VAR_DIR",
                                                           "DJANGO_MEDIA_ROOT", "TRACELAB_ROUTE_LEASE_SECONDS")})
    if "REDIS_URL" not in env:
        os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracelab.settings")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_database(name: str) -> str:
    """Create a PostgreSQL database for this benchmark process; returns its URL.

    The database is ``<name>_<pid>_<random>``, so two benchmarks running at once (even the same one twice)
    never share or drop each other's database. It is dropped when this process exits; databases of the same
    ``name`` left by benchmark processes that died without that (SIGKILL, a timeout) are dropped first.
    """
    import psycopg

    unique = f"{name}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        for stale in _stale_scratch_databases(conn, name):
            conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{unique}"')
    atexit.register(_drop_database, unique)
    return f"postgres://postgres@127.0.0.1:5432/{unique}"


def _admin_url() -> str:
    return PG_ADMIN.replace("postgres://", "postgresql://")


def _stale_scratch_databases(conn, name: str) -> list[str]:
    """Scratch databases ``<name>_<pid>_<hex>`` whose creating process is gone."""
    pattern = re.compile(rf"{re.escape(name)}_(\d+)_[0-9a-f]{{6}}")
    stale = []
    for (database,) in conn.execute("SELECT datname FROM pg_database").fetchall():
        match = pattern.fullmatch(database)
        if match and not _alive(int(match.group(1))):
            stale.append(database)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def _drop_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as exc:  # the server went away: nothing left to clean on it
        print(f"[bench] could not drop scratch database {name}: {exc}", file=sys.stderr)


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True,
                            capture_output=capture, text=True)
    return result.stdout if capture else ""


@contextmanager
def replay_judge_process(records, *, tokens_per_second: float = 0, tokens_per_chunk: int = 16):
    """`python -m routing.replay_server` in a process of its own, answering with ``records``; yields its
    base URL. (In a thread of the measuring process its CPU would count as the pipeline's.)"""
    from routing.tracelog import write_traces

    directory = Path(tempfile.mkdtemp(prefix="tracelab-replay-"))
    write_traces(directory / "traces.jsonl", records)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "routing.replay_server", "--traces", str(directory / "traces.jsonl"),
         "--port", str(port), "--tokens-per-second", str(tokens_per_second), "--tokens-per-chunk",
         str(tokens_per_chunk)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the replay server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def served_app(env: dict[str, str], *, workers: int = 1, threads: int = 1):
    """gunicorn serving the app on loopback; yields (base URL, gunicorn worker pids)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tracelab.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--timeout", "1800", "--log-level", "warning"],
        cwd=REPO, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("the app did not start")
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    try:
        yield url, [int(pid) for pid in children]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def celery_workers(env: dict[str, str], count: int, *, concurrency: int = 1, log_dir: str | Path = "/tmp"):
    """`count` Celery worker processes (prefork, `concurrency` children each) on env's CELERY_QUEUE; yields
    the Popen objects (each a process-group leader, so a stop takes its pool children along)."""
    import signal

    queue = env["CELERY_QUEUE"]
    procs: list[subprocess.Popen] = []
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    try:
        for k in range(count):
            log = open(Path(log_dir) / f"worker{k}.log", "w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tracelab", "worker", "-Q", queue, "-n", f"w{k}-{queue}@%h",
                 "--concurrency", str(concurrency), "--pool", "prefork", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "--loglevel", "WARNING"],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True))
        _wait_ready(queue, count)
        yield procs
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def cpu_seconds(process_groups: list[int]) -> dict[str, float]:
    """CPU seconds so far of every process in these process groups (workers and their pool children), and
    of the whole machine (all cores, busy time), from /proc: per-item CPU shows where a run's time goes."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = set(process_groups)
    own = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) in groups:  # fields after the command: state ppid pgrp … utime(11) stime(12)
            own += int(fields[11]) + int(fields[12])
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for v in cpu) - int(cpu[3]) - int(cpu[4])  # all but idle and iowait
    return {"processes": own / tick, "machine": busy / tick}


def _wait_ready(queue: str, count: int, timeout: float = 180.0) -> None:
    """Block until `count` workers of this queue answer a control ping (boot time is not throughput)."""
    from tracelab.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if sum(any(f"-{queue}@" in name for name in reply) for reply in replies) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{count} Celery workers on {queue} did not start within {timeout:.0f} s")


def pool_children(proc: subprocess.Popen) -> list[int]:
    """The pool processes of a prefork Celery worker."""
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in out]


def run_inconsistencies(run) -> dict[str, int]:
    """Counts of what must be zero after a routing run: items not in exactly one terminal state, open work
    left, double charges, streaming judge runs left behind."""
    from django.db.models import Count, Q

    from labeling.models import Item, JudgeRun, LedgerEntry, ReviewTask, RunItem

    run.refresh_from_db()
    run.budget.refresh_from_db()
    items = Item.objects.filter(run_items__run=run)
    open_tasks = dict(ReviewTask.objects.filter(item__in=items, state__in=["open", "leased"])
                      .values_list("item_id").annotate(n=Count("id")))
    bad = 0
    for item_id, state, final_label in items.values_list("id", "state", "final_label"):
        expected_tasks = 1 if state == "awaiting_review" else 0
        labelled = state in ("auto_labeled", "human_labeled")
        if state in ("pending", "routing") or open_tasks.get(item_id, 0) != expected_tasks \
                or (final_label is not None) != labelled:
            bad += 1
    entries = LedgerEntry.objects.filter(budget=run.budget)
    return {
        "inconsistent_items": bad,
        "run_items_not_terminal": RunItem.objects.filter(run=run).exclude(state__in=["done", "failed"]).count(),
        "double_charges": entries.values("item_id").annotate(n=Count("id")).filter(n__gt=1).count()
        + int(entries.count() != run.budget.spent),
        "over_cap": int(run.budget.spent > run.budget.cap),
        "streaming_judge_runs_left": JudgeRun.objects.filter(run=run, status="streaming").count(),
        "leases_left": RunItem.objects.filter(run=run, state="claimed").count()
        + ReviewTask.objects.filter(Q(item__in=items), state="leased").count(),
    }


def wait_for_run(run, timeout: float) -> bool:
    """Poll until the routing run is completed, failed or cancelled; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in ("completed", "failed", "cancelled"):
            return True
        time.sleep(0.5)
    return False
