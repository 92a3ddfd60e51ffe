"""Projects the caller belongs to, with the caller's role in each."""

from django.db.models import F
from rest_framework import serializers

from webapp.api.base import SteerListApi, SteerRetrieveApi
from webapp.api.permissions import ANNOTATION, scoped_project_ids
from webapp.projects.models import Project


class ProjectOutputSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, help_text="The caller's role in this project.")

    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "annotation_guidelines", "role", "created_at"]


def _projects(request):
    ids = scoped_project_ids(request, ANNOTATION)
    return (
        Project.objects.filter(id__in=ids, memberships__user=request.user)
        .annotate(role=F("memberships__role"))
    )


class ProjectListApi(SteerListApi):
    """Every project the caller is a member of, any role."""

    project_roles = ANNOTATION
    serializer_class = ProjectOutputSerializer

    def get_queryset(self):
        return _projects(self.request)


class ProjectDetailApi(SteerRetrieveApi):
    project_roles = ANNOTATION
    serializer_class = ProjectOutputSerializer
    lookup_url_kwarg = "project_id"

    def get_queryset(self):
        return _projects(self.request)
