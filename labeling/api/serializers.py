from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import (
    Batch, Budget, HumanLabel, ImportJob, Item, JudgeRun, Membership, Project, ReviewTask, RouterDecision,
)


MAX_COUNT = 2_147_483_647  # the database's integer columns


class ProjectSerializer(serializers.ModelSerializer):
    my_role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "question", "instructions", "labels", "item_kind", "judge_model", "judge_base_url",
                  "judge_prompt_version", "judge_failure_policy", "router_settings", "surrogate_settings",
                  "default_budget_rate", "default_budget_cap", "blind_review", "created_at", "my_role"]
        read_only_fields = ["id", "created_at", "my_role"]

    def get_my_role(self, project) -> str | None:
        from labeling.roles import role_of

        return role_of(self.context["request"].user, project)

    def validate_labels(self, labels):
        if not isinstance(labels, list) or len(labels) < 2:
            raise serializers.ValidationError("a project needs a list of at least two labels")
        if not all(isinstance(label, str) and label.strip() for label in labels):
            raise serializers.ValidationError("labels must be non-empty strings")
        if len({label.strip() for label in labels}) != len(labels):
            raise serializers.ValidationError("labels must not repeat")
        return [label.strip() for label in labels]

    def validate_default_budget_rate(self, rate):
        if not 0.0 <= rate <= 1.0:
            raise serializers.ValidationError("the budget rate ρ must be between 0 and 1")
        return rate

    def validate_router_settings(self, value):
        return _json_object(value)

    def validate_surrogate_settings(self, value):
        return _json_object(value)


def _json_object(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("must be a JSON object")
    return value


class UsernameField(serializers.SlugRelatedField):
    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", "\\0"))
        return super().to_internal_value(data)


class MembershipSerializer(serializers.ModelSerializer):
    username = UsernameField(source="user", slug_field="username", queryset=get_user_model().objects.all())

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]


class BatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = Batch
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]


class RouterDecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RouterDecision
        fields = ["step", "score", "action", "granted"]


class JudgeRunSerializer(serializers.ModelSerializer):
    decisions = RouterDecisionSerializer(many=True, read_only=True)

    class Meta:
        model = JudgeRun
        fields = ["id", "model", "prompt_version", "status", "label", "score", "raw_reasoning", "steps",
                  "input_tokens", "output_tokens", "output_tokens_estimated", "latency_ms", "stopped_at_step",
                  "stop_reason", "error", "started_at", "finished_at", "decisions"]


class HumanLabelSerializer(serializers.ModelSerializer):
    annotator = serializers.SerializerMethodField()

    class Meta:
        model = HumanLabel
        fields = ["id", "label", "annotator", "lead_time_seconds", "source", "review_status", "created_at"]

    def get_annotator(self, obj) -> str:
        return obj.annotator.username if obj.annotator_id else obj.annotator_name


def human_label_data(human_label: HumanLabel) -> dict:
    """What HumanLabelSerializer gives (the submit's answer), built directly: the ModelSerializer cost a
    submit request 0.35 ms of CPU. tests/labeling/test_api.py checks that both give the same JSON."""
    return {
        "id": human_label.pk, "label": human_label.label,
        "annotator": (human_label.annotator.username if human_label.annotator_id
                      else human_label.annotator_name),
        "lead_time_seconds": human_label.lead_time_seconds, "source": human_label.source,
        "review_status": human_label.review_status, "created_at": human_label.created_at,
    }


class ItemSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["id", "external_id", "batch", "fields", "meta", "image_url", "image_error", "state",
                  "final_label", "final_source", "disagreement_score", "failure_reason", "created_at", "updated_at"]

    def get_image_url(self, item) -> str | None:
        return item.image.url if item.image else None


class ItemDetailSerializer(ItemSerializer):
    judge_runs = JudgeRunSerializer(many=True, read_only=True)
    human_labels = HumanLabelSerializer(many=True, read_only=True)

    class Meta(ItemSerializer.Meta):
        fields = ItemSerializer.Meta.fields + ["judge_runs", "human_labels"]


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=ImportJob.Format.choices, required=False, allow_blank=True)
    on_error = serializers.ChoiceField(choices=ImportJob.OnError.choices, default=ImportJob.OnError.FAIL)


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class ImportJobSerializer(serializers.ModelSerializer):
    errors = ImportErrorSerializer(many=True, read_only=True)

    class Meta:
        model = ImportJob
        fields = ["id", "project", "batch", "filename", "format", "on_error", "status", "rows_total", "rows_imported",
                  "rows_failed", "error_count", "errors", "created_at", "started_at", "finished_at"]


class BudgetSerializer(serializers.ModelSerializer):
    remaining = serializers.IntegerField(read_only=True)

    class Meta:
        model = Budget
        fields = ["id", "name", "cap", "spent", "remaining", "created_at"]
        read_only_fields = ["id", "spent", "remaining", "created_at"]


class BudgetCapSerializer(serializers.Serializer):
    cap = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, help_text="The new cap (never below spent)")


class BudgetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    cap = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    rate = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    items = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False,
                                     help_text="Items the rate applies to.")

    def validate(self, data):
        if ("cap" in data) == ("rate" in data):
            raise serializers.ValidationError("give either cap or rate (with items), not both or neither")
        if "rate" in data and "items" not in data:
            raise serializers.ValidationError({"items": "a rate needs the number of items it applies to"})
        return data


