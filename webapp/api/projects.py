"""Projects the caller belongs to, with the caller's role in each; creating one; its members.

Members are read by owners and researchers and changed by owners only. The API adds
existing accounts only: a new account (and the password it starts with) is made on the
project's Members page, so a generated password never passes through scripts or their logs.
"""

from django.contrib.auth import get_user_model
from django.db.models import F
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from webapp.accounts.selectors import user_get_by_username
from webapp.api.base import BodySerializer, Conflict, SteerApi, SteerListApi, SteerRetrieveApi, field_error
from webapp.api.permissions import ANNOTATION, OWNERS, RESEARCH, scoped_project_ids
from webapp.api.schema import errors
from webapp.projects.errors import CreatorNotConfirmed, LastOwnerError, ProjectError
from webapp.projects.models import Membership, Project, Role
from webapp.projects.selectors import membership_list, membership_of_user
from webapp.projects.services import (
    membership_add,
    membership_remove,
    membership_role_set,
    project_create,
    project_update,
)


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


def _project_error(exc: ProjectError):
    if isinstance(exc, LastOwnerError):
        return Conflict(exc.message)
    return field_error(exc.field, exc.message)


class ProjectListApi(SteerListApi):
    """GET: every project the caller is a member of, any role. POST: a new project, whose owner
    is the caller."""

    class ProjectCreateInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=Project._meta.get_field("name").max_length,
                                     help_text="Unique among the caller's projects.")
        description = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
        annotation_guidelines = serializers.CharField(required=False, allow_blank=True, default="",
                                                      trim_whitespace=False)

    project_roles = ANNOTATION
    serializer_class = ProjectOutputSerializer
    ordering_fields = ["id", "name"]

    def get_queryset(self):
        return _projects(self.request)

    @extend_schema(request=ProjectCreateInputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request):
        data = self.ProjectCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            project = project_create(owner=request.user, **data.validated_data)
        except ProjectError as exc:
            raise _project_error(exc) from exc
        return Response(ProjectOutputSerializer(_projects(request).get(pk=project.pk)).data,
                        status=status.HTTP_201_CREATED)


class ProjectDetailApi(SteerRetrieveApi):
    """GET: the project, with the caller's role. PATCH (owners): change its ``name``,
    ``description`` or ``annotation_guidelines``; fields left out stay as they are, and so does
    the slug."""

    class ProjectUpdateInputSerializer(BodySerializer):
        name = serializers.CharField(required=False, max_length=Project._meta.get_field("name").max_length,
                                     help_text="Unique among the caller's projects.")
        description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
        annotation_guidelines = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                                      help_text="Markdown shown to annotators above every task.")

    project_roles = ANNOTATION
    project_write_roles = OWNERS
    serializer_class = ProjectOutputSerializer
    lookup_url_kwarg = "project_id"

    def get_queryset(self):
        return _projects(self.request)

    @extend_schema(request=ProjectUpdateInputSerializer, responses={200: ProjectOutputSerializer})
    def patch(self, request, project_id: int):
        project = self.get_object()
        data = self.ProjectUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            project_update(project=project, user=request.user, **data.validated_data)
        except ProjectError as exc:
            raise _project_error(exc) from exc
        return Response(ProjectOutputSerializer(self.get_queryset().get(pk=project.pk)).data)


USERNAME_MAX_LENGTH = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD).max_length


class MemberOutputSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="user_id", read_only=True, help_text="The account's id.")
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "username", "role", "created_at"]


class MemberListApi(SteerListApi):
    """GET: the project's members, in the order they joined (owners, researchers). POST: add an
    existing account (owners). A username without an account answers 400 on ``username``:
    accounts are created on the Members page."""

    class MemberAddInputSerializer(BodySerializer):
        username = serializers.CharField(max_length=USERNAME_MAX_LENGTH)
        role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.ANNOTATOR)
        account_created_by = serializers.CharField(
            max_length=USERNAME_MAX_LENGTH, required=False, default="",
            help_text="For an account another user created with a generated password (409 otherwise): "
                      "its creator's username, to confirm that you add it knowing who saw its password.")

    project_roles = RESEARCH
    project_write_roles = OWNERS
    serializer_class = MemberOutputSerializer
    ordering_fields = ["id"]
    ordering = ["id"]

    def get_queryset(self):
        return membership_list(project=self.request.membership.project)

    @extend_schema(request=MemberAddInputSerializer, responses={201: MemberOutputSerializer, **errors(409)})
    def post(self, request, project_id: int):
        data = self.MemberAddInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_get_by_username(username=data.validated_data["username"])
        if user is None:
            raise field_error("username", "no account has this username; create it on the project's Members page")
        try:
            membership = membership_add(project=request.membership.project, user=user,
                                        role=data.validated_data["role"], added_by=request.user,
                                        account_created_by=data.validated_data["account_created_by"])
        except CreatorNotConfirmed as exc:
            raise Conflict(f"{exc.message}; to add it anyway, send \"account_created_by\": \"{exc.creator}\"") from exc
        except ProjectError as exc:
            raise _project_error(exc) from exc
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(SteerApi):
    """GET: one member (owners, researchers). PATCH ``{"role"}``, DELETE: owners only; the last
    owner can be neither demoted nor removed (409)."""

    class MemberRoleInputSerializer(BodySerializer):
        role = serializers.ChoiceField(choices=Role.choices)

    project_roles = RESEARCH
    project_write_roles = OWNERS

    def _membership(self, request, user_id: int) -> Membership:
        return membership_of_user(project=request.membership.project, user_id=user_id)

    @extend_schema(responses={200: MemberOutputSerializer})
    def get(self, request, project_id: int, user_id: int):
        return Response(MemberOutputSerializer(self._membership(request, user_id)).data)

    @extend_schema(request=MemberRoleInputSerializer, responses={200: MemberOutputSerializer, **errors(409)})
    def patch(self, request, project_id: int, user_id: int):
        membership = self._membership(request, user_id)
        data = self.MemberRoleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership = membership_role_set(membership=membership, role=data.validated_data["role"])
        except ProjectError as exc:
            raise _project_error(exc) from exc
        return Response(MemberOutputSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id: int, user_id: int):
        try:
            membership_remove(membership=self._membership(request, user_id))
        except ProjectError as exc:
            raise _project_error(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
