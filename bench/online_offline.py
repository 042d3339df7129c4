"""Online equals offline: the live pipeline (real SDK → replay server → step parser → router → ledger)
against `routing.deployment.deploy_budgeted` on the same traces with the same fitted models.

python -m bench.online_offline [--traces ../shared/data/llmbar/gpt-4.jsonl] [--budget 0.3] [--seed 0]

The models are fitted once (routing.training.fit_routing_stack on the train part of a grouped split);
the offline replay and the live run then see the same test items, the same p̂ and the same design.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

from bench.common import REPO, save_results

DEFAULT_TRACES = REPO.parent / "shared" / "data" / "llmbar" / "gpt-4.jsonl"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", default=str(DEFAULT_TRACES))
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens-per-second", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not os.path.exists(args.traces):
        print(json.dumps({"skipped": f"{args.traces} not found"}))
        return {"skipped": True}
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracelab.settings")
    os.environ.pop("REDIS_URL", None)  # one in-process worker: the p̂ order is exactly Algorithm 1's
    os.environ.setdefault("TRACELAB_VAR_DIR", "/tmp/tracelab-bench-online")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return _compare(args)


def _compare(args) -> dict:
    import numpy as np

    from labeling.models import Item, JudgeRun, ModelArtifact, Project, ReviewTask
    from labeling.services.artifacts import artifact_store
    from labeling.services.imports import import_job_create, import_job_run
    from labeling.services.projects import project_create
    from labeling.services.runs import routing_run_create
    from routing.deployment import StepScores, deploy_budgeted, estimate_tokens, prepare_replays
    from routing.replay_server import ReplayServer
    from routing.splits import grouped_random_split
    from routing.tracelog import read_traces
    from routing.training import fit_routing_stack

    records = read_traces(args.traces).records
    split = grouped_random_split([r.group_key for r in records], random_state=args.seed)
    fit_part = [records[i] for i in np.concatenate([split.train, split.dev])]
    test = [records[i] for i in split.test]
    started = time.perf_counter()
    stack = fit_routing_stack(fit_part, rho=args.budget, random_state=args.seed)
    fit_seconds = time.perf_counter() - started

    # Offline: Algorithm 1 on the logged traces.
    design = stack.design
    p_hat = stack.scorer.predict_disagreement([r.input for r in test])
    replays = prepare_replays(test)
    router = design.router
    every_step = router.with_policy(min_step=1, delta=1)
    scores = StepScores(every_step.score_traces([r.steps for r in replays], [r.input for r in test], p_hat,
                                                [r.judge_label for r in test]))
    offline = deploy_budgeted(router, scores, replays, p_hat, args.budget,
                              escalate_at_start_above=design.escalate_at_start_above, pacing=design.pacing)

    # Online: the same items through the live pipeline.
    Project.objects.filter(name="bench-online-offline").delete()
    project = project_create(name="bench-online-offline", question="Which output follows the instruction better?",
                             labels=list(test[0].labels or ["output_1", "output_2"]), item_kind="pairwise",
                             judge_model="replay", surrogate_settings={"enabled": False})
    rows = [{"external_id": r.id, **r.input} for r in test]
    job = import_job_create(project=project, uploaded=io.BytesIO("".join(json.dumps(x) + "\n" for x in rows).encode()),
                            filename="test.jsonl", enqueue=False)
    assert import_job_run(job_id=job.pk).status == "succeeded"
    artifact_store(project=project, kind=ModelArtifact.Kind.SCORER, model=stack.scorer, metrics={}, activate=True)
    artifact_store(project=project, kind=ModelArtifact.Kind.ROUTER, model=design, metrics={}, activate=True)
    # One token per chunk, as hosted APIs stream: the client stops within one token of the step end.
    with ReplayServer(test, tokens_per_second=args.tokens_per_second, tokens_per_chunk=1) as server:
        project.judge_base_url = server.base_url
        project.save()
        started = time.perf_counter()
        run = routing_run_create(project=project, kind="route", rate=args.budget)
        online_seconds = time.perf_counter() - started
        server.wait_idle()
        served = server.stats()
    run.refresh_from_db()
    escalated_online = set(ReviewTask.objects.filter(run=run).values_list("item__external_id", flat=True))
    escalated_offline = {test[i].id for i in np.flatnonzero(offline.escalated)}
    # Where the judge was stopped (0 = before it started; T = escalated on the complete trace).
    stops_online = dict(JudgeRun.objects.filter(run=run, item__external_id__in=escalated_online).values_list(
        "item__external_id", "stopped_at_step"))
    stops_offline = {test[i].id: int(offline.stop_step[i]) for i in np.flatnonzero(offline.escalated)}
    online_runs = JudgeRun.objects.filter(run=run)
    online_tokens = sum(online_runs.values_list("output_tokens", flat=True))
    # The same counter as the offline replay (received reasoning text, without the verdict line).
    online_estimated = sum(estimate_tokens(_without_label_line(text))
                           for text in online_runs.values_list("raw_reasoning", flat=True))
    ai_only = int(sum(r.total_tokens for r in replays))
    p_online = dict(Item.objects.filter(project=project).values_list("external_id", "disagreement_score"))
    figures = {
        "traces": os.path.basename(args.traces), "n_test": len(test), "budget": args.budget, "seed": args.seed,
        "design": design.describe(), "fit_seconds": round(fit_seconds, 1),
        "p_hat_max_abs_diff": float(max(abs(p_online[r.id] - p) for r, p in zip(test, p_hat))),
        "escalated_offline": len(escalated_offline), "escalated_online": len(escalated_online),
        "escalation_sets_equal": escalated_online == escalated_offline,
        "escalation_symmetric_difference": sorted(escalated_online ^ escalated_offline),
        "stop_steps_equal": all(stops_online.get(k) == v for k, v in stops_offline.items()),
        "stop_step_mismatches": {k: [v, stops_online.get(k)] for k, v in stops_offline.items()
                                 if stops_online.get(k) != v},
        "tokens_offline": int(offline.tokens.sum()), "tokens_online_reported": int(online_tokens),
        "tokens_online_same_counter": int(online_estimated),
        "tokens_ai_only": ai_only, "tokens_served_by_replay": served["tokens_sent"],
        "saving_offline": round(1 - offline.tokens.sum() / ai_only, 4),
        "saving_online_reported": round(1 - online_tokens / ai_only, 4),
        "saving_online_same_counter": round(1 - online_estimated / ai_only, 4),
        "online_seconds": round(online_seconds, 1), "items_per_s_online": round(len(test) / online_seconds, 1),
        "load_average": os.getloadavg()[0],
    }
    save_results("online_offline", figures)
    print(json.dumps(figures, indent=1))
    return figures


def _without_label_line(text: str) -> str:
    from routing.judges import is_label_line

    lines = text.rstrip().splitlines()
    if lines and is_label_line(lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    main()
