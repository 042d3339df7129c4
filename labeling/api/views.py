"""REST API views: thin. Each checks the caller's project role, then calls one service or selector."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors
from labeling.api import serializers as s
from labeling.api.access import project_for, refusal, row_for
from labeling.models import Budget, HumanLabel, Item, Membership, ModelArtifact, ReviewTask, Role, RoutingRun
from labeling.roles import ProjectHidden, RoleTooLow, has_role
from labeling.services import artifacts, exports, imports, ledger, projects, queue, runs


class ProjectListCreate(generics.ListCreateAPIView):
    """Projects you are a member of. Creating one needs staff status; you become its admin."""

    serializer_class = s.ProjectSerializer

    def get_queryset(self):
        return selectors.project_list_for(user=self.request.user)

    def perform_create(self, serializer):
        if not self.request.user.is_staff:
            raise PermissionDenied("Only staff users can create projects.")
        serializer.instance = projects.project_create(created_by=self.request.user, **serializer.validated_data)


class ProjectDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = s.ProjectSerializer

    def get_object(self):
        minimum = Role.ANNOTATOR if self.request.method == "GET" else Role.ADMIN
        return project_for(self.request, self.kwargs["pk"], minimum)

    def perform_update(self, serializer):
        serializer.instance = projects.project_update(project=serializer.instance, actor=self.request.user,
                                                      **serializer.validated_data)

    def perform_destroy(self, instance):
        projects.project_delete(project=instance)


class MembershipListCreate(generics.ListCreateAPIView):
    serializer_class = s.MembershipSerializer
    pagination_class = None

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["pk"], Role.ADMIN)
        return Membership.objects.filter(project=project).select_related("user").order_by("id")

    def perform_create(self, serializer):
        project = project_for(self.request, self.kwargs["pk"], Role.ADMIN)
        data = serializer.validated_data
        serializer.instance = projects.membership_set(project=project, user=data["user"], role=data["role"],
                                                      actor=self.request.user)


class BatchListCreate(generics.ListCreateAPIView):
    serializer_class = s.BatchSerializer
    pagination_class = None

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["pk"], Role.REVIEWER)
        return project.batches.order_by("id")

    def perform_create(self, serializer):
        project = project_for(self.request, self.kwargs["pk"], Role.ADMIN)
        serializer.instance = projects.batch_create(project=project, name=serializer.validated_data["name"],
                                                    created_by=self.request.user)


@extend_schema(parameters=[
    OpenApiParameter("state", str, description="Item state"),
    OpenApiParameter("source", str, description="Tier of the final label: surrogate, judge or human"),
    OpenApiParameter("label", str, description="Final label"),
    OpenApiParameter("batch", int, description="Batch id"),
])
class ItemList(generics.ListAPIView):
    """Items of a project (reviewers and admins), filtered by state, source tier, label or batch."""

    serializer_class = s.ItemSerializer

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["pk"], Role.REVIEWER)
        params = self.request.query_params
        batch = params.get("batch")
        if batch is not None and not batch.isdigit():
            raise ValidationError({"batch": "must be an integer"})
        return selectors.item_list(project=project, state=params.get("state"), source=params.get("source"),
                                   label=params.get("label"), batch=int(batch) if batch else None)


class ItemDetail(generics.RetrieveAPIView):
    serializer_class = s.ItemDetailSerializer

    def get_object(self):
        item = get_object_or_404(Item.objects.select_related("project"), pk=self.kwargs["pk"])
        project_for(self.request, item.project_id, Role.REVIEWER)
        return item


class ImportCreate(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=s.ImportRequestSerializer, responses={202: s.ImportJobSerializer})
    def post(self, request, pk: int):
        """Upload a file (Label Studio JSON, JSONL, CSV, or a zip with one of them and its images)."""
        project = project_for(request, pk, Role.ADMIN)
        serializer = s.ImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            job = imports.import_job_create(project=project, uploaded=upload, filename=upload.name, user=request.user,
                                            fmt=serializer.validated_data.get("format") or None,
                                            on_error=serializer.validated_data["on_error"])
        except ValueError as exc:
            raise ValidationError({"file": str(exc)}) from None
        job.refresh_from_db()
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetail(APIView):
    @extend_schema(responses=s.ImportJobSerializer)
    def get(self, request, pk: int):
        job = selectors.import_job_visible(user=request.user, job_id=pk)
        if job is None:
            raise NotFound("No such import.")
        return Response(s.ImportJobSerializer(job).data)


class Export(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(exports.EXPORT_FORMATS), default="jsonl")],
        responses={
            (200, "application/json"): build_array_type(build_basic_type(OpenApiTypes.OBJECT)),
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request, pk: int):
        """Stream the whole project in constant memory."""
        project = project_for(request, pk, Role.ADMIN)
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in exports.EXPORT_FORMATS:
            raise ValidationError({"format": f"expected one of {', '.join(exports.EXPORT_FORMATS)}"})
        response = StreamingHttpResponse(exports.export_stream(project=project, fmt=fmt),
                                         content_type=exports.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="project-{project.pk}.{exports.EXTENSIONS[fmt]}"'
        return response


class BudgetListCreate(APIView):
    @extend_schema(responses=s.BudgetSerializer(many=True))
    def get(self, request, pk: int):
        project = project_for(request, pk, Role.REVIEWER)
        return Response(s.BudgetSerializer(selectors.budget_list(project=project), many=True).data)

    @extend_schema(request=s.BudgetCreateSerializer, responses={201: s.BudgetSerializer})
    def post(self, request, pk: int):
        project = project_for(request, pk, Role.ADMIN)
        serializer = s.BudgetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        cap = ledger.budget_cap_for(items=data.get("items", 0), rate=data.get("rate"), cap=data.get("cap"))
        budget = ledger.budget_create(project=project, name=data["name"], cap=cap, actor=request.user)
        return Response(s.BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)


class BudgetDetail(APIView):
    def _budget(self, request, pk: int, minimum: str) -> Budget:
        budget = get_object_or_404(Budget, pk=pk)
        project_for(request, budget.project_id, minimum)
        return budget

    @extend_schema(responses=s.BudgetSerializer)
    def get(self, request, pk: int):
        return Response(s.BudgetSerializer(self._budget(request, pk, Role.REVIEWER)).data)

    @extend_schema(request=s.BudgetCapSerializer, responses=s.BudgetSerializer)
    def patch(self, request, pk: int):
        budget = self._budget(request, pk, Role.ADMIN)
        serializer = s.BudgetCapSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cap = serializer.validated_data["cap"]
        return Response(s.BudgetSerializer(ledger.budget_set_cap(budget=budget, cap=cap, actor=request.user)).data)


def _blind_for(user, project) -> bool:
    """Blind review hides the judge's answer and the escalation reason from annotators; reviewers and admins
    see them (the role is the one project_for just read: no query)."""
    return project.blind_review and not has_role(user, project, Role.REVIEWER)


class QueueClaim(APIView):
    @extend_schema(request=None, responses={200: s.ClaimSerializer, 204: OpenApiResponse(description="Queue empty")})
    def post(self, request, pk: int):
        """Lease the next item to review (your current one if you still hold a lease)."""
        project = project_for(request, pk, Role.ANNOTATOR)
        claim = queue.review_task_claim_next(project=project, user=request.user)
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        blind = _blind_for(request.user, project)
        data = s.task_data(claim.task, judge_run=claim.judge_run, blind=blind)
        data["claim_reason"] = claim.reason_shown(blind=blind)
        return Response(data)


class QueueUndo(APIView):
    @extend_schema(request=None, responses={200: s.TaskSerializer, 204: OpenApiResponse(description="Nothing to undo")})
    def post(self, request, pk: int):
        project = project_for(request, pk, Role.ANNOTATOR)
        task = queue.review_task_undo(user=request.user, project=project)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        task.project = project
        return Response(s.task_data(task, judge_run=selectors.judge_run_latest(item_id=task.item_id),
                                    blind=_blind_for(request.user, project)))


class _TaskAction(APIView):
    def _check(self, request, pk: int) -> None:
        """404 unless the task exists in a project of the caller's (one query); the service checks the lease."""
        row_for(request, ReviewTask.objects.only("id", "project_id"), pk, Role.ANNOTATOR, noun="task")


