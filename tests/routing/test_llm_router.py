"""The LLM router through the real openai SDK against a local OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from routing.evaluation.cli import llm_router_from_env
from routing.routers import LLMRouter, load_model_bytes, dump_model_bytes
from routing.routers.llm import parse_probability
from routing.steps import parse_steps
from tests.routing.synthetic_traces import make_traces


class FakeChatServer(ThreadingHTTPServer):
    """Answers chat completions like a sensible monitor: hedging reasoning → high p_wrong."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.reply_override: str | None = None


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        now = body["messages"][-1]["content"].split("### Now")[-1]
        reply = self.server.reply_override or ("p_wrong: 0.92" if "not sure" in now else "p_wrong: 0.08")
        payload = {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = FakeChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_llm_router_decides_through_an_openai_compatible_endpoint(server):
    records = make_traces(40, seed=3)
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    router = LLMRouter(base_url=base_url, model="monitor-1", api_key="sk-test", n_demos=3, delta=1).fit(records)
    wrong_record = next(r for r in records if r.judge_label != r.human_label)
    right_record = next(r for r in records if r.judge_label == r.human_label)
    escalate = router.decide(parse_steps(wrong_record.judge_reasoning)[:2], wrong_record.input, 0.3)
    keep = router.decide(parse_steps(right_record.judge_reasoning)[:2], right_record.input, 0.3)
    assert (escalate.action, escalate.score) == ("escalate", pytest.approx(0.92))
    assert (keep.action, keep.score) == ("continue", pytest.approx(0.08))
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "monitor-1"
    user = request["body"]["messages"][1]["content"]
    assert user.count("### Example") == 3 and "Outcome: the judge was" in user
    # Retrieval picks the nearest demonstrations: the same topic as the query item.
    topic = wrong_record.input["instruction"].split("the ")[1].split(" task")[0]
    assert user.split("### Now")[0].count(topic) >= 3
    # An unreadable reply falls back on p̂ and is counted.
    server.reply_override = "I cannot tell."
    assert router.decide(["x."], wrong_record.input, 0.42).score == pytest.approx(0.42)
    assert router.unparsed_ == 1
    # The fitted router pickles without its HTTP client.
    assert load_model_bytes(dump_model_bytes(router)).demos_ == router.demos_


def test_llm_router_is_configured_from_the_environment():
    router, reason = llm_router_from_env({})
    assert router is None and "TRACELAB_ROUTER_LLM_BASE_URL" in reason
    router, reason = llm_router_from_env({
        "TRACELAB_ROUTER_LLM_BASE_URL": "http://localhost:9/v1", "TRACELAB_ROUTER_LLM_MODEL": "m",
        "OPENAI_API_KEY": "k",
    })
    assert reason is None and (router.base_url, router.model, router.api_key) == ("http://localhost:9/v1", "m", "k")


def test_parse_probability():
    assert parse_probability("p_wrong: 0.35") == 0.35
    assert parse_probability("P_WRONG = 1") == 1.0
    assert parse_probability("ESCALATE now") == 1.0
    assert parse_probability("continue") == 0.0
    assert parse_probability("no idea") is None
    assert np.isclose(parse_probability("p_wrong: .5"), 0.5)
