"""The judge client against the replay server, over real HTTP, through the real openai SDK."""

import time

import pytest

from routing.judges import (
    JudgeConnectionError,
    JudgeOutputError,
    JudgeRateLimited,
    JudgeRequestError,
    JudgeServerError,
    JudgeTimeout,
    OpenAIJudge,
    estimate_tokens,
)
from routing.judges.openai_judge import MalformedChunk, _chunk_fields
from routing.replay_server import Fault, ReplayServer
from routing.tracelog import TraceRecord

LABELS = ["output_1", "output_2"]
REASONING = " ".join(
    f"{k}. Output (a) handles point {k} of the instruction precisely, while output (b) drifts away from it."
    for k in range(1, 13)
)


def _record(record_id: str, label: str | None = "output_1", reasoning: str = REASONING) -> TraceRecord:
    return TraceRecord(
        id=record_id,
        input={"instruction": f"Instruction for {record_id}.", "output_1": f"first {record_id}", "output_2": f"second {record_id}"},
        judge_label=label,
        judge_reasoning=reasoning,
        judge_model="gpt-4",
        labels=LABELS,
    )


RECORDS = [_record("a"), _record("b", "output_2"), _record("nolabel", None), _record("c")]


def _judge(server: ReplayServer, **kwargs) -> OpenAIJudge:
    options = {"base_url": server.base_url, "model": "gpt-4", "timeout": 5.0, "backoff_base": 0.01, "random_state": 0}
    options.update(kwargs)
    return OpenAIJudge(**options)


def _run(judge, record_id, **kwargs):
    record = next(r for r in RECORDS if r.id == record_id)
    return judge.complete(record.input, labels=LABELS, record_id=record_id, **kwargs)


@pytest.fixture
def server():
    with ReplayServer(RECORDS, tokens_per_second=0) as running:
        yield running


def test_a_completed_stream_delivers_the_logged_reasoning_and_reads_usage(server):
    judge = _judge(server)
    record = RECORDS[1]
    with judge.stream(record.input, labels=LABELS, record_id="b") as stream:
        chunks = list(stream)
    result = stream.result
    assert "".join(chunks) == server.reply_text(record) == REASONING + "\n\nLabel: output_2"
    assert len(chunks) > 50  # streamed piece by piece, not in one block
    assert result.label == "output_2" and result.finish_reason == "completed"
    assert result.output_tokens_source == "usage"
    assert result.output_tokens == server.requests()[-1].tokens_total == len(chunks)
    assert result.input_tokens and result.input_tokens > 10
    assert result.attempts == 1 and result.error is None
    assert server.stats()["completed"] == 1


def test_closing_early_stops_the_server_and_counts_tokens_from_the_text():
    with ReplayServer(RECORDS, tokens_per_second=200) as server:
        judge = _judge(server)
        stream = judge.stream(RECORDS[0].input, labels=LABELS, record_id="a")
        received = []
        for chunk in stream:
            received.append(chunk)
            if len(received) == 10:
                stream.close()
        assert server.wait_idle(timeout=3)
        result = stream.result
        entry = server.requests()[-1]
    assert result.finish_reason == "stopped_early" and result.label is None
    assert result.text == "".join(received)
    assert result.output_tokens == estimate_tokens(result.text) == 10
    assert result.output_tokens_source == "estimated"
    assert entry.disconnected and not entry.completed
    # the server stopped within a few pieces of the client closing, far from the whole trace
    assert 10 <= entry.tokens_sent <= 14 < entry.tokens_total
    assert entry.duration_s < entry.tokens_total / 200 / 2


def test_pace_follows_tokens_per_second():
    with ReplayServer([_record("short", reasoning="one two three four five six seven eight nine ten")], tokens_per_second=40) as server:
        started = time.perf_counter()
        result = _judge(server).complete(_record("short").input, labels=LABELS, record_id="short")
        elapsed = time.perf_counter() - started
    tokens = estimate_tokens("one two three four five six seven eight nine ten\n\nLabel: output_1")
    assert result.output_tokens == tokens == 16
    assert tokens / 40 * 0.9 <= elapsed < tokens / 40 + 1.0
    assert result.first_token_s < elapsed / 2


