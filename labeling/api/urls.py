from django.urls import path

from labeling.api import views

urlpatterns = [
    path("projects/", views.ProjectListCreate.as_view(), name="api-projects"),
    path("projects/<int:pk>/", views.ProjectDetail.as_view(), name="api-project"),
    path("projects/<int:pk>/members/", views.MembershipListCreate.as_view(), name="api-members"),
    path("projects/<int:pk>/batches/", views.BatchListCreate.as_view(), name="api-batches"),
    path("projects/<int:pk>/items/", views.ItemList.as_view(), name="api-items"),
    path("projects/<int:pk>/imports/", views.ImportCreate.as_view(), name="api-imports"),
    path("projects/<int:pk>/export/", views.Export.as_view(), name="api-export"),
    path("projects/<int:pk>/budgets/", views.BudgetListCreate.as_view(), name="api-budgets"),
    path("projects/<int:pk>/queue/claim/", views.QueueClaim.as_view(), name="api-queue-claim"),
    path("projects/<int:pk>/queue/undo/", views.QueueUndo.as_view(), name="api-queue-undo"),
    path("projects/<int:pk>/review-sample/", views.ReviewSample.as_view(), name="api-review-sample"),
    path("projects/<int:pk>/runs/", views.RunListCreate.as_view(), name="api-runs"),
    path("projects/<int:pk>/train/", views.Train.as_view(), name="api-train"),
    path("projects/<int:pk>/models/", views.ArtifactList.as_view(), name="api-models"),
    path("projects/<int:pk>/models/rollback/", views.ArtifactRollback.as_view(), name="api-models-rollback"),
    path("models/<int:pk>/activate/", views.ArtifactActivate.as_view(), name="api-model-activate"),
    path("runs/<int:pk>/", views.RunDetail.as_view(), name="api-run"),
    path("runs/<int:pk>/pause/", views.RunAction.as_view(action="pause"), name="api-run-pause"),
    path("runs/<int:pk>/resume/", views.RunAction.as_view(action="resume"), name="api-run-resume"),
    path("runs/<int:pk>/cancel/", views.RunAction.as_view(action="cancel"), name="api-run-cancel"),
    path("items/<int:pk>/", views.ItemDetail.as_view(), name="api-item"),
    path("imports/<int:pk>/", views.ImportDetail.as_view(), name="api-import"),
    path("budgets/<int:pk>/", views.BudgetDetail.as_view(), name="api-budget"),
    path("tasks/<int:pk>/submit/", views.TaskSubmit.as_view(), name="api-task-submit"),
    path("tasks/<int:pk>/skip/", views.TaskSkip.as_view(), name="api-task-skip"),
    path("tasks/<int:pk>/release/", views.TaskRelease.as_view(), name="api-task-release"),
    path("tasks/<int:pk>/heartbeat/", views.TaskHeartbeat.as_view(), name="api-task-heartbeat"),
    path("human-labels/<int:pk>/review/", views.HumanLabelReview.as_view(), name="api-human-label-review"),
]
