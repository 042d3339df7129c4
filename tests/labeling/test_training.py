"""Training stores versioned artifacts with their evidence; activation and rollback switch versions."""

from __future__ import annotations

import pytest

from labeling.models import ModelArtifact
from labeling.services.artifacts import artifact_active, artifact_rollback
from labeling.services.training import models_train
from tests.labeling.pipeline_support import trained_project

pytestmark = pytest.mark.django_db


def test_training_stores_the_selection_table_and_surrogate_audits_and_rollback_restores_the_previous_version():
    project = trained_project(history=120)
    project.surrogate_settings = {"enabled": True, "target": 0.9, "delta": 0.1}
    project.save()
    summary = models_train(project=project)
    router = artifact_active(project=project, kind=ModelArtifact.Kind.ROUTER)
    assert router.version == summary["router_version"] == 2
    table = router.metrics["selection_table"]
    assert sum(row["selected"] for row in table) == 1
    assert all({"loss", "escalation_rate", "effort"} <= set(row) for row in table)
    surrogate = ModelArtifact.objects.get(project=project, kind="surrogate")
    assert "slice_audit" in surrogate.metrics and "boundary_pairs" in surrogate.metrics
    assert surrogate.metrics["manifest"]["certified"] == surrogate.is_active  # only a certified gate is activated
    if not surrogate.is_active:
        assert summary["surrogate_reason"]
    assert artifact_rollback(project=project, kind="router").version == 1
    assert artifact_active(project=project, kind=ModelArtifact.Kind.ROUTER).version == 1
    assert artifact_rollback(project=project, kind="router") is None  # nothing before v1


def test_training_refuses_a_labelled_set_too_small_to_learn_from():
    from labeling.services.projects import project_create

    project = project_create(name="empty", question="q", labels=["yes", "no"], item_kind="text")
    with pytest.raises(ValueError, match="at least 20 items"):
        models_train(project=project)