class TaskSubmit(_TaskAction):
    @extend_schema(request=s.SubmitSerializer, responses=s.HumanLabelSerializer)
    def post(self, request, pk: int):
        """Label the task leased to you. Idempotent: submitting it again returns the first label."""
        # The service checks the role on its own read of the task (one statement fewer per label).
        serializer = s.SubmitSerializer(data=request.data)
        if not serializer.is_valid():
            self._check(request, pk)  # 404 to a stranger whatever the body
            raise ValidationError(serializer.errors)
        try:
            human_label = queue.review_task_submit(task_id=pk, user=request.user, minimum_role=Role.ANNOTATOR,
                                                   label=serializer.validated_data["label"])
        except (ProjectHidden, RoleTooLow) as exc:
            raise refusal(exc, noun="task") from None
        return Response(s.human_label_data(human_label))


class TaskSkip(_TaskAction):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, pk: int):
        self._check(request, pk)
        queue.review_task_skip(task_id=pk, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskRelease(_TaskAction):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, pk: int):
        self._check(request, pk)
        queue.review_task_release(task_id=pk, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskHeartbeat(_TaskAction):
    @extend_schema(request=None, responses=s.HeartbeatSerializer)
    def post(self, request, pk: int):
        self._check(request, pk)
        task = queue.review_task_heartbeat(task_id=pk, user=request.user)
        return Response({"id": task.pk, "lease_expires_at": task.lease_expires_at})


class ReviewSample(generics.ListAPIView):
    """Human labels waiting for a reviewer's verdict (reviewers and admins)."""

    serializer_class = s.HumanLabelSerializer

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["pk"], Role.REVIEWER)
        return HumanLabel.objects.filter(
            item__project=project, source=HumanLabel.Source.REVIEW, review_status=HumanLabel.ReviewStatus.PENDING
        ).select_related("annotator").order_by("id")


