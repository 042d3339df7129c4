"""`manage.py demo` runs the main job end to end offline and prints its JSON summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from labeling.models import HumanLabel, ReviewTask
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_demo_routes_a_fresh_batch_through_all_tiers(capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    call_command("demo", "--seed-items", "80", "--route-items", "40", "--judge-port", "0", verbosity=0)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["items"] == 40 and summary["run_state"] == "completed"
    assert summary["budget_cap"] == 12 and 0 < summary["budget_spent"] <= 12
    assert sum(summary["by_tier"].values()) == 40 - summary["failed"]
    assert summary["judge_tokens"] < summary["judge_tokens_ai_only"]
    assert 0.5 < summary["accuracy_on_known_truth"] <= 1.0
    # The seed labels are marked simulated; the routed batch's escalations wait for a real person.
    assert HumanLabel.objects.filter(source="simulated").count() == 80
    assert ReviewTask.objects.filter(state="open").count() == summary["by_tier"]["human"]


def test_the_demo_runs_on_the_embedded_default(tmp_path):
    """`make demo`'s own setting: SQLite and in-process tasks. CI's tests run on PostgreSQL, so this is what
    keeps the SQLite paths (claims, item transitions) honest."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "DJANGO_MEDIA_ROOT", "OPENAI_API_KEY")}
    env.update(TRACELAB_VAR_DIR=str(tmp_path), DJANGO_LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    demo = subprocess.run([sys.executable, "manage.py", "demo", "--seed-items", "80", "--route-items", "40",
                           "--judge-port", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert summary["items"] == 40 and summary["run_state"] == "completed"
    assert sum(summary["by_tier"].values()) == 40 - summary["failed"] and summary["by_tier"]["human"] > 0
    assert (tmp_path / "tracelab.sqlite3").exists()
