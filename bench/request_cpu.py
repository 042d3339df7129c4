"""CPU time of one review-queue claim and one submit request, in-process: the app's own cost per request.

python -m bench.request_cpu [--requests 300] [--profile [claim|submit]] [--top 25] [--database NAME]

A scratch PostgreSQL database gets one project with one annotator (token auth, as the API clients use it)
and --requests + a few items awaiting review, each with an open task and a judge answer (reasoning in
steps), like an escalated item. Then --requests claim + submit cycles go through Django's WSGI handler
(what gunicorn calls: every middleware, DRF authentication, the view, rendering) with DEBUG off, and
each request's CPU time (time.process_time: this process only, the database server's work not included)
is summed. Statements per request are counted on one more cycle. --profile then runs the cycles again
under cProfile (the claim requests, or with --profile submit the submit requests) and prints the top
cumulative functions.

Unlike bench.queue_load this is not a load test: one client, no concurrency, no server; it takes seconds
and its figures do not depend on what else the machine is doing (beyond a few per cent). It prints the
figures and saves nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time

from bench.common import bench_env, django_setup

LABELS = ["yes", "no"]


def fill(tasks: int) -> tuple[int, str]:
    """A project with ``tasks`` items awaiting review (each with an open task and a judge run); the
    annotator's token."""
    from rest_framework.authtoken.models import Token

    from labeling.models import Item, JudgeRun, ReviewTask
    from labeling.services.projects import membership_set, project_create, user_ensure

    project = project_create(name="request-cpu", question="Is the request valid?", labels=LABELS,
                             item_kind="text")
    annotator = user_ensure(username="annotator", password="bench-pass-123")
    membership_set(project=project, user=annotator, role="annotator")
    items = Item.objects.bulk_create([
        Item(project=project, external_id=f"r{k}", state="awaiting_review",
             fields={"text": f"Customer message {k}: my card payment was declined twice, please help."})
        for k in range(tasks)])
    steps = ["The customer reports two declined card payments.", "That is a request for help with a payment.",
             "The request is valid."]
    JudgeRun.objects.bulk_create([
        JudgeRun(item=item, model="bench-judge", status="stopped_early", label="yes", steps=steps,
                 raw_reasoning="\n".join(f"{n}. {s}" for n, s in enumerate(steps, 1)), stopped_at_step=2,
                 stop_reason="router") for item in items])
    ReviewTask.objects.bulk_create([
        ReviewTask(project=project, item=item, priority=1 - k / tasks, reason="router escalated at step 2")
        for k, item in enumerate(items)])
    return project.pk, Token.objects.create(user=annotator).key


class Caller:
    """POSTs through the WSGI handler, as gunicorn does."""

    def __init__(self, token: str):
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()
        self.token = token

    def post(self, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_ACCEPT": "*/*",
            "HTTP_AUTHORIZATION": f"Token {self.token}", "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data), "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        status = []
        response = self.handler(environ, lambda s, headers, exc_info=None: status.append(s))
        content = b"".join(response)
        response.close()
        code = int(status[0].split()[0])
        return code, json.loads(content) if content else None


def cycle(caller: Caller, project_id: int) -> tuple[float, float]:
    """One claim and one submit: the CPU seconds of each."""
    started = time.process_time()
    code, task = caller.post(f"/api/v1/projects/{project_id}/queue/claim/")
    claimed = time.process_time()
    if code != 200:
        raise RuntimeError(f"claim answered {code}")
    code, _ = caller.post(f"/api/v1/tasks/{task['id']}/submit/", {"label": LABELS[task["id"] % 2]})
    if code != 200:
        raise RuntimeError(f"submit answered {code}")
    return claimed - started, time.process_time() - claimed


def statements(caller: Caller, project_id: int) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as claim:
        _, task = caller.post(f"/api/v1/projects/{project_id}/queue/claim/")
    with CaptureQueriesContext(connection) as submit:
        caller.post(f"/api/v1/tasks/{task['id']}/submit/", {"label": "yes"})
    return {"claim_statements": len(claim.captured_queries),
            "submit_statements": len(submit.captured_queries)}


def profile(caller: Caller, project_id: int, cycles: int, top: int, request: str) -> str:
    """cProfile of the ``request`` ("claim" or "submit") requests of ``cycles`` cycles (the others run
    unprofiled)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting for the database is not counted
    for _ in range(cycles):
        if request == "claim":
            profiler.enable()
        _, task = caller.post(f"/api/v1/projects/{project_id}/queue/claim/")
        profiler.disable()
        if request == "submit":
            profiler.enable()
        caller.post(f"/api/v1/tasks/{task['id']}/submit/", {"label": "yes"})
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def ms(seconds: list[float], q: int) -> float:
    return round(1000 * statistics.quantiles(seconds, n=100)[q - 1], 2)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="claim + submit cycles timed")
    parser.add_argument("--profile", nargs="?", const="claim", choices=["claim", "submit"],
                        help="also cProfile the claim (default) or the submit requests")
    parser.add_argument("--top", type=int, default=25, help="functions the profile prints")
    parser.add_argument("--database", default="tracelab_bench_request_cpu",
                        help="the scratch database's name")
    args = parser.parse_args(argv)
    warm = 20
    env = bench_env(args.database, DJANGO_DEBUG="false", DJANGO_LOG_LEVEL="WARNING")
    django_setup(env)
    project_id, token = fill(warm + 2 * args.requests + 1)
    caller = Caller(token)
    for _ in range(warm):  # imports, the connection, DRF's lazily built state
        cycle(caller, project_id)
    timed = [cycle(caller, project_id) for _ in range(args.requests)]
    claims, submits = [c for c, _ in timed], [s for _, s in timed]
    figures = {
        "requests": args.requests,
        "claim_cpu_ms_mean": round(1000 * statistics.fmean(claims), 2),
        "claim_cpu_ms_p50": ms(claims, 50), "claim_cpu_ms_p95": ms(claims, 95),
        "submit_cpu_ms_mean": round(1000 * statistics.fmean(submits), 2),
        "submit_cpu_ms_p50": ms(submits, 50), "submit_cpu_ms_p95": ms(submits, 95),
        **statements(caller, project_id),
    }
    print(json.dumps(figures, indent=1))
    if args.profile:
        print(profile(caller, project_id, args.requests, args.top, args.profile))
    return figures


if __name__ == "__main__":
    main()
