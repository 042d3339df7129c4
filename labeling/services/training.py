"""Train the routing models of a project from its labelled history and store them as versioned artifacts."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Max

from labeling.models import Item, JudgeRun, ModelArtifact, Project, Tier
from labeling.services.artifacts import artifact_store
from labeling.services.audit import audit_event_record
from labeling.services.pipeline import item_input
from routing.tracelog import TraceRecord
from routing.training import audit_surrogate_gate, fit_routing_stack, fit_surrogate_gate

logger = logging.getLogger(__name__)

FULL_TRACE = (JudgeRun.Status.COMPLETED, JudgeRun.Status.IMPORTED)


def _latest_full_runs(project: Project) -> dict[int, JudgeRun]:
    latest = (JudgeRun.objects.filter(item__project=project, status__in=FULL_TRACE)
              .values("item_id").annotate(last=Max("id")).values_list("last", flat=True))
    return {run.item_id: run for run in JudgeRun.objects.filter(id__in=list(latest))}


def labelled_records(project: Project) -> tuple[list[TraceRecord], list[TraceRecord]]:
    """(items with a full judge trace and a human label, items with a full judge trace) as trace records."""
    runs = _latest_full_runs(project)
    items = Item.objects.filter(pk__in=list(runs)).order_by("id")
    with_human, with_judge = [], []
    for item in items.iterator(chunk_size=2000):
        run = runs[item.pk]
        human = item.final_label if item.final_source == Tier.HUMAN else None
        record = TraceRecord(
            id=item.external_id, input=item_input(item), judge_label=run.label, judge_reasoning=run.raw_reasoning,
            judge_model=run.model, judge_output_tokens=run.output_tokens, labels=list(project.labels),
            human_label=human, slice=item.meta.get("slice"), group=item.meta.get("group"),
        )
        with_judge.append(record)
        if human is not None:
            with_human.append(record)
    return with_human, with_judge


def models_train(*, project: Project, actor=None, activate: bool = True, random_state: int = 0) -> dict[str, Any]:
    """Fit f_θ and select the router on the labelled set; certify the surrogate gate on the judge's labels.

    Returns a summary with the artifact versions; raises ValueError when the labelled set cannot
    support a model (too small, or one outcome only).
    """
    started = time.perf_counter()
    with_human, with_judge = labelled_records(project)
    rho = project.default_budget_rate
    stack = fit_routing_stack(with_human, rho=rho, random_state=random_state)
    scorer = artifact_store(project=project, kind=ModelArtifact.Kind.SCORER, model=stack.scorer,
                            metrics={**stack.metrics, "n_labelled": len(with_human)}, activate=activate, actor=actor)
    router = artifact_store(project=project, kind=ModelArtifact.Kind.ROUTER, model=stack.design,
                            metrics={**stack.metrics, "selection_table": stack.selection_table,
                                     "design": stack.design.describe()}, activate=activate, actor=actor)
    summary: dict[str, Any] = {"scorer_version": scorer.version, "router_version": router.version,
                               "n_labelled": len(with_human), "design": stack.design.describe()}
    surrogate_settings = project.surrogate_settings or {}
    if surrogate_settings.get("enabled", True):
        X = stack.featurizer.transform([r.input for r in with_judge])
        teacher = [r.judge_label for r in with_judge]
        gate = fit_surrogate_gate(
            X, teacher, target=float(surrogate_settings.get("target", 0.92)),
            delta=float(surrogate_settings.get("delta", 0.1)), groups=[r.group_key for r in with_judge],
            random_state=random_state,
        )
        manifest = gate.manifest()
        audits = audit_surrogate_gate(gate, X, teacher, [r.slice for r in with_judge], [r.id for r in with_judge])
        surrogate = artifact_store(
            project=project, kind=ModelArtifact.Kind.SURROGATE,
            model={"gate": gate, "featurizer": stack.featurizer,
                   "spot_check_rate": float(surrogate_settings.get("spot_check_rate", 0.02))},
            metrics={"manifest": manifest, "n_teacher_labels": len(with_judge), **audits},
            activate=activate and gate.certified, actor=actor,
        )
        summary.update({"surrogate_version": surrogate.version, "surrogate_certified": gate.certified,
                        "surrogate_coverage": manifest.get("coverage_cal"),
                        "surrogate_reason": manifest.get("certificate", {}).get("reason")})
    summary["seconds"] = round(time.perf_counter() - started, 2)
    audit_event_record(project=project, actor=actor, verb="models_trained", data=summary)
    return summary


def models_train_by_id(*, project_id: int, user_id: int | None = None) -> dict[str, Any]:
    """The training task: a labelled set too small or too one-sided is a recorded refusal, not a crash."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    project = Project.objects.get(pk=project_id)
    try:
        return models_train(project=project, actor=user)
    except ValueError as exc:
        audit_event_record(project=project, actor=user, verb="training_refused", data={"reason": str(exc)})
        return {"refused": str(exc)}
