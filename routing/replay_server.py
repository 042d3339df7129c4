"""An OpenAI-compatible chat server that replays logged judge traces at a realistic pace.

``python -m routing.replay_server --traces FILE [--host 127.0.0.1] [--port 8001] [--tokens-per-second 50]``

Serves ``POST /v1/chat/completions`` (streamed as SSE ``data: {...}`` chunks ending in
``data: [DONE]``, with a final usage chunk when ``stream_options.include_usage`` is set, or as one
JSON body), ``GET /v1/models`` and ``GET /v1/stats`` (what was sent: requests, tokens, streams
completed and cut by the client).

Which record answers a request: the ``X-Tracelab-Record-Id`` header (``OpenAIJudge.stream(...,
record_id=...)`` sends it), else a record id in ``metadata.record_id`` or ``user``, else the one
record whose text fields all appear in the user message in the record's field order and whose data:
URI images appear among its images (several matches = an error asking for the header). The reply is
the record's ``judge.reasoning`` followed by ``Label: <judge.label>`` (unless the reasoning already
ends with that label; a null label sends the reasoning alone, as the logged judge did). Text is sent
token-like pieces (``routing.judges.tokens.split_tokens``), ``tokens_per_chunk`` (default 1) per
event, at ``tokens_per_second`` (0 or inf = instant); sending stops as soon as the client disconnects.
The usage chunk counts the same pieces, so a completed stream and a stopped one are counted alike.

``ChatCompletionServer`` is the reusable part (HTTP, pacing, accounting, fault injection); subclasses
answer requests by overriding ``respond``. Faults are given per record id (or ``"*"`` for any
request) as a list of ``Fault``, each used by one request, in order.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from routing.judges.labels import parse_label
from routing.judges.openai_judge import RECORD_ID_HEADER
from routing.judges.tokens import estimate_tokens, split_tokens
from routing.tracelog import TraceLog, TraceRecord, read_traces

log = logging.getLogger(__name__)

FaultKind = Literal["rate_limit", "server_error", "hang", "disconnect", "garbage", "malformed"]
GARBAGE_TEXT = "The the the image shows shows something. Maybe. Unclear unclear unclear."


@dataclass(frozen=True)
class Fault:
    """One injected failure, used by one request.

    rate_limit: HTTP 429 with ``Retry-After: retry_after`` (omitted when None). server_error: HTTP
    ``status``. hang: send ``after_tokens`` tokens, then go silent for ``seconds`` and drop the
    connection. disconnect: send ``after_tokens`` tokens, then drop the connection. garbage: stream
    ``text`` (default: babble with no label) and complete normally. malformed: a stream event that is
    not JSON.
    """

    kind: FaultKind
    retry_after: float | None = None
    status: int = 500
    seconds: float = 30.0
    after_tokens: int = 0
    text: str | None = None


@dataclass
class ChatRequest:
    """A parsed chat completion request."""

    body: dict[str, Any]
    headers: Mapping[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages") or []

    @property
    def header_record_id(self) -> str | None:
        return self.headers.get(RECORD_ID_HEADER)

    def user_texts(self) -> list[str]:
        """Every text part of the user messages, in order."""
        return [text for message in self.messages if message.get("role") == "user" for text in _texts(message)]

    def image_urls(self) -> list[str]:
        """Every image URL of the user messages, in order."""
        urls = []
        for message in self.messages:
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        url = part.get("image_url", {})
                        urls.append(url.get("url") if isinstance(url, dict) else url)
        return [url for url in urls if isinstance(url, str)]

    def prompt_tokens(self) -> int:
        """Estimated prompt tokens: the text of every message plus 85 per image (OpenAI low detail)."""
        texts = [text for message in self.messages for text in _texts(message)]
        return sum(estimate_tokens(text) for text in texts) + 85 * len(self.image_urls())


@dataclass(frozen=True)
class Reply:
    """What the server answers: the full text, and the record it came from (for faults and stats)."""

    text: str
    record_id: str | None = None


class ReplyError(Exception):
    """A request the server cannot answer; becomes an OpenAI-style error body with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class RequestLog:
    """What the server did for one request."""

    id: str
    record_id: str | None
    stream: bool
    status: int
    fault: str | None = None
    tokens_total: int = 0
    tokens_sent: int = 0
    chars_sent: int = 0
    completed: bool = False
    disconnected: bool = False
    duration_s: float = 0.0


def _texts(message: Mapping[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)]
    return []


class _ClientGone(Exception):
    pass