def test_rate_limit_is_retried_after_retry_after_then_succeeds():
    faults = {"a": [Fault("rate_limit", retry_after=0.4)]}
    with ReplayServer(RECORDS, tokens_per_second=0, faults=faults) as server:
        started = time.perf_counter()
        result = _run(_judge(server), "a")
        elapsed = time.perf_counter() - started
        statuses = [entry.status for entry in server.requests()]
    assert result.label == "output_1" and result.attempts == 2
    assert statuses == [429, 200]
    assert elapsed >= 0.4


def test_retry_after_beyond_the_limit_gives_up_at_once():
    with ReplayServer(RECORDS, tokens_per_second=0, faults={"a": [Fault("rate_limit", retry_after=120)]}) as server:
        judge = _judge(server, max_retry_after=10)
        stream = judge.stream(RECORDS[0].input, labels=LABELS, record_id="a")
        with pytest.raises(JudgeRateLimited, match="Retry-After 120s") as caught:
            list(stream)
    assert caught.value.retry_after == 120
    assert stream.result.finish_reason == "failed" and stream.result.error_type == "JudgeRateLimited"


def test_server_errors_are_retried_with_backoff_until_max_attempts():
    faults = {"a": [Fault("server_error"), Fault("server_error", status=503)], "c": [Fault("server_error")] * 3}
    with ReplayServer(RECORDS, tokens_per_second=0, faults=faults) as server:
        judge = _judge(server, max_attempts=3)
        assert _run(judge, "a").attempts == 3
        stream = judge.stream(RECORDS[3].input, labels=LABELS, record_id="c")
        with pytest.raises(JudgeServerError, match="HTTP 500"):
            list(stream)
        assert stream.result.attempts == 3 and stream.result.finish_reason == "failed"
        assert [e.status for e in server.requests()] == [500, 503, 200, 500, 500, 500]


def test_a_silent_server_times_out_and_is_retried_before_any_text():
    faults = {"a": [Fault("hang", seconds=2)], "c": [Fault("hang", seconds=2)] * 2}
    with ReplayServer(RECORDS, tokens_per_second=0, faults=faults) as server:
        judge = _judge(server, timeout=0.3, max_attempts=2)
        assert _run(judge, "a").attempts == 2
        started = time.perf_counter()
        with pytest.raises(JudgeTimeout, match="sent nothing for 0.3s"):
            _run(judge, "c")
        assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize(("fault", "error"), [(Fault("hang", after_tokens=5, seconds=2), JudgeTimeout),
                                              (Fault("disconnect", after_tokens=5), JudgeConnectionError)])
def test_a_failure_after_text_was_delivered_is_never_retried(fault, error):
    with ReplayServer(RECORDS, tokens_per_second=0, faults={"a": [fault]}) as server:
        stream = _judge(server, timeout=0.3).stream(RECORDS[0].input, labels=LABELS, record_id="a")
        received = []
        with pytest.raises(error):
            for chunk in stream:
                received.append(chunk)
        assert len(server.requests()) == 1
    assert len(received) == 5
    assert stream.result.finish_reason == "failed" and stream.result.text == "".join(received)
    assert stream.result.output_tokens == 5 and stream.result.attempts == 1


def test_a_malformed_event_before_any_text_is_retried():
    with ReplayServer(RECORDS, tokens_per_second=0, faults={"a": [Fault("malformed")]}) as server:
        result = _run(_judge(server), "a")
    assert result.label == "output_1" and result.attempts == 2


@pytest.mark.parametrize("record_id", ["garbage", "nolabel"])
def test_a_reply_without_a_label_is_a_judge_failure(record_id):
    faults = {"a": [Fault("garbage")]}
    with ReplayServer(RECORDS, tokens_per_second=0, faults=faults) as server:
        judge = _judge(server)
        target = "a" if record_id == "garbage" else record_id
        record = next(r for r in RECORDS if r.id == target)
        stream = judge.stream(record.input, labels=LABELS, record_id=target)
        with pytest.raises(JudgeOutputError, match="no valid `Label: <label>` line") as caught:
            list(stream)
        assert len(server.requests()) == 1  # a wrong answer is not retried
    assert caught.value.text == stream.result.text != ""
    assert stream.result.label is None and stream.result.finish_reason == "failed"
    assert stream.result.output_tokens_source == "usage"


