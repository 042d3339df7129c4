"""Import N items of JSONL through the REST endpoint into PostgreSQL, then export them streaming.

python -m bench.import_export [--items 100000] [--database NAME]   (the suite runs --items 1000000)

The upload is written to a temporary file and streamed from it (a million items are ~160 MB of JSONL;
the client never holds them in memory). Each run gets its own scratch database ``NAME_<pid>_<random>``
and app directory, both removed when it exits, so two runs never clobber each other. Peak RSS is the
gunicorn worker's (VmHWM for the import, sampled VmRSS during each export) and this client's.

Goals (issue 2): import ≥ 5,000 items/s; export ≥ 20,000 items/s with the server's peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
import urllib.request
import uuid

from bench.common import bench_env, manage, peak_rss_mb, rss_mb, save_results, served_app

FORMATS = ("jsonl", "ls-json", "csv")
EXTRA_LINES = {"jsonl": 0, "ls-json": 2, "csv": 1}  # line ends besides one per item: brackets, CSV header


def jsonl_rows(n: int):
    for k in range(n):
        yield (json.dumps({"external_id": f"bench-{k}", "text": f"Customer message number {k}: my card "
                           f"payment of {k % 997}.{k % 89:02d} EUR was declined twice, please help.",
                           "meta": {"slice": f"s{k % 7}"}}) + "\n").encode()


def write_multipart(handle, fields: dict[str, str], file_field: str, filename: str, chunks) -> tuple[int, str]:
    """Write a multipart/form-data body to ``handle``; returns (payload bytes, content type)."""
    boundary = uuid.uuid4().hex
    for key, value in fields.items():
        handle.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n".encode())
    handle.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{filename}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n".encode())
    size = 0
    for chunk in chunks:
        handle.write(chunk)
        size += len(chunk)
    handle.write(f"\r\n--{boundary}--\r\n".encode())
    return size, f"multipart/form-data; boundary={boundary}"


def request(url: str, token: str, *, data=None, content_type: str | None = None, length: int | None = None,
            timeout=3600):
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Token {token}"})
    if content_type:
        req.add_header("Content-Type", content_type)
    if length is not None:
        req.add_header("Content-Length", str(length))
    return urllib.request.urlopen(req, timeout=timeout)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--database", default="tracelab_bench_io", help="prefix of the scratch database's name")
    args = parser.parse_args(argv)
    n = args.items
    env = bench_env(args.database)
    env.pop("REDIS_URL", None)  # the import runs inside the request: the timing is the import itself
    manage(env, "migrate", "--noinput", "-v0")
    setup = ("from labeling.services.projects import project_create, user_ensure;"
             "from rest_framework.authtoken.models import Token;"
             "u=user_ensure(username='bench', password='bench-pass-123', is_superuser=True);"
             "p=project_create(name='bench', question='q', labels=['yes','no'], item_kind='text', created_by=u);"
             "print(p.pk, Token.objects.get_or_create(user=u)[0].key)")
    project_id, token = manage(env, "shell", "-c", setup, capture=True).strip().splitlines()[-1].split()
    body = tempfile.TemporaryFile()
    payload_size, content_type = write_multipart(body, {"format": "jsonl"}, "file", "bench.jsonl", jsonl_rows(n))
    length = body.tell()
    body.seek(0)
    figures: dict = {"items": n, "payload_mb": round(payload_size / 1e6, 1)}
    with served_app(env) as (url, pids):
        started = time.perf_counter()
        with request(f"{url}/api/v1/projects/{project_id}/imports/", token, data=body, content_type=content_type,
                     length=length) as r:
            job = json.loads(r.read())
        body.close()
        seconds = time.perf_counter() - started
        assert job["status"] == "succeeded" and job["rows_imported"] == n, job
        figures["import_seconds"] = round(seconds, 2)
        figures["import_items_per_s"] = round(n / seconds)
        figures["import_peak_rss_mb"] = round(max(peak_rss_mb(p) for p in pids), 1)
        for fmt in FORMATS:
            peak = [max(rss_mb(p) for p in pids)]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], *(rss_mb(p) for p in pids))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            size = lines = 0
            with request(f"{url}/api/v1/projects/{project_id}/export/?format={fmt}", token) as r:
                while chunk := r.read(1 << 20):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            seconds = time.perf_counter() - started
            stop.set()
            sampler.join()
            assert lines == n + EXTRA_LINES[fmt], (fmt, lines)  # every item came out
            key = fmt.replace("-", "_")
            figures[f"export_{key}_seconds"] = round(seconds, 2)
            figures[f"export_{key}_items_per_s"] = round(n / seconds)
            figures[f"export_{key}_mb"] = round(size / 1e6, 1)
            figures[f"export_{key}_peak_rss_mb"] = round(peak[0], 1)
    figures["export_peak_rss_mb"] = max(figures[f"export_{f.replace('-', '_')}_peak_rss_mb"] for f in FORMATS)
    figures["client_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    save_results("import_export", figures)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
