"""tracelab's persistence: projects and roles, items and their state, the three routing tiers'
records (judge runs, router decisions, human labels, review tasks), budgets with their ledger,
versioned model artifacts, routing runs, import jobs and the append-only audit log.

Writes go through ``labeling.services``; reads through ``labeling.selectors``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from labeling.states import ItemState


class ItemKind(models.TextChoices):
    IMAGE_CAPTION = "image_caption", "Image–caption"
    TEXT = "text", "Text classification"
    PAIRWISE = "pairwise", "Pairwise judgement"
    GENERIC = "generic", "Generic"


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


class Tier(models.TextChoices):
    SURROGATE = "surrogate", "Surrogate"
    JUDGE = "judge", "Judge"
    HUMAN = "human", "Human"


class JudgeFailurePolicy(models.TextChoices):
    FAIL = "fail", "Mark the item failed"
    HUMAN = "human", "Send the item to humans"


class Project(models.Model):
    name = models.CharField(max_length=200)
    question = models.TextField(help_text="What the judge and the annotators answer for each item.")
    instructions = models.TextField(blank=True)
    labels = models.JSONField(help_text="The label set, in display order.")
    item_kind = models.CharField(max_length=20, choices=ItemKind.choices, default=ItemKind.GENERIC)
    # Judge settings. The API key is never stored: it comes from the environment (OPENAI_API_KEY).
    judge_model = models.CharField(max_length=200, blank=True)
    judge_base_url = models.URLField(blank=True)
    judge_prompt_version = models.CharField(max_length=50, default="v1")
    judge_failure_policy = models.CharField(
        max_length=10, choices=JudgeFailurePolicy.choices, default=JudgeFailurePolicy.FAIL
    )
    router_settings = models.JSONField(default=dict, blank=True)
    surrogate_settings = models.JSONField(default=dict, blank=True)
    # Default budget policy for routing runs: a share ρ of the run's items, or an absolute cap.
    default_budget_rate = models.FloatField(default=0.3)
    default_budget_cap = models.PositiveIntegerField(null=True, blank=True)
    blind_review = models.BooleanField(default=False, help_text="Hide the judge's reasoning from annotators.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(default_budget_rate__gte=0) & Q(default_budget_rate__lte=1), name="project_rate_in_unit"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_role_per_project")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class Batch(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


def item_image_path(item: "Item", filename: str) -> str:
    return f"projects/{item.project_id}/images/{filename}"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    external_id = models.CharField(max_length=255)
    fields = models.JSONField(help_text="The item as the judge sees it: named text fields and image references.")
    meta = models.JSONField(default=dict, blank=True, help_text="Free metadata kept from imports (slice, group, …).")
    image = models.FileField(upload_to=item_image_path, null=True, blank=True)
    image_error = models.TextField(blank=True)
    state = models.CharField(max_length=20, choices=ItemState.choices, default=ItemState.PENDING)
    final_label = models.CharField(max_length=200, null=True, blank=True)
    final_source = models.CharField(max_length=20, choices=Tier.choices, null=True, blank=True)
    disagreement_score = models.FloatField(null=True, blank=True, help_text="p̂ = P(judge ≠ human).")
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="unique_external_id_per_project"),
            models.CheckConstraint(
                condition=Q(final_label__isnull=True) | Q(final_source__isnull=False), name="final_label_has_source"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state"], name="item_project_state"),
            models.Index(fields=["project", "final_source"], name="item_project_source"),
            models.Index(fields=["project", "final_label"], name="item_project_label"),
            models.Index(fields=["batch", "state"], name="item_batch_state"),
            # One project's items in id order (the export's cursor): an ordered index scan whatever the
            # statistics say; with project_id alone a fresh import is planned as a scan and a full sort.
            models.Index(fields=["project", "id"], name="item_project_keyset"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.external_id}"


class ModelArtifact(models.Model):
    class Kind(models.TextChoices):
        SCORER = "scorer", "Disagreement scorer f_θ"
        ROUTER = "router", "Stepwise router"
        SURROGATE = "surrogate", "Certified surrogate gate"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    version = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="artifacts/")
    is_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "kind", "version"], name="unique_artifact_version"),
            models.UniqueConstraint(
                fields=["project", "kind"], condition=Q(is_active=True), name="one_active_artifact_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version}"


class Budget(models.Model):
    """Human review budget. ``spent <= cap`` is a database constraint, not only a check in code."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=200)
    cap = models.PositiveIntegerField()
    spent = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(spent__lte=F("cap")), name="budget_spent_within_cap"),
        ]

    @property
    def remaining(self) -> int:
        return self.cap - self.spent

    def __str__(self) -> str:
        return f"{self.name} ({self.spent}/{self.cap})"


class LedgerEntry(models.Model):
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="entries")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="ledger_entries")
    reason = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "item"], name="one_charge_per_item_and_budget")]


