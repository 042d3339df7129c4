from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("projects/<int:pk>/", views.project_overview, name="project"),
    path("items/<int:pk>/image", views.item_image, name="item-image"),
]
