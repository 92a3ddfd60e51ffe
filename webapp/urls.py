from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from webapp.core.health import healthz

project_patterns = [
    path("datasets/", include("webapp.datasets.urls")),
    path("runs/", include("webapp.experiments.urls")),
    path("policies/", include("webapp.experiments.policy_urls")),
    path("feedback/", include("webapp.feedback.urls")),
    path("reward-models/", include("webapp.rewards.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="projects:list", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("accounts/", include("webapp.accounts.urls")),
    path("projects/", include("webapp.projects.urls")),
    path("projects/<int:project_id>/", include(project_patterns)),
    path("api/v1/", include("webapp.api.urls")),
    # The admin's own password change checks the old password without the log-in limits.
    path("admin/password_change/", RedirectView.as_view(pattern_name="accounts:password-change")),
    path("admin/", admin.site.urls),
]
