"""A real routing stack for pipeline tests: synthetic judge traces whose mistakes show in the reasoning,
imported as labelled history, trained with the real services, served by the real replay server."""

from __future__ import annotations

import io
import json
import random

from labeling.models import Project
from labeling.services.imports import import_job_create, import_job_run
from labeling.services.projects import project_create
from labeling.services.training import models_train
from routing.tracelog import TraceRecord, dumps_record

TOPICS = ["billing", "shipping", "refund", "login", "privacy", "delivery", "account", "pricing"]


def synthetic_record(k: int, *, prefix: str = "h", rng: random.Random | None = None) -> TraceRecord:
    """An item whose judge is wrong a third of the time — and then hedges and contradicts itself."""
    rng = rng or random.Random(k)
    topic = TOPICS[k % len(TOPICS)]
    truth = "yes" if rng.random() < 0.5 else "no"
    wrong = rng.random() < 0.33
    judge = ("no" if truth == "yes" else "yes") if wrong else truth
    if wrong:
        steps = [f"The message is about {topic}.", "However, I am not sure; it might be ambiguous.",
                 "Actually, wait, I may have misread the second part.", "Perhaps the answer is unclear.",
                 f"On balance I would say {judge}."]
    else:
        steps = [f"The message is about {topic}.", f"It clearly states the {topic} request.",
                 "The details match the question exactly.", "Nothing contradicts this reading.",
                 f"So the answer is {judge}."]
    reasoning = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps))
    return TraceRecord(id=f"{prefix}{k}", input={"text": f"Customer message {k} about {topic}."},
                       judge_label=judge, judge_reasoning=reasoning, judge_model="replay", labels=["yes", "no"],
                       human_label=truth, group=f"{prefix}{k}")


def trained_project(*, history: int = 120, name: str = "pipeline", **settings) -> Project:
    project = project_create(name=name, question="Is the request valid?", labels=["yes", "no"], item_kind="text",
                             judge_model="replay", surrogate_settings={"enabled": False}, **settings)
    records = [synthetic_record(k) for k in range(history)]
    content = "".join(dumps_record(r) + "\n" for r in records).encode()
    job = import_job_create(project=project, uploaded=io.BytesIO(content), filename="history.jsonl", enqueue=False)
    assert import_job_run(job_id=job.pk).status == "succeeded"
    models_train(project=project)
    return project


def new_batch(project: Project, n: int, *, start: int = 1000) -> tuple[list[TraceRecord], object]:
    """Pending items (no labels) and the trace records the replay server answers them with."""
    records = [synthetic_record(k, prefix="b") for k in range(start, start + n)]
    rows = [{"external_id": r.id, "text": r.input["text"]} for r in records]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    job = import_job_create(project=project, uploaded=io.BytesIO(content), filename="batch.jsonl", enqueue=False)
    job = import_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.errors
    return records, job.batch