class HumanLabelReview(APIView):
    @extend_schema(request=s.ReviewVerdictSerializer, responses=s.HumanLabelSerializer)
    def post(self, request, pk: int):
        human_label = get_object_or_404(HumanLabel.objects.select_related("item"), pk=pk)
        project_for(request, human_label.item.project_id, Role.REVIEWER)
        if human_label.annotator_id == request.user.pk and not has_role(request.user, human_label.item.project_id,
                                                                        Role.ADMIN):
            raise PermissionDenied("Reviewers cannot review their own labels.")
        serializer = s.ReviewVerdictSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reviewed = queue.human_label_review(human_label_id=pk, reviewer=request.user,
                                            accept=serializer.validated_data["accept"])
        return Response(s.HumanLabelSerializer(reviewed).data)




class RunListCreate(APIView):
    @extend_schema(responses=s.RunSerializer(many=True))
    def get(self, request, pk: int):
        project = project_for(request, pk, Role.REVIEWER)
        runs = project.runs.select_related("budget").order_by("-id")[:100]
        return Response([selectors.run_progress(run=run) for run in runs])

    @extend_schema(request=s.RunCreateSerializer, responses={202: s.RunSerializer})
    def post(self, request, pk: int):
        """Start a routing run (or a seed run) over a batch's pending items."""
        project = project_for(request, pk, Role.ADMIN)
        serializer = s.RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        batch = None
        if "batch" in data:
            batch = project.batches.filter(pk=data["batch"]).first()
            if batch is None:
                raise ValidationError({"batch": "no such batch in this project"})
        try:
            run = runs.routing_run_create(project=project, batch=batch, kind=data["kind"], rate=data.get("rate"),
                                          cap=data.get("cap"), seed_size=data.get("seed_size"), actor=request.user)
        except (runs.RunError, ledger.BudgetError) as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(selectors.run_progress(run=run), status=status.HTTP_202_ACCEPTED)


class RunDetail(APIView):
    def _run(self, request, pk: int, minimum: str):
        run = get_object_or_404(RoutingRun.objects.select_related("budget"), pk=pk)
        project_for(request, run.project_id, minimum)
        return run

    @extend_schema(responses=s.RunSerializer)
    def get(self, request, pk: int):
        return Response(selectors.run_progress(run=self._run(request, pk, Role.REVIEWER)))


class RunAction(RunDetail):
    action = ""

    @extend_schema(request=None, responses=s.RunSerializer)
    def post(self, request, pk: int):
        run = self._run(request, pk, Role.ADMIN)
        service = {"pause": runs.run_pause, "resume": runs.run_resume, "cancel": runs.run_cancel}[self.action]
        try:
            run = service(run=run, actor=request.user)
        except runs.RunError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(selectors.run_progress(run=run))


class Train(APIView):
    @extend_schema(request=None, responses={202: OpenApiResponse(description="Training queued")})
    def post(self, request, pk: int):
        """Fit f_θ, select the router and certify the surrogate on the labelled history (a worker task)."""
        from django.db import transaction

        from labeling.tasks import models_train_task

        project = project_for(request, pk, Role.ADMIN)
        transaction.on_commit(lambda: models_train_task.delay(project.pk, request.user.pk))
        return Response({"detail": "training queued"}, status=status.HTTP_202_ACCEPTED)


class ArtifactList(generics.ListAPIView):
    serializer_class = s.ArtifactSerializer
    pagination_class = None

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["pk"], Role.REVIEWER)
        return ModelArtifact.objects.filter(project=project).order_by("kind", "-version")


class ArtifactActivate(APIView):
    @extend_schema(request=None, responses=s.ArtifactSerializer)
    def post(self, request, pk: int):
        artifact = get_object_or_404(ModelArtifact, pk=pk)
        project_for(request, artifact.project_id, Role.ADMIN)
        return Response(s.ArtifactSerializer(artifacts.artifact_activate(artifact=artifact, actor=request.user)).data)


class ArtifactRollback(APIView):
    @extend_schema(request=s.RollbackSerializer, responses=s.ArtifactSerializer)
    def post(self, request, pk: int):
        project = project_for(request, pk, Role.ADMIN)
        serializer = s.RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        artifact = artifacts.artifact_rollback(project=project, kind=serializer.validated_data["kind"],
                                               actor=request.user)
        if artifact is None:
            raise ValidationError({"kind": "there is no earlier version to roll back to"})
        return Response(s.ArtifactSerializer(artifact).data)
