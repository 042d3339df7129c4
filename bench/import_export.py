"""Import N items of JSONL through the REST endpoint into PostgreSQL, then export them streaming.

python -m bench.import_export [--items 100000]

Goals (issue 2): import ≥ 5,000 items/s; export ≥ 20,000 items/s with the server's peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
import uuid

from bench.common import manage, peak_rss_mb, rss_mb, save_results, scratch_database, served_app

FORMATS = ("jsonl", "ls-json", "csv")


def make_jsonl(n: int) -> bytes:
    rows = []
    for k in range(n):
        rows.append(json.dumps({"external_id": f"bench-{k}", "text": f"Customer message number {k}: my card "
                                f"payment of {k % 997}.{k % 89:02d} EUR was declined twice, please help.",
                                "meta": {"slice": f"s{k % 7}"}}))
    return ("\n".join(rows) + "\n").encode()


def multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n".encode())
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{filename}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def request(url: str, token: str, *, data: bytes | None = None, content_type: str | None = None, timeout=1800):
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Token {token}"})
    if content_type:
        req.add_header("Content-Type", content_type)
    return urllib.request.urlopen(req, timeout=timeout)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args(argv)
    n = args.items
    env = {**os.environ, "DATABASE_URL": scratch_database("tracelab_bench_io"), "DJANGO_DEBUG": "false",
           "DJANGO_LOG_LEVEL": "WARNING", "TRACELAB_VAR_DIR": "/tmp/tracelab-bench-io"}
    env.pop("REDIS_URL", None)  # the import runs inside the request: the timing is the import itself
    manage(env, "migrate", "--noinput", "-v0")
    setup = ("from labeling.services.projects import project_create, user_ensure;"
             "from rest_framework.authtoken.models import Token;"
             "u=user_ensure(username='bench', password='bench-pass-123', is_superuser=True);"
             "p=project_create(name='bench', question='q', labels=['yes','no'], item_kind='text', created_by=u);"
             "print(p.pk, Token.objects.get_or_create(user=u)[0].key)")
    project_id, token = manage(env, "shell", "-c", setup, capture=True).strip().splitlines()[-1].split()
    payload = make_jsonl(n)
    body, content_type = multipart({"format": "jsonl"}, "file", "bench.jsonl", payload)
    figures: dict = {"items": n, "payload_mb": round(len(payload) / 1e6, 1)}
    with served_app(env) as (url, pids):
        started = time.perf_counter()
        with request(f"{url}/api/v1/projects/{project_id}/imports/", token, data=body, content_type=content_type) as r:
            job = json.loads(r.read())
        seconds = time.perf_counter() - started
        assert job["status"] == "succeeded" and job["rows_imported"] == n, job
        figures["import_seconds"] = round(seconds, 2)
        figures["import_items_per_s"] = round(n / seconds)
        figures["import_peak_rss_mb"] = round(max(peak_rss_mb(p) for p in pids), 1)
        for fmt in FORMATS:
            baseline = max(rss_mb(p) for p in pids)
            peak = [baseline]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak.append(max(rss_mb(p) for p in pids))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            size = 0
            with request(f"{url}/api/v1/projects/{project_id}/export/?format={fmt}", token) as r:
                while chunk := r.read(1 << 20):
                    size += len(chunk)
            seconds = time.perf_counter() - started
            stop.set()
            sampler.join()
            key = fmt.replace("-", "_")
            figures[f"export_{key}_seconds"] = round(seconds, 2)
            figures[f"export_{key}_items_per_s"] = round(n / seconds)
            figures[f"export_{key}_mb"] = round(size / 1e6, 1)
            figures[f"export_{key}_peak_rss_mb"] = round(max(peak), 1)
    save_results("import_export", figures)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
