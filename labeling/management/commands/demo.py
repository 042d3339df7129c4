"""`manage.py demo`: the product's main job end to end, offline, on items the project generates itself.

1. users (an admin and an annotator; passwords printed), a demo image–caption project;
2. generated scenes of shapes with true and subtly false captions, imported through the real importer;
3. a seed run: the demo judge (pixels only, behind the OpenAI-compatible interface) labels a random
   sample to completion, then SIMULATED annotators (clearly marked) give the human labels;
4. training: f_θ, router selection on a dev split, surrogate certification;
5. a routing run over a fresh batch: real escalations stay in the review queue for you to label;
6. one JSON summary line.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket

from django.core.management.base import BaseCommand
from django.db.models import Sum

from labeling.models import HumanLabel, Item, JudgeRun, Project, RoutingRun, Tier
from labeling.services.imports import import_job_create, import_job_run
from labeling.services.projects import membership_set, project_create, user_ensure
from labeling.services.queue import review_task_claim_next, review_task_submit
from labeling.services.runs import routing_run_create
from labeling.services.training import models_train
from routing.demo import LABELS, DemoJudge, DemoJudgeServer, generate_items
from routing.judges.tokens import estimate_tokens

PROJECT_NAME = "Demo: shapes and captions"
SIMULATED_ANNOTATOR = "simulated-annotator"


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--seed-items", type=int, default=240)
        parser.add_argument("--route-items", type=int, default=300)
        parser.add_argument("--budget", type=float, default=0.3, help="ρ: share of the routed batch humans review")
        parser.add_argument("--judge-port", type=int, default=8002)
        parser.add_argument("--random-state", type=int, default=0)

    def handle(self, *args, **options):
        say = self.stderr.write if options["verbosity"] else (lambda *_: None)
        if os.environ.get("OPENAI_API_KEY"):
            # A real vision model (OPENAI_BASE_URL / TRACELAB_JUDGE_MODEL choose which) instead of the stand-in.
            say("OPENAI_API_KEY is set: the demo uses the real judge configured in the environment")
            self.stdout.write(json.dumps(self._run("", os.environ.get("TRACELAB_JUDGE_MODEL", "gpt-4o-mini"),
                                                   options, say)))
            return
        server = DemoJudgeServer(port=_free_port(options["judge_port"]), tokens_per_second=0).start()
        try:
            summary = self._run(server.base_url, "tracelab-demo-judge", options, say)
        finally:
            server.stop()
        self.stdout.write(json.dumps(summary))

    def _run(self, judge_base_url: str, judge_model: str, options, say) -> dict:
        admin_password, annotator_password = secrets.token_urlsafe(9), secrets.token_urlsafe(9)
        admin = user_ensure(username="admin", password=admin_password, is_superuser=True)
        annotator = user_ensure(username="annotator", password=annotator_password)
        simulated = user_ensure(username=SIMULATED_ANNOTATOR, password=secrets.token_urlsafe(24))
        Project.objects.filter(name=PROJECT_NAME).delete()
        project = project_create(
            name=PROJECT_NAME, question="Does the caption accurately describe the image?", labels=list(LABELS),
            item_kind="image_caption", judge_model=judge_model, judge_base_url=judge_base_url,
            default_budget_rate=options["budget"], created_by=admin,
            instructions="Answer yes only if every part of the caption is true of the picture.",
        )
        membership_set(project=project, user=annotator, role="annotator")
        membership_set(project=project, user=simulated, role="annotator")
        say(f"login at http://127.0.0.1:8000/  admin / {admin_password}   annotator / {annotator_password}")

        seed_n, route_n, state = options["seed_items"], options["route_items"], options["random_state"]
        items = generate_items(seed_n + route_n, random_state=state)
        seed_batch = _import(project, admin, items[:seed_n], "seed.jsonl")
        route_batch = _import(project, admin, items[seed_n:], "batch.jsonl")
        truth = dict(Item.objects.filter(project=project).values_list("external_id", "meta__demo_truth"))

        say(f"seed run: the demo judge labels {seed_n} items, simulated annotators label them")
        routing_run_create(project=project, batch=seed_batch, kind=RoutingRun.Kind.SEED, actor=admin)
        _simulate_annotators(project, simulated, truth)

        say("training: disagreement scorer, router selection, surrogate certification")
        trained = models_train(project=project, actor=admin)
        say(f"trained: {json.dumps(trained)}")

        say(f"routing run over {route_n} fresh items at ρ = {options['budget']}")
        run = routing_run_create(project=project, batch=route_batch, kind=RoutingRun.Kind.ROUTE,
                                 rate=options["budget"], actor=admin)
        run.refresh_from_db()
        if judge_base_url:  # afterwards the app reaches the demo judge that `make demo` serves beside it
            Project.objects.filter(pk=project.pk).update(
                judge_base_url=f"http://127.0.0.1:{options['judge_port']}/v1")
        return _summary(run, truth, items[seed_n:])


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return 0


def _import(project, user, items, name):
    rows = [{"external_id": item.id, "image": item.image_data_url(), "caption": item.caption,
             "meta": {"slice": item.slice, "demo_truth": item.label, "tags": list(item.tags)}} for item in items]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    job = import_job_create(project=project, uploaded=io.BytesIO(content), filename=name, user=user, enqueue=False)
    job = import_job_run(job_id=job.pk)
    if job.status != "succeeded":
        raise RuntimeError(f"demo import failed: {job.errors[:3]}")
    return job.batch


def _simulate_annotators(project, user, truth: dict[str, str]) -> None:
    """Stand-in humans for the seed phase: they answer with the generator's truth (marked simulated)."""
    while (claim := review_task_claim_next(project=project, user=user)) is not None:
        label = review_task_submit(task_id=claim.task.pk, user=user, label=truth[claim.task.item.external_id])
        HumanLabel.objects.filter(pk=label.pk).update(source=HumanLabel.Source.SIMULATED)


def _summary(run: RoutingRun, truth: dict[str, str], generated) -> dict:
    items = list(Item.objects.filter(run_items__run=run).values("external_id", "state", "final_label", "final_source"))
    by_tier = {tier: sum(1 for i in items if i["final_source"] == tier) for tier in (Tier.SURROGATE, Tier.JUDGE)}
    by_tier[Tier.HUMAN] = sum(1 for i in items if i["state"] in ("awaiting_review", "human_labeled"))
    labelled = [i for i in items if i["final_label"] is not None]
    runs = JudgeRun.objects.filter(run=run)
    judge_tokens = runs.aggregate(t=Sum("output_tokens"))["t"] or 0
    # AI-only: what the judge spends answering every item to the end (the demo judge is deterministic,
    # so its full replies are known without calling it again).
    judge = DemoJudge()
    ai_only = sum(estimate_tokens(judge.reason(item.image, item.caption)) for item in generated)
    correct = sum(1 for i in labelled if i["final_label"] == truth[i["external_id"]])
    return {
        "items": len(items),
        "by_tier": by_tier,
        "budget_cap": run.budget.cap,
        "budget_spent": run.budget.spent,
        "judge_tokens": judge_tokens,
        "judge_tokens_ai_only": ai_only,
        "accuracy_on_known_truth": round(correct / len(labelled), 4) if labelled else None,
        "accuracy_scope": f"{len(labelled)} items with a final label; {by_tier[Tier.HUMAN]} wait for your review",
        "failed": sum(1 for i in items if i["state"] == "failed"),
        "run": run.pk,
        "run_state": run.state,
    }