class RoutingRun(models.Model):
    class Kind(models.TextChoices):
        SEED = "seed", "Seed run (judge to completion, then humans)"
        ROUTE = "route", "Routing run"

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        PAUSED = "paused"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ROUTE)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    budget = models.OneToOneField(Budget, null=True, blank=True, on_delete=models.PROTECT, related_name="run")
    budget_rate = models.FloatField(null=True, blank=True)
    scorer = models.ForeignKey(ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    router = models.ForeignKey(ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    surrogate = models.ForeignKey(ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    options = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveIntegerField(
        default=0, help_text="Bumped by every start and resume: routing tasks enqueued before it end.")

    class Meta:
        ordering = ["-id"]


class RunItem(models.Model):
    """One item's place in a routing run: workers claim these in descending priority (p̂)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        CLAIMED = "claimed"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(RoutingRun, on_delete=models.CASCADE, related_name="run_items")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="run_items")
    priority = models.FloatField(default=0.0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="item_once_per_run")]
        indexes = [models.Index(fields=["run", "state", "-priority", "id"], name="runitem_claim_order")]


class JudgeRun(models.Model):
    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETED = "completed"
        STOPPED_EARLY = "stopped_early"
        FAILED = "failed"
        IMPORTED = "imported"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judge_runs")
    run = models.ForeignKey(RoutingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="judge_runs")
    model = models.CharField(max_length=200, blank=True)
    prompt_version = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STREAMING)
    raw_reasoning = models.TextField(blank=True)
    steps = models.JSONField(default=list, blank=True)
    label = models.CharField(max_length=200, null=True, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Confidence, when the source gives one.")
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens_estimated = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    stopped_at_step = models.PositiveIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=50, blank=True)
    error = models.TextField(blank=True)
    extra = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["item", "-id"], name="judgerun_item_latest")]


class RouterDecision(models.Model):
    class Action(models.TextChoices):
        CONTINUE = "continue"
        ESCALATE = "escalate"

    judge_run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="decisions")
    step = models.PositiveIntegerField(help_text="Steps observed when polled (0 = before the judge started).")
    score = models.FloatField()
    action = models.CharField(max_length=10, choices=Action.choices)
    granted = models.BooleanField(null=True, blank=True, help_text="For escalations: did the ledger grant it?")
    router = models.ForeignKey(ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judge_run", "step"]
        constraints = [models.UniqueConstraint(fields=["judge_run", "step"], name="one_decision_per_step")]


class ReviewTask(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        LEASED = "leased"
        DONE = "done"
        CANCELLED = "cancelled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_tasks")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="review_tasks")
    run = models.ForeignKey(RoutingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_tasks")
    priority = models.FloatField(default=0.0)
    reason = models.CharField(max_length=200, blank=True, help_text="Why the item is here (escalation step, seed, send-back).")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    lease_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="leased_tasks"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(state__in=["open", "leased"]), name="one_open_task_per_item"
            ),
            models.CheckConstraint(
                condition=~Q(state="leased") | (Q(lease_holder__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="leased_task_has_holder",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state", "-priority", "id"], name="task_claim_order"),
            models.Index(fields=["lease_holder", "state"], name="task_holder_state"),
        ]


class TaskSkip(models.Model):
    """An annotator skipped this task: it stays in the queue for others, not for them."""

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "user"], name="skip_once")]


class HumanLabel(models.Model):
    class Source(models.TextChoices):
        REVIEW = "review", "Review queue"
        IMPORTED = "imported", "Imported"
        SIMULATED = "simulated", "Simulated annotator (demo)"

    class ReviewStatus(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="human_labels")
    task = models.OneToOneField(ReviewTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="human_label")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    annotator_name = models.CharField(max_length=200, blank=True, help_text="Who labelled it, for imported labels.")
    label = models.CharField(max_length=200)
    lead_time_seconds = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.REVIEW)
    review_status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["annotator", "created_at"], name="humanlabel_annotator_day"),
            # The reviewers' sample: labels waiting for a verdict, oldest first, without walking the judged ones.
            models.Index(fields=["id"], condition=Q(source="review", review_status="pending"),
                         name="humanlabel_pending_review"),
        ]


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Format(models.TextChoices):
        LS_JSON = "ls-json", "Label Studio JSON"
        JSONL = "jsonl", "JSON Lines (trace log v1 or plain items)"
        CSV = "csv", "CSV with a header"

    class OnError(models.TextChoices):
        FAIL = "fail", "Fail the whole file"
        SKIP = "skip", "Import the good rows, list the rest"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=255)
    stored_path = models.CharField(max_length=500)
    format = models.CharField(max_length=10, choices=Format.choices, blank=True)
    on_error = models.CharField(max_length=5, choices=OnError.choices, default=OnError.FAIL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]


class Tally(models.Model):
    """Running totals behind the dashboard, the runs table and the batch list, so that they cost the same at a
    million items as at ten: item states and tiers per batch, run items per state, judge runs per status with
    their tokens and latency, stopping steps, router calls, review tasks per state, human seconds and each run's
    surrogate / judge labels — each keyed by project, batch (0: none) and run (0: none).

    Database triggers (migration 0002) write these rows in the same transaction as every insert, update and
    delete of the counted tables, whatever the code path (services, COPY imports, raw SQL, cascades): a change
    appends signed deltas (+1 for the new row, −1 for the old one) and a total is the SUM of its rows, so
    concurrent writers never wait on one another. A writer whose delta row id is a multiple of 1,024 folds the
    project's rows into one per key (under an advisory lock on PostgreSQL), which keeps every project at a few
    hundred rows. Read through ``labeling.selectors``; never written from Python.
    """

    project_id = models.BigIntegerField()
    batch_id = models.BigIntegerField(default=0)
    run_id = models.BigIntegerField(default=0)
    key = models.CharField(max_length=64)
    n = models.BigIntegerField(default=0)
    amount = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(fields=["project_id", "run_id"], name="tally_project_run")]


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("the audit log is append-only")

    def delete(self):
        raise TypeError("the audit log is append-only")


class AuditEvent(models.Model):
    """Append-only log of every state change and administrative action."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="audit_events")
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    verb = models.CharField(max_length=50)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["item", "id"], name="audit_item")]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("the audit log is append-only")