class ChatCompletionServer:
    """OpenAI-compatible HTTP plumbing: pacing, disconnect detection, accounting, fault injection.

    Subclasses implement ``respond(request) -> Reply``. ``start()`` serves on a background thread;
    ``url`` is then ``http://host:port`` and ``base_url`` the ``/v1`` root to give the SDK.
    """

    model_name = "replay"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens_per_second: float = 50.0,
        tokens_per_chunk: int = 1,
        faults: Mapping[str, Sequence[Fault]] | None = None,
    ):
        self.host = host
        self.port = port
        self.tokens_per_second = tokens_per_second
        self.tokens_per_chunk = tokens_per_chunk
        self.faults = faults
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._pending_faults: dict[str, deque[Fault]] = {}
        self._log: list[RequestLog] = []
        self._active = 0

    # -- to override -------------------------------------------------------------------------------
    def respond(self, request: ChatRequest) -> Reply:
        raise NotImplementedError

    def models(self) -> list[str]:
        return [self.model_name]

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> ChatCompletionServer:
        if self._httpd is not None:
            raise RuntimeError("the server is already running")
        self._pending_faults = {key: deque(value) for key, value in (self.faults or {}).items()}
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="chat-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def serve_forever(self) -> None:
        """Block until interrupted (Ctrl-C or SIGTERM), starting the server if needed."""
        if self._httpd is None:
            self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> ChatCompletionServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # -- accounting --------------------------------------------------------------------------------
    def requests(self) -> list[RequestLog]:
        """A copy of the per-request log, oldest first (requests in flight included)."""
        with self._lock:
            return [RequestLog(**asdict(entry)) for entry in self._log]

    def stats(self) -> dict[str, Any]:
        """Totals over every request served so far."""
        with self._lock:
            entries = list(self._log)
            active = self._active
        by_status: dict[str, int] = {}
        for entry in entries:
            by_status[str(entry.status)] = by_status.get(str(entry.status), 0) + 1
        return {
            "requests": len(entries),
            "active": active,
            "by_status": by_status,
            "completed": sum(e.completed for e in entries),
            "disconnected": sum(e.disconnected for e in entries),
            "faults": sum(e.fault is not None for e in entries),
            "tokens_sent": sum(e.tokens_sent for e in entries),
            "chars_sent": sum(e.chars_sent for e in entries),
            "tokens_not_sent": sum(e.tokens_total - e.tokens_sent for e in entries if e.status == 200),
        }

    def reset_stats(self) -> None:
        with self._lock:
            self._log.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in flight (e.g. until the server noticed a disconnect)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    # -- request handling (called by the handler threads) -----------------------------------------
    def _take_fault(self, record_id: str | None) -> Fault | None:
        with self._lock:
            for key in (record_id, "*"):
                queue = self._pending_faults.get(key) if key is not None else None
                if queue:
                    return queue.popleft()
        return None

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self._stopping.wait(seconds):
            raise _ClientGone("server stopping")

    def _handle_chat(self, handler: _Handler, body: dict[str, Any]) -> None:
        entry = RequestLog(id=f"chatcmpl-{uuid.uuid4().hex[:16]}", record_id=None, stream=bool(body.get("stream")), status=200)
        started = time.perf_counter()
        with self._lock:
            self._active += 1
            self._log.append(entry)
        try:
            self._serve_chat(handler, body, entry)
        except _ClientGone:
            entry.disconnected = True
        finally:
            entry.duration_s = time.perf_counter() - started
            with self._lock:
                self._active -= 1
                self._lock.notify_all()
            log.info(
                "%s record=%s status=%s tokens %d/%d%s%s",
                entry.id, entry.record_id, entry.status, entry.tokens_sent, entry.tokens_total,
                " completed" if entry.completed else "", " client-disconnected" if entry.disconnected else "",
            )

    def _serve_chat(self, handler: _Handler, body: dict[str, Any], entry: RequestLog) -> None:
        request = ChatRequest(body=body, headers=handler.headers)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            entry.status = 400
            handler.send_error_json(400, "'messages' must be a non-empty list")
            return
        try:
            reply = self.respond(request)
        except ReplyError as exc:
            entry.status = exc.status
            handler.send_error_json(exc.status, str(exc))
            return
        entry.record_id = reply.record_id
        fault = self._take_fault(reply.record_id)
        text = reply.text
        if fault is not None:
            entry.fault = fault.kind
            if fault.kind == "rate_limit":
                entry.status = 429
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                handler.send_error_json(429, "Rate limit reached (injected)", headers, code="rate_limit_exceeded")
                return
            if fault.kind == "server_error":
                entry.status = fault.status
                handler.send_error_json(fault.status, "The server had an error (injected)")
                return
            if fault.kind == "garbage":
                text = fault.text if fault.text is not None else GARBAGE_TEXT
        pieces = split_tokens(text)
        entry.tokens_total = len(pieces)
        model = body.get("model") or self.model_name
        if not entry.stream:
            self._pace(0, len(pieces), time.perf_counter())
            if fault is not None and fault.kind in ("hang", "disconnect", "malformed"):
                self._pause(fault.seconds if fault.kind == "hang" else 0)
                handler.close_connection = True
                return
            entry.tokens_sent, entry.chars_sent, entry.completed = len(pieces), len(text), True
            handler.send_json(200, self._completion_body(entry.id, model, text, request, len(pieces)))
            return
        self._stream(handler, request, entry, model, pieces, fault)

    def _stream(
        self, handler: _Handler, request: ChatRequest, entry: RequestLog, model: str, pieces: list[str], fault: Fault | None
    ) -> None:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": entry.id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        stop_after = fault.after_tokens if fault is not None and fault.kind in ("hang", "disconnect", "malformed") else None
        if fault is not None and fault.kind == "hang" and fault.after_tokens == 0:
            self._pause(fault.seconds)  # silent before the headers: the client's read timeout fires
            handler.close_connection = True
            return
        handler.start_sse()
        handler.send_event(chunk({"role": "assistant", "content": ""}))
        t0 = time.perf_counter()
        end = len(pieces) if stop_after is None else min(stop_after, len(pieces))
        step = max(1, self.tokens_per_chunk)
        for index in range(0, end, step):
            group = pieces[index : min(index + step, end)]
            self._pace(index, len(group), t0)
            content = "".join(group)
            handler.send_event(chunk({"content": content}))
            entry.tokens_sent += len(group)
            entry.chars_sent += len(content)
        if fault is not None and fault.kind == "hang":
            self._pause(fault.seconds)
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "disconnect":
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "malformed":
            handler.send_raw(b"data: {this is not json\n\n")
            handler.end_chunks()
            return
        handler.send_event(chunk({}, finish="stop"))
        options = request.body.get("stream_options") or {}
        if options.get("include_usage"):
            usage = self._usage(request, len(pieces))
            handler.send_event({"id": entry.id, "object": "chat.completion.chunk", "created": created,
                                "model": model, "choices": [], "usage": usage})
        handler.send_raw(b"data: [DONE]\n\n")
        handler.end_chunks()
        entry.completed = True

    def _pace(self, index: int, count: int, t0: float) -> None:
        """Sleep until tokens ``index .. index+count-1`` are due at ``tokens_per_second``."""
        rate = self.tokens_per_second
        if not rate or math.isinf(rate):
            return
        self._pause(t0 + (index + count) / rate - time.perf_counter())

    def _usage(self, request: ChatRequest, completion_tokens: int) -> dict[str, int]:
        prompt = request.prompt_tokens()
        return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}

    def _completion_body(self, response_id: str, model: str, text: str, request: ChatRequest, tokens: int) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": self._usage(request, tokens),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_app: ChatCompletionServer
    timeout = 120  # drop idle keep-alive connections eventually

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # a client dropped an idle keep-alive connection

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "tracelab"} for name in self.server_app.models()]
            self.send_json(200, {"object": "list", "data": data})
        elif path == "/v1/stats":
            self.send_json(200, self.server_app.stats())
        elif path in ("", "/health", "/v1"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_error_json(404, f"no route {self.path}", code="not_found")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path != "/v1/chat/completions":
            self.send_error_json(404, f"no route {self.path}", code="not_found")
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self.send_error_json(400, f"request body is not JSON: {exc}")
            return
        if not isinstance(body, dict):
            self.send_error_json(400, "request body must be a JSON object")
            return
        self.server_app._handle_chat(self, body)

    # -- writing ---------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError) as exc:
            self.close_connection = True
            raise _ClientGone(str(exc)) from exc

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._write(data)

    def send_error_json(self, status: int, message: str, headers: Mapping[str, str] | None = None, code: str | None = None) -> None:
        kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
        self.send_json(status, {"error": {"message": message, "type": kind, "code": code}}, headers)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_raw(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def send_event(self, payload: Mapping[str, Any]) -> None:
        self.send_raw(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")

    def end_chunks(self) -> None:
        self._write(b"0\r\n\r\n")


def _make_handler(app: ChatCompletionServer) -> type[_Handler]:
    return type("ChatHandler", (_Handler,), {"server_app": app})


class ReplayServer(ChatCompletionServer):
    """Replays the logged reasoning of trace records (see the module docstring for the matching rule).

    ``traces``: a ``TraceLog``, records, or a trace log v1 path.
    """

    def __init__(
        self,
        traces: TraceLog | Iterable[TraceRecord] | str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens_per_second: float = 50.0,
        tokens_per_chunk: int = 1,
        faults: Mapping[str, Sequence[Fault]] | None = None,
    ):
        super().__init__(
            host=host, port=port, tokens_per_second=tokens_per_second, tokens_per_chunk=tokens_per_chunk, faults=faults
        )
        self.traces = traces
        self._records: dict[str, TraceRecord] | None = None
        self._label_set: list[str] = []

    def start(self) -> ReplayServer:
        traces = self.traces
        if isinstance(traces, (str, os.PathLike)):
            traces = read_traces(traces)
        log_ = traces if isinstance(traces, TraceLog) else TraceLog(records=list(traces))
        self._records = {record.id: record for record in log_.records}
        self._label_set = log_.label_set
        super().start()
        return self

    def models(self) -> list[str]:
        names = {r.judge_model for r in (self._records or {}).values() if r.judge_model}
        return sorted(names) + [self.model_name]

    def reply_text(self, record: TraceRecord) -> str:
        """What the server streams for ``record``: its reasoning, then its label line."""
        reasoning = record.judge_reasoning.rstrip()
        if record.judge_label is None:
            return reasoning
        labels = record.labels or self._label_set or [record.judge_label]
        if reasoning and parse_label(reasoning, labels) == record.judge_label:
            return reasoning
        return f"{reasoning}\n\nLabel: {record.judge_label}" if reasoning else f"Label: {record.judge_label}"

    def respond(self, request: ChatRequest) -> Reply:
        record = self.find_record(request)
        return Reply(self.reply_text(record), record.id)

    def find_record(self, request: ChatRequest) -> TraceRecord:
        records = self._records or {}
        metadata = request.body.get("metadata")
        explicit = request.header_record_id
        if explicit is None and isinstance(metadata, dict) and isinstance(metadata.get("record_id"), str):
            explicit = metadata["record_id"]
        if explicit is not None:
            if explicit not in records:
                raise ReplyError(404, f"no trace record with id {explicit!r}")
            return records[explicit]
        user = request.body.get("user")
        if isinstance(user, str) and user in records:
            return records[user]
        text = "\n".join(request.user_texts())
        images = set(request.image_urls())
        matches = [record for record in records.values() if _matches(record, text, images)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ReplyError(404, "no trace record matches this prompt; send the record id in the "
                                  f"{RECORD_ID_HEADER} header")
        ids = ", ".join(record.id for record in matches[:5])
        raise ReplyError(400, f"{len(matches)} trace records match this prompt ({ids}, ...); "
                              f"send the record id in the {RECORD_ID_HEADER} header")


def _matches(record: TraceRecord, text: str, images: set[str]) -> bool:
    """Every text field appears in ``text`` in field order; every data: URI image is among ``images``."""
    position = 0
    matched_any = False
    for value in record.input.values():
        if not isinstance(value, str) or not value:
            continue
        if value.startswith("data:image/"):
            if value not in images:
                return False
            matched_any = True
            continue
        found = text.find(value, position)
        if found < 0:
            return False
        position = found + len(value)
        matched_any = True
    return matched_any


def _rate(value: str) -> float:
    rate = float(value)
    if rate < 0 or math.isnan(rate):
        raise argparse.ArgumentTypeError("tokens per second must be >= 0 (0 or inf = instant)")
    return rate


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routing.replay_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", required=True, help="trace log v1 file (JSON Lines)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tokens-per-second", type=_rate, default=50.0, help="pace; 0 or inf = instant")
    parser.add_argument("--tokens-per-chunk", type=int, default=1, help="tokens per stream event (default 1)")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip invalid trace lines instead of failing")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    try:
        traces = read_traces(args.traces, on_error="skip" if args.skip_bad_lines else "fail")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = ReplayServer(
        traces, host=args.host, port=args.port, tokens_per_second=args.tokens_per_second,
        tokens_per_chunk=args.tokens_per_chunk,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    skipped = f", {len(traces.errors)} bad lines skipped" if traces.errors else ""
    print(f"replaying {len(traces)} records from {args.traces}{skipped} at {server.base_url} "
          f"({args.tokens_per_second:g} tokens/s); Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    server.serve_forever()
    print(json.dumps(server.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