def test_records_are_found_by_content_without_an_id(server):
    judge = _judge(server)
    result = judge.complete(RECORDS[1].input, labels=LABELS)
    assert result.label == "output_2" and server.requests()[-1].record_id == "b"
    with pytest.raises(JudgeRequestError, match="no trace record matches"):
        judge.complete({"instruction": "unknown", "output_1": "x", "output_2": "y"}, labels=LABELS)
    with pytest.raises(JudgeRequestError, match="no trace record with id 'zzz'"):
        judge.complete(RECORDS[1].input, labels=LABELS, record_id="zzz")


def test_settings_fall_back_to_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("TRACELAB_JUDGE_MODEL", "env-model")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = OpenAIJudge().complete(RECORDS[0].input, labels=LABELS, record_id="a")
    assert result.model == "env-model" and result.label == "output_1"


def test_no_key_and_no_local_server_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeRequestError, match="no API key"):
        OpenAIJudge().complete({"text": "x"}, labels=["a", "b"])


def test_closing_before_reading_sends_nothing(server):
    stream = _judge(server).stream(RECORDS[0].input, labels=LABELS, record_id="a")
    stream.close()
    assert stream.result.finish_reason == "stopped_early" and stream.result.output_tokens == 0
    assert server.stats()["requests"] == 0


def test_backoff_grows_exponentially_with_bounded_jitter():
    faults = {"a": [Fault("server_error")] * 3}
    with ReplayServer(RECORDS, tokens_per_second=0, faults=faults) as server:
        judge = _judge(server, backoff_base=0.1, backoff_max=10)
        started = time.perf_counter()
        result = _run(judge, "a")
        elapsed = time.perf_counter() - started
    # waits of 0.1, 0.2 and 0.4 s, each scaled by a factor in [0.5, 1]
    assert result.attempts == 4
    assert 0.35 <= elapsed < 0.7 + 1.0


def test_retry_after_as_an_http_date_is_honoured():
    from email.utils import formatdate

    from routing.judges.openai_judge import _retry_after_seconds

    assert _retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert _retry_after_seconds({"retry-after": "2"}) == 2.0
    assert 8 <= _retry_after_seconds({"retry-after": formatdate(time.time() + 10, usegmt=True)}) <= 10
    assert _retry_after_seconds({"retry-after": "soon"}) is None


def test_one_judge_serves_many_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    with ReplayServer(RECORDS, tokens_per_second=400) as server:
        judge = _judge(server)

        def work(index):
            record = RECORDS[index % 2]
            stream = judge.stream(record.input, labels=LABELS, record_id=record.id)
            for count, _ in enumerate(stream, start=1):
                if index % 4 == 3 and count == 5:
                    stream.close()
            return stream.result

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(16)))
        assert server.wait_idle(timeout=5)
        stats = server.stats()
    assert [r.finish_reason for r in results].count("stopped_early") == 4
    assert all(r.label == RECORDS[i % 2].judge_label for i, r in enumerate(results) if i % 4 != 3)
    assert stats["requests"] == 16 and stats["completed"] == 12 and stats["disconnected"] == 4


@pytest.mark.parametrize("chunk", [[1, 2], {"choices": [{"delta": {"content": 5}}]}, {"choices": ["x"]},
                                   {"choices": [], "usage": "many"}])
def test_a_json_event_that_is_not_a_chunk_is_a_server_failure(chunk):
    with pytest.raises(MalformedChunk):
        _chunk_fields(chunk)


def test_chunk_fields_read_content_finish_reason_and_usage():
    usage, choices = _chunk_fields({"choices": [{"delta": {"content": "1. A"}, "finish_reason": None},
                                                {"delta": None, "finish_reason": "stop"}],
                                    "usage": {"completion_tokens": 7}})
    assert usage == {"completion_tokens": 7} and choices == [(None, "1. A"), ("stop", None)]
