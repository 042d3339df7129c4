"""Replaying real LLMBar GPT-4 traces through the SDK gives back the logged labels and steps."""

from pathlib import Path

import pytest

from routing.judges import JudgeOutputError, OpenAIJudge, is_label_line
from routing.replay_server import ReplayServer
from routing.steps import StepParser, parse_steps
from routing.tracelog import read_traces

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "llmbar" / "gpt-4.jsonl"


@pytest.mark.shared_data
def test_llmbar_traces_replay_with_their_labels_and_steps():
    if not DATA.exists():
        pytest.skip("shared data not available")
    log = read_traces(DATA)
    # every null-label record plus the first 80 others
    records = [r for r in log.records if r.judge_label is None] + [r for r in log.records if r.judge_label][:80]
    with ReplayServer(log, tokens_per_second=0, tokens_per_chunk=7) as server:
        judge = OpenAIJudge(base_url=server.base_url, model="gpt-4")
        for record in records:
            parser = StepParser()
            steps = []
            stream = judge.stream(record.input, labels=log.label_set, record_id=record.id)
            try:
                for chunk in stream:
                    steps += parser.feed(chunk)
            except JudgeOutputError:
                assert record.judge_label is None
            steps += parser.close()
            result = stream.result
            assert result.label == record.judge_label
            offline = parse_steps(record.judge_reasoning)
            online = steps[:-1] if steps and is_label_line(steps[-1]) else steps
            assert online == offline, record.id