class TaskProjectSerializer(serializers.ModelSerializer):
    """What the annotator answers: the project's question, instructions and labels."""

    class Meta:
        model = Project
        fields = ["id", "question", "instructions", "labels"]


class JudgeAnswerSerializer(serializers.ModelSerializer):
    """The judge's latest answer on the item (its router decisions are on the item's detail, for reviewers)."""

    class Meta:
        model = JudgeRun
        fields = ["id", "model", "status", "label", "raw_reasoning", "steps", "stopped_at_step", "stop_reason"]


class TaskSerializer(serializers.ModelSerializer):
    """A task leased to the annotator with what it takes to label it: the schema of the claim and undo
    responses, which ``task_data`` builds."""

    item = ItemSerializer(read_only=True)
    project = TaskProjectSerializer(read_only=True)
    judge = serializers.SerializerMethodField(
        help_text="The judge's latest answer on the item; null when the judge never ran, and for annotators "
                  "when the project has blind review on.")

    class Meta:
        model = ReviewTask
        fields = ["id", "item", "project", "judge", "priority", "reason", "state", "lease_expires_at", "claimed_at"]
        extra_kwargs = {"reason": {"help_text": "Why the item was escalated; empty for annotators when the "
                                                "project has blind review on."}}

    @extend_schema_field(JudgeAnswerSerializer(allow_null=True))
    def get_judge(self, task) -> dict | None:
        judge_run = self.context.get("judge_run")
        return JudgeAnswerSerializer(judge_run).data if judge_run is not None else None


class ClaimSerializer(TaskSerializer):
    claim_reason = serializers.SerializerMethodField(help_text="Why this task was handed to you.")

    class Meta(TaskSerializer.Meta):
        fields = TaskSerializer.Meta.fields + ["claim_reason"]

    def get_claim_reason(self, task) -> str:
        return self.context["claim_reason"]


def task_data(task: ReviewTask, *, judge_run: JudgeRun | None, blind: bool) -> dict:
    """What TaskSerializer gives for ``task`` (its item and project loaded), built directly: a ModelSerializer
    builds its fields anew on every use, which cost a claim request more CPU (1.5 ms) than its SQL.
    tests/labeling/test_api.py checks that both give the same JSON. ``blind``: leave out what blind review
    hides from annotators (the judge's answer and the escalation reason, as the review page does)."""
    item, project = task.item, task.project
    return {
        "id": task.pk,
        "item": {
            "id": item.pk, "external_id": item.external_id, "batch": item.batch_id, "fields": item.fields,
            "meta": item.meta, "image_url": item.image.url if item.image else None,
            "image_error": item.image_error,
            "state": item.state, "final_label": item.final_label, "final_source": item.final_source,
            "disagreement_score": item.disagreement_score, "failure_reason": item.failure_reason,
            "created_at": item.created_at, "updated_at": item.updated_at,
        },
        "project": {"id": project.pk, "question": project.question, "instructions": project.instructions,
                    "labels": project.labels},
        "judge": None if judge_run is None or blind else {
            "id": judge_run.pk, "model": judge_run.model, "status": judge_run.status,
            "label": judge_run.label, "raw_reasoning": judge_run.raw_reasoning, "steps": judge_run.steps,
            "stopped_at_step": judge_run.stopped_at_step, "stop_reason": judge_run.stop_reason,
        },
        "priority": task.priority,
        "reason": "" if blind else task.reason,
        "state": task.state,
        "lease_expires_at": task.lease_expires_at,
        "claimed_at": task.claimed_at,
    }


class SubmitSerializer(serializers.Serializer):
    label = serializers.CharField()


class ReviewVerdictSerializer(serializers.Serializer):
    accept = serializers.BooleanField()



class RunCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["route", "seed"], default="route")
    batch = serializers.IntegerField(required=False, help_text="Batch id (default: every pending item)")
    rate = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, help_text="Budget ρ")
    cap = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False, help_text="Absolute budget cap")
    seed_size = serializers.IntegerField(min_value=1, max_value=MAX_COUNT, required=False,
                                         help_text="Seed runs: how many random pending items to send")

    def validate(self, data):
        if "rate" in data and "cap" in data:
            raise serializers.ValidationError("give a budget rate or a cap, not both")
        return data


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField()
    items = serializers.IntegerField()
    finished = serializers.IntegerField()
    progress = serializers.FloatField()
    by_tier = serializers.DictField(child=serializers.IntegerField())
    budget = serializers.DictField(allow_null=True)
    judge_output_tokens = serializers.IntegerField()
    judge_input_tokens = serializers.IntegerField()
    stopped_early = serializers.IntegerField()
    judge_output_tokens_saved_estimate = serializers.IntegerField()
    human_lead_time_seconds = serializers.FloatField()
    router_calls = serializers.IntegerField()
    failed = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        from labeling.models import ModelArtifact

        model = ModelArtifact
        fields = ["id", "kind", "version", "is_active", "metrics", "created_at"]


class RollbackSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["scorer", "router", "surrogate"])


class HeartbeatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()
