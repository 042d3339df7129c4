"""The replay server through the real openai SDK and plain HTTP, in-process and as a command."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from routing.replay_server import ReplayServer
from routing.tracelog import TraceRecord, write_traces

REPO = Path(__file__).resolve().parents[3]


def _records():
    return [
        TraceRecord(id="r1", input={"text": "where is my card?"}, judge_label="card_arrival", judge_model="qwen",
                    judge_reasoning="1. The user asks about a card.\n2. It has not arrived.", labels=["card_arrival", "lost"]),
        TraceRecord(id="r2", input={"text": "I lost it"}, judge_label="lost", judge_model="qwen",
                    judge_reasoning="1. Lost.\nLabel: lost", labels=["card_arrival", "lost"]),
    ]


def test_non_streamed_completion_models_and_stats():
    with ReplayServer(_records(), tokens_per_second=0) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="qwen", messages=[{"role": "user", "content": "Classify: where is my card?"}]
        )
        assert reply.choices[0].message.content.endswith("It has not arrived.\n\nLabel: card_arrival")
        assert reply.usage.completion_tokens > 10
        # a reasoning that already ends with its label is sent unchanged
        assert server.reply_text(_records()[1]) == "1. Lost.\nLabel: lost"
        assert [m.id for m in client.models.list()] == ["qwen", "replay"]
        stats = httpx.get(f"{server.base_url}/stats").json()
    assert stats["requests"] == 1 and stats["completed"] == 1 and stats["tokens_sent"] == reply.usage.completion_tokens


def test_bad_requests_get_openai_style_errors():
    with ReplayServer(_records(), tokens_per_second=0) as server:
        response = httpx.post(f"{server.base_url}/chat/completions", content=b"{nope")
        assert response.status_code == 400 and "not JSON" in response.json()["error"]["message"]
        response = httpx.post(f"{server.base_url}/chat/completions", json={"model": "x", "messages": []})
        assert response.status_code == 400
        assert httpx.get(f"{server.url}/v2/elsewhere").status_code == 404


def test_command_line_server_serves_a_trace_file(tmp_path):
    path = tmp_path / "traces.jsonl"
    write_traces(path, _records())
    process = subprocess.Popen(
        [sys.executable, "-m", "routing.replay_server", "--traces", str(path), "--port", "0", "--tokens-per-second", "inf"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = process.stdout.readline()
        assert "replaying 2 records" in banner
        base_url = banner.split(" at ")[1].split()[0]
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="qwen", messages=[{"role": "user", "content": "I lost it"}], stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "1. Lost.\nLabel: lost"
        assert chunks[-1].usage.completion_tokens == 8
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_command_line_reports_a_bad_trace_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x"}) + "\n")
    done = subprocess.run([sys.executable, "-m", "routing.replay_server", "--traces", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "line 1: input: is required" in done.stderr
