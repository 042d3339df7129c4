from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("projects/new", views.project_create, name="project-create"),
    path("projects/<int:pk>/", views.project_overview, name="project"),
    # annotators
    path("projects/<int:pk>/review/", views.review, name="review"),
    path("projects/<int:pk>/review/tasks/<int:task_id>/label", views.review_label, name="review-label"),
    path("projects/<int:pk>/review/tasks/<int:task_id>/skip", views.review_skip, name="review-skip"),
    path("projects/<int:pk>/review/tasks/<int:task_id>/heartbeat", views.review_heartbeat, name="review-heartbeat"),
    path("projects/<int:pk>/review/undo", views.review_undo, name="review-undo"),
    # reviewers
    path("projects/<int:pk>/reviews/", views.review_sample, name="review-sample"),
    path("projects/<int:pk>/reviews/<int:label_id>", views.review_verdict, name="review-verdict"),
    # admins
    path("projects/<int:pk>/settings", views.project_settings, name="project-settings"),
    path("projects/<int:pk>/dashboard/", views.dashboard, name="dashboard"),
    path("projects/<int:pk>/dashboard/runs", views.dashboard_runs, name="dashboard-runs"),
    path("projects/<int:pk>/runs/new", views.run_start, name="run-start"),
    path("projects/<int:pk>/runs/<int:run_id>/<str:action>", views.run_action, name="run-action"),
    path("projects/<int:pk>/budgets/<int:budget_id>/cap", views.budget_cap, name="budget-cap"),
    path("projects/<int:pk>/models/", views.model_list, name="models"),
    path("projects/<int:pk>/models/train", views.model_train, name="model-train"),
    path("projects/<int:pk>/models/rollback", views.model_rollback, name="model-rollback"),
    path("projects/<int:pk>/models/<int:artifact_id>/activate", views.model_activate, name="model-activate"),
    path("projects/<int:pk>/imports/", views.import_list, name="imports"),
    path("projects/<int:pk>/imports/<int:job_id>", views.import_detail, name="import-detail"),
    path("projects/<int:pk>/export/<str:fmt>", views.export, name="export"),
    path("items/<int:pk>/image", views.item_image, name="item-image"),
]
