"""`python -m routing evaluate`: the report a user reads, on synthetic traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.evaluation.cli import main
from routing.evaluation.runner import REQUIRED_METHODS
from routing.tracelog import write_traces
from tests.routing.synthetic_traces import make_traces

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
METRIC_KEYS = {
    "accuracy", "escalation_rate", "error_recall", "false_escalation_rate", "escalation_precision",
    "judge_tokens", "judge_tokens_ai_only", "router_calls", "ci",
}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    write_traces(root / "synthetic.jsonl", make_traces(240, seed=5))
    code = main([str(root / "synthetic.jsonl"), "--seeds", "2", "--out", str(root / "out"), "--quiet"])
    assert code == 0
    return root / "out"


def test_report_has_every_method_and_metric(report_dir, monkeypatch):
    report = json.loads((report_dir / "report.json").read_text())
    for key in ("dataset", "split", "budget", "seeds", "n_train", "n_dev", "n_test", "shift", "methods"):
        assert key in report
    assert report["dataset"] == "synthetic" and report["split"] == "random" and report["budget"] == 0.3
    assert set(REQUIRED_METHODS) <= set(report["methods"])
    for values in report["methods"].values():
        assert METRIC_KEYS <= set(values)
        low, high = values["ci"]["accuracy"]
        assert low <= values["accuracy"] <= high
    assert "llm_router" in report["skipped"]
    for name in ("report.md", "selection.json", "accuracy_vs_escalation.png", "escalation_quality.png", "tokens.png"):
        assert (report_dir / name).stat().st_size > 0
    assert "| proposed |" in (report_dir / "report.md").read_text()


def test_budget_holds_and_the_trace_router_beats_blind_baselines(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    for seed in report["per_seed"]["proposed"]:
        assert seed["escalation_rate"] <= 0.3
    methods = report["methods"]
    # Errors announce themselves in the second step: the prefix router catches them, and stops early.
    assert methods["proposed"]["accuracy"] > methods["random"]["accuracy"] + 0.1
    assert methods["proposed"]["judge_tokens"] < methods["proposed"]["judge_tokens_ai_only"]
    assert methods["full_trace_one_shot"]["judge_tokens"] == methods["ai_only"]["judge_tokens"]


def test_topic_split_and_bad_input(tmp_path):
    write_traces(tmp_path / "t.jsonl", make_traces(160, seed=6))
    assert main([str(tmp_path / "t.jsonl"), "--split", "topic", "--seeds", "1", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["split"] == "topic" and report["shift"]["domain_classifier_auc"] > 0.5
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    assert main([str(tmp_path / "bad.jsonl"), "--quiet"]) == 1
    assert main([str(tmp_path / "t.jsonl"), "--budget", "1.5", "--quiet"]) == 2


@pytest.mark.shared_data
def test_real_gpt4_traces_single_seed(tmp_path):
    path = DATA / "llmbar" / "gpt-4.jsonl"
    if not path.exists():
        pytest.skip("shared data not available")
    assert main([str(path), "--seeds", "1", "--out", str(tmp_path), "--quiet"]) == 0
    methods = json.loads((tmp_path / "report.json").read_text())["methods"]
    assert methods["proposed"]["accuracy"] > methods["random"]["accuracy"] + 0.04
    assert methods["proposed"]["escalation_rate"] <= 0.3
