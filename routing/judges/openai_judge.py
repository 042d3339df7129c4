"""The AI judge on the official ``openai`` SDK: streamed chat completions, stoppable at any chunk.

Retries are owned here and only here: the SDK client is built with ``max_retries=0``. A failed
attempt is retried (exponential backoff with jitter; a 429's Retry-After is honoured) only while no
text has been delivered to the caller, so retried text is never delivered twice. After the first
chunk, a failure ends the stream with ``finish_reason="failed"`` and a typed exception.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai

from routing.judges.errors import (
    JudgeConnectionError,
    JudgeError,
    JudgeOutputError,
    JudgeRateLimited,
    JudgeRequestError,
    JudgeServerError,
    JudgeTimeout,
)
from routing.judges.labels import parse_label
from routing.judges.prompts import build_messages
from routing.judges.tokens import estimate_tokens

DEFAULT_MODEL = "gpt-4o-mini"
RECORD_ID_HEADER = "X-Tracelab-Record-Id"
FinishReason = Literal["completed", "stopped_early", "failed"]


class MalformedChunk(ValueError):
    """A stream event that is JSON but not a chat.completion.chunk."""


@dataclass(frozen=True)
class JudgeResult:
    """What one judge call produced and cost.

    ``label`` is set only when the stream completed with a valid label. ``output_tokens`` comes from
    the usage chunk when the stream completed and the server sent one (``output_tokens_source ==
    "usage"``), otherwise it is estimated from the text received (``"estimated"``).
    """

    label: str | None
    text: str
    finish_reason: FinishReason
    output_tokens: int
    output_tokens_source: Literal["usage", "estimated"]
    input_tokens: int | None
    latency_s: float
    first_token_s: float | None
    attempts: int
    model: str
    api_finish_reason: str | None = None
    error: str | None = None
    error_type: str | None = None


class JudgeStream:
    """One streamed judge call. Iterate to receive text chunks; ``close()`` stops the generation.

    The request is sent on the first ``next()``. After the stream ends (completed, closed or failed)
    ``result`` holds a ``JudgeResult``. Use it as a context manager so an abandoned stream is closed.
    ``close()`` must be called from the thread that iterates.
    """

    def __init__(self, judge: OpenAIJudge, messages: list[dict[str, Any]], labels: Sequence[str], record_id: str | None):
        self._judge = judge
        self._messages = messages
        self._labels = list(labels)
        self._record_id = record_id
        self._parts: list[str] = []
        self._events: Iterator[str] | None = None
        self._sdk_stream: openai.Stream | None = None
        self._started_at: float | None = None
        self._first_token_at: float | None = None
        self._attempts = 0
        self._usage: Any = None
        self._api_finish_reason: str | None = None
        self._result: JudgeResult | None = None

    def __iter__(self) -> JudgeStream:
        return self

    def __next__(self) -> str:
        if self._result is not None:
            raise StopIteration
        if self._events is None:
            self._started_at = time.perf_counter()
            self._events = self._run()
        try:
            return next(self._events)
        except StopIteration:
            self._finish_completed()
            raise
        except JudgeError as exc:
            self._finish_failed(exc)
            raise

    def __enter__(self) -> JudgeStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> JudgeResult:
        """The outcome; available once the stream completed, failed or was closed."""
        if self._result is None:
            raise RuntimeError("the judge stream is still open: iterate it to the end or close() it first")
        return self._result

    def close(self) -> None:
        """Stop early: close the HTTP stream (the server stops generating) and settle ``result``.

        Does nothing once the stream has ended."""
        if self._result is not None:
            return
        self._close_http()
        if self._events is not None:
            self._events.close()
        self._result = self._make_result("stopped_early", label=None)

    def _close_http(self) -> None:
        if self._sdk_stream is not None:
            self._sdk_stream.close()
            self._sdk_stream = None

    def _run(self) -> Iterator[str]:
        judge = self._judge
        while True:
            self._attempts += 1
            try:
                self._sdk_stream = judge._create(self._messages, self._record_id)
                for chunk in self._sdk_stream:
                    usage, choices = _chunk_fields(chunk)
                    if usage is not None:
                        self._usage = usage
                    for finish_reason, piece in choices:
                        if finish_reason:
                            self._api_finish_reason = finish_reason
                        if piece:
                            if self._first_token_at is None:
                                self._first_token_at = time.perf_counter()
                            self._parts.append(piece)
                            yield piece
                self._close_http()
                return
            except (openai.OpenAIError, httpx.HTTPError, json.JSONDecodeError, MalformedChunk) as exc:
                self._close_http()
                error = judge._translate(exc)
                if self._parts or not error.retryable or self._attempts >= judge.max_attempts:
                    raise error from exc
                delay = judge._retry_delay(self._attempts, error)
                if delay is None:
                    raise error from exc
                time.sleep(delay)

    def _finish_completed(self) -> None:
        text = self.text
        label = parse_label(text, self._labels)
        if label is not None:
            self._result = self._make_result("completed", label=label)
            return
        message = f"the judge reply has no valid `Label: <label>` line with one of {self._labels}"
        if self._api_finish_reason == "length":
            message += " (the reply was cut off by the max_tokens limit)"
        error = JudgeOutputError(message, text=text)
        self._finish_failed(error)
        raise error

    def _finish_failed(self, error: JudgeError) -> None:
        self._close_http()
        self._result = self._make_result("failed", label=None, error=error)

    def _make_result(self, finish: FinishReason, *, label: str | None, error: JudgeError | None = None) -> JudgeResult:
        now = time.perf_counter()
        started = self._started_at if self._started_at is not None else now
        text = self.text
        usage = self._usage if finish != "stopped_early" else None
        completion = _token_count(usage, "completion_tokens")
        prompt = _token_count(self._usage, "prompt_tokens")
        return JudgeResult(
            label=label,
            text=text,
            finish_reason=finish,
            output_tokens=completion if completion is not None else estimate_tokens(text),
            output_tokens_source="usage" if completion is not None else "estimated",
            input_tokens=prompt,
            latency_s=now - started,
            first_token_s=None if self._first_token_at is None else self._first_token_at - started,
            attempts=self._attempts,
            model=self._judge.resolved_model,
            api_finish_reason=self._api_finish_reason,
            error=None if error is None else str(error),
            error_type=None if error is None else type(error).__name__,
        )


class OpenAIJudge:
    """A judge behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, the replay server).

    ``model``, ``base_url`` and ``api_key`` fall back to TRACELAB_JUDGE_MODEL, OPENAI_BASE_URL and
    OPENAI_API_KEY. A local ``base_url`` needs no key. ``timeout`` is the read timeout: the longest
    silence tolerated before the first byte or between chunks. Up to ``max_attempts`` attempts are
    made before the first text chunk; the wait before attempt k+1 is the 429's Retry-After when
    given (giving up if it exceeds ``max_retry_after``), else ``backoff_base * 2**(k-1)`` capped at
    ``backoff_max``, scaled by a random factor in [0.5, 1].
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        max_retry_after: float = 60.0,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        image_root: str | os.PathLike[str] | None = None,
        random_state: int | None = None,
    ):
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.image_root = image_root
        self.random_state = random_state
        self._client: openai.OpenAI | None = None
        self._rng: random.Random | None = None

    @property
    def resolved_model(self) -> str:
        return self.model or os.environ.get("TRACELAB_JUDGE_MODEL") or DEFAULT_MODEL

    @property
    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def stream(
        self,
        item: Mapping[str, Any],
        *,
        labels: Sequence[str],
        kind: str | None = None,
        instructions: str | None = None,
        record_id: str | None = None,
    ) -> JudgeStream:
        """Start judging ``item``; see ``JudgeStream``. ``record_id`` is sent as the
        X-Tracelab-Record-Id header (the replay server uses it to find the logged trace)."""
        messages = build_messages(item, labels=labels, kind=kind, instructions=instructions, image_root=self.image_root)
        return JudgeStream(self, messages, labels, record_id)

    def complete(
        self,
        item: Mapping[str, Any],
        *,
        labels: Sequence[str],
        kind: str | None = None,
        instructions: str | None = None,
        record_id: str | None = None,
    ) -> JudgeResult:
        """Judge ``item`` to the end; raises a ``JudgeError`` on failure."""
        with self.stream(item, labels=labels, kind=kind, instructions=instructions, record_id=record_id) as stream:
            for _ in stream:
                pass
            return stream.result

    def _sdk_client(self) -> openai.OpenAI:
        if self._client is None:
            base_url = self.resolved_base_url
            api_key = self.api_key or os.environ.get("OPENAI_API_KEY")
            if not api_key:
                if base_url is None:
                    raise JudgeRequestError("no API key: set OPENAI_API_KEY, or set a base_url for a local server")
                api_key = "not-needed"  # vLLM, Ollama and the replay server accept any key
            self._client = openai.OpenAI(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            )
        return self._client

    def _create(self, messages: list[dict[str, Any]], record_id: str | None) -> openai.Stream:
        """POST /chat/completions through the SDK client, streamed, chunks as plain dicts.

        ``client.post`` with ``cast_to=object`` is the SDK's own transport, auth, timeouts and error
        types without its typed layer: building and validating the typed request and a model per chunk
        cost about 5 ms of CPU per call, more than the rest of routing an item.
        """
        body: dict[str, Any] = {"model": self.resolved_model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        headers = {RECORD_ID_HEADER: record_id} if record_id is not None else {}
        return self._sdk_client().post("/chat/completions", body=body, cast_to=object, stream=True,
                                       stream_cls=openai.Stream[object], options={"headers": headers})

    def _retry_delay(self, attempt: int, error: JudgeError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if isinstance(error, JudgeRateLimited) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        if self._rng is None:
            self._rng = random.Random(self.random_state)
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return cap * self._rng.uniform(0.5, 1.0)

    def _translate(self, exc: Exception) -> JudgeError:
        where = self.resolved_base_url or "api.openai.com"
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            return JudgeTimeout(f"the judge at {where} sent nothing for {self.timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return JudgeConnectionError(f"cannot reach the judge at {where}: {exc.__cause__ or exc}")
        if isinstance(exc, httpx.TransportError):
            return JudgeConnectionError(f"the connection to the judge at {where} broke: {exc}")
        if isinstance(exc, openai.RateLimitError):
            retry_after = _retry_after_seconds(exc.response.headers)
            wait = f"; Retry-After {retry_after:g}s" if retry_after is not None else ""
            return JudgeRateLimited(f"the judge at {where} is rate limiting (HTTP 429{wait})", retry_after)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status >= 500 or status in (408, 409):
                return JudgeServerError(f"the judge at {where} failed with HTTP {status}: {exc.message}", status)
            return JudgeRequestError(f"the judge at {where} refused the request (HTTP {status}): {exc.message}", status)
        if isinstance(exc, (json.JSONDecodeError, MalformedChunk)):
            return JudgeServerError(f"the judge at {where} sent a malformed stream event: {exc}")
        return JudgeServerError(f"the judge at {where} failed: {exc}")


def _chunk_fields(chunk: Any) -> tuple[Mapping[str, Any] | None, list[tuple[str | None, str | None]]]:
    """(usage, [(finish_reason, content), …]) of one chat.completion.chunk; a malformed chunk is the
    server's failure, never a silently empty reply."""
    try:
        usage = chunk.get("usage")
        choices = [(choice.get("finish_reason"), (choice.get("delta") or {}).get("content"))
                   for choice in chunk.get("choices") or ()]
    except AttributeError as exc:
        raise MalformedChunk(f"malformed stream chunk: {str(chunk)[:200]}") from exc
    if usage is not None and not isinstance(usage, Mapping):
        raise MalformedChunk(f"malformed usage in stream chunk: {str(usage)[:200]}")
    for _, content in choices:
        if content is not None and not isinstance(content, str):
            raise MalformedChunk(f"malformed content in stream chunk: {str(content)[:200]}")
    return usage, choices


def _token_count(usage: Mapping[str, Any] | None, field: str) -> int | None:
    value = usage.get(field) if usage is not None else None
    return value if isinstance(value, int) and value >= 0 else None


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: ``retry-after-ms``, seconds (floats allowed) or an HTTP date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return None
